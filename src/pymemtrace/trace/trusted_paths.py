# SPDX-License-Identifier: MIT
"""A path walked one component at a time, each opened relative to the directory before it, so
that nothing can be swapped between a check and a use, and a symbolic link is followed only when
no one but root and the caller could have planted it: the link belongs to one of them, and so
does the directory holding it, which no one else may write (or only under the sticky bit, which
keeps others from replacing what is not theirs). Links in /proc (/proc/self, /proc/self/fd/N,
what /dev/stdout leads to) are the kernel's own, followed by the kernel."""
import os
import stat
from dataclasses import dataclass

from .errors import Failure
from .names import shown

MAX_LINKS = 40  # as the kernel's ELOOP limit
_LOOKUP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Place:
    """Where a path leads: the open directory (O_PATH) that holds `name`; `info`, lstat of what
    is there (None: nothing yet); `via_link`: the last component came from a link's target;
    `kernel_link`: `name` is a /proc link that only opening it (following) resolves."""
    directory: int
    name: str
    info: os.stat_result
    via_link: bool = False
    kernel_link: bool = False


def resolve(path, shown_as):
    """The Place `path` names for the calling process, trusting links of root and of its own
    effective user only. `shown_as` names the path in errors (e.g. "-o FILE")."""
    trusted = {0, os.geteuid()}
    pending = _components(path)
    if not pending or path.endswith("/") or pending[-1] == "..":
        raise Failure(f"{shown_as} is a directory", "give a file name")
    current = os.open("/" if path.startswith("/") else ".", _LOOKUP | os.O_DIRECTORY)
    links, via_link = 0, False
    try:
        while True:
            name = pending.pop(0)
            last = not pending
            if name == "..":
                if not _holds_trusted_links(os.fstat(current), trusted):
                    raise Failure(f"{shown_as}: '..' leaves a directory another user controls",
                                  "give the path without '..'")
                current = _replaced(current, os.open("..", _LOOKUP | os.O_DIRECTORY,
                                                     dir_fd=current))
                continue
            try:
                opened = os.open(name, _LOOKUP, dir_fd=current)
            except FileNotFoundError:
                if last:
                    return Place(current, name, None, via_link)
                raise
            info = os.fstat(opened)
            if stat.S_ISLNK(info.st_mode):
                holder = os.fstat(current)
                if info.st_uid not in trusted or not _holds_trusted_links(holder, trusted):
                    os.close(opened)
                    raise Failure(f"{shown_as}: {shown(name)} is a symbolic link another user "
                                  "could have planted", "give a path that no other user's link "
                                  "leads through (the link's target itself)")
                links += 1
                if links > MAX_LINKS:
                    os.close(opened)
                    raise OSError(40, os.strerror(40))  # ELOOP
                via_link = via_link or last
                if holder.st_dev == _procfs_device():
                    os.close(opened)
                    if last:
                        return Place(current, name, info, via_link, kernel_link=True)
                    current = _replaced(current, os.open(name, os.O_PATH | os.O_DIRECTORY |
                                                         os.O_CLOEXEC, dir_fd=current))
                    continue
                target = os.readlink("", dir_fd=opened)  # the link opened, not a name again
                os.close(opened)
                if target.startswith("/"):
                    current = _replaced(current, os.open("/", _LOOKUP | os.O_DIRECTORY))
                following = _components(target)
                if not following:
                    raise FileNotFoundError(2, os.strerror(2))
                pending[:0] = following
                continue
            if last:
                os.close(opened)
                return Place(current, name, info, via_link)
            if not stat.S_ISDIR(info.st_mode):
                os.close(opened)
                raise NotADirectoryError(20, os.strerror(20))
            current = _replaced(current, opened)
    except BaseException:
        os.close(current)
        raise


def _components(path):
    return [part for part in path.split("/") if part not in ("", ".")]


def _holds_trusted_links(directory, trusted):
    """Only trusted users can put or replace an entry in this directory."""
    mode = directory.st_mode
    return directory.st_uid in trusted and (not mode & 0o022 or bool(mode & stat.S_ISVTX))


def _replaced(old, new):
    os.close(old)
    return new


def _procfs_device():
    try:
        return os.stat("/proc", follow_symlinks=False).st_dev
    except OSError:
        return None
