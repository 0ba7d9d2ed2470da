# SPDX-License-Identifier: MIT
"""The one way a path a user or a target wrote is walked by root: a component at a time, each
opened (O_PATH, O_NOFOLLOW) relative to the directory before it, so nothing can be swapped
between a check and a use. A symbolic link (or '..') is followed only when no one but the
trusted users could have planted it: the link belongs to one of them, and so does the directory
holding it, which no one else may write (or only under the sticky bit, which keeps others from
replacing what is not theirs). Links in /proc (/proc/self, /proc/self/fd/N) are the kernel's,
resolved by the kernel. Who is trusted is the caller's: root alone for what root reads
(safe_open), root and the report's user for what that user writes (trusted_paths)."""
import errno
import os
import stat
from dataclasses import dataclass

MAX_LINKS = 40  # as the kernel's ELOOP limit
_LOOKUP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(OSError):
    """A path not walked because another user could have redirected it; str() says why."""


@dataclass
class Place:
    """Where a path leads: the open directory (O_PATH) that holds `name` (None: the path is that
    directory itself, e.g. '/' or a link to '..'); `info`, lstat of what is there (None: nothing
    yet); `via_link`: the last component came from a link's target; `kernel_link`: `name` is a
    /proc link that only opening it (following) resolves."""
    directory: int
    name: str
    info: os.stat_result
    via_link: bool = False
    kernel_link: bool = False


def walk(path, trusted):
    """The Place `path` names, following only links the uids in `trusted` could have planted.
    Refused for another user's link (or '..' out of a directory another user controls); other
    OSErrors as the kernel gives them (ELOOP past MAX_LINKS, ENOENT for a missing directory)."""
    walker = _Walk(path, frozenset(trusted))
    try:
        place = None
        while place is None:
            place = walker.step()
        return place
    except BaseException:
        os.close(walker.current)
        raise


def components(path):
    """The names a path walks through ('' and '.' dropped)."""
    return [part for part in path.split("/") if part not in ("", ".")]


class _Walk:
    """The directory reached so far (`current`, O_PATH), where it is (`seen`, for errors) and
    the components still to walk."""

    def __init__(self, path, trusted):
        self.trusted, self.pending = trusted, components(path)
        self.links, self.via_link = 0, False
        self.seen = "/" if path.startswith("/") else ""
        self.current = os.open("/" if path.startswith("/") else ".", _LOOKUP | os.O_DIRECTORY)

    def step(self):
        """One component: the Place when it was the last, else None."""
        if not self.pending:
            return Place(self.current, None, os.fstat(self.current), self.via_link)
        name = self.pending.pop(0)
        last = not self.pending
        here = os.path.join(self.seen, name)
        if name == "..":
            self._check_holder(f"{here}: '..' leaves a directory")
            return self._enter(os.open("..", _LOOKUP | os.O_DIRECTORY, dir_fd=self.current), here)
        try:
            opened = os.open(name, _LOOKUP, dir_fd=self.current)
        except FileNotFoundError:
            if last:
                return Place(self.current, name, None, self.via_link)
            raise
        try:
            info = os.fstat(opened)
            if stat.S_ISLNK(info.st_mode):
                return self._link(name, here, opened, info, last)
            if last:
                return Place(self.current, name, info, self.via_link)
            if not stat.S_ISDIR(info.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), here)
            self._enter(opened, here)
            opened = None
        finally:
            if opened is not None:
                os.close(opened)
        return None

    def _link(self, name, here, opened, info, last):
        if info.st_uid not in self.trusted:
            raise Refused(f"{here} is a symbolic link owned by uid {info.st_uid}: only links "
                          f"of {_users(self.trusted)} are followed")
        self._check_holder(f"{here} is a symbolic link in a directory")
        self.links += 1
        if self.links > MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), here)
        self.via_link = self.via_link or last
        if os.fstat(self.current).st_dev == _procfs_device():  # only the kernel resolves it
            if last:
                return Place(self.current, name, info, self.via_link, kernel_link=True)
            return self._enter(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                                       dir_fd=self.current), here)
        target = os.readlink("", dir_fd=opened)  # the link opened, not its name looked up again
        if target.startswith("/"):
            self._enter(os.open("/", _LOOKUP | os.O_DIRECTORY), "/")
        else:
            self.seen = os.path.dirname(here)
        self.pending[:0] = components(target)
        return None

    def _check_holder(self, what):
        holder = os.fstat(self.current)
        mode = holder.st_mode
        if holder.st_uid not in self.trusted or (mode & 0o022 and not mode & stat.S_ISVTX):
            raise Refused(f"{what} another user can write (and so replace what is "
                          f"there): only directories of {_users(self.trusted)} are trusted")

    def _enter(self, directory, here):
        os.close(self.current)
        self.current, self.seen = directory, here
        return None


def _users(trusted):
    others = sorted(uid for uid in trusted if uid != 0)
    return "root" + "".join(f" and uid {uid}" for uid in others)


def _procfs_device():
    try:
        return os.stat("/proc", follow_symlinks=False).st_dev
    except OSError:
        return None
