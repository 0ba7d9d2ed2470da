# SPDX-License-Identifier: MIT
"""A path walked one component at a time, each opened relative to the directory before it, so
that nothing can be swapped between a check and a use, and a symbolic link is followed only when
no one but root and the caller could have planted it: the link belongs to one of them, and so
does the directory holding it, which no one else may write (or only under the sticky bit, which
keeps others from replacing what is not theirs). Links in /proc (/proc/self, /proc/self/fd/N,
what /dev/stdout leads to) are the kernel's own, followed by the kernel."""
import errno
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
    if path.endswith("/") or not _components(path) or _components(path)[-1] == "..":
        raise Failure(f"{shown_as} is a directory", "give a file name")
    walk = _Walk(path, shown_as)
    try:
        place = None
        while place is None:
            place = walk.step()
        return place
    except BaseException:
        os.close(walk.current)
        raise


class _Walk:
    """The directory reached so far (`current`, O_PATH) and the components still to walk."""

    def __init__(self, path, shown_as):
        self.shown_as, self.trusted = shown_as, {0, os.geteuid()}
        self.pending, self.links, self.via_link = _components(path), 0, False
        self.current = os.open("/" if path.startswith("/") else ".", _LOOKUP | os.O_DIRECTORY)

    def step(self):
        """One component: the Place when it was the last, else None."""
        name = self.pending.pop(0)
        last = not self.pending
        if name == "..":
            return self._parent(last)
        try:
            opened = os.open(name, _LOOKUP, dir_fd=self.current)
        except FileNotFoundError:
            if last:
                return Place(self.current, name, None, self.via_link)
            raise
        try:
            info = os.fstat(opened)
            if stat.S_ISLNK(info.st_mode):
                return self._link(name, opened, info, last)
            if last:
                return Place(self.current, name, info, self.via_link)
            if not stat.S_ISDIR(info.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            self._enter(opened)
            opened = None
        finally:
            if opened is not None:
                os.close(opened)
        return None

    def _parent(self, last):
        if last:
            raise Failure(f"{self.shown_as} is a directory", "give a file name")
        if not _holds_trusted_links(os.fstat(self.current), self.trusted):
            raise Failure(f"{self.shown_as}: '..' leaves a directory another user controls",
                          "give the path without '..'")
        self._enter(os.open("..", _LOOKUP | os.O_DIRECTORY, dir_fd=self.current))
        return None

    def _link(self, name, opened, info, last):
        holder = os.fstat(self.current)
        if info.st_uid not in self.trusted or not _holds_trusted_links(holder, self.trusted):
            raise Failure(f"{self.shown_as}: {shown(name)} is a symbolic link another user "
                          "could have planted", "give a path that no other user's link leads "
                          "through (the link's target itself)")
        self.links += 1
        if self.links > MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        self.via_link = self.via_link or last
        if holder.st_dev == _procfs_device():  # the kernel's link: only the kernel resolves it
            if last:
                return Place(self.current, name, info, self.via_link, kernel_link=True)
            self._enter(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                                dir_fd=self.current))
            return None
        target = os.readlink("", dir_fd=opened)  # the link opened, not its name looked up again
        if target.startswith("/"):
            self._enter(os.open("/", _LOOKUP | os.O_DIRECTORY))
        following = _components(target)
        if last and (not following or following[-1] == ".."):
            raise Failure(f"{self.shown_as} is a link to a directory", "give a file name")
        self.pending[:0] = following
        return None

    def _enter(self, directory):
        os.close(self.current)
        self.current = directory


def _components(path):
    return [part for part in path.split("/") if part not in ("", ".")]


def _holds_trusted_links(directory, trusted):
    """Only trusted users can put or replace an entry in this directory."""
    mode = directory.st_mode
    return directory.st_uid in trusted and (not mode & 0o022 or bool(mode & stat.S_ISVTX))


def _procfs_device():
    try:
        return os.stat("/proc", follow_symlinks=False).st_dev
    except OSError:
        return None
