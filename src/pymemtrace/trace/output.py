# SPDX-License-Identifier: MIT
"""The report file of -o: opened with the rights of the user the report is for, written safely,
replaced only by a finished report."""
import errno
import os
import re
import stat
import time

from . import trusted_paths
from .errors import Failure
from .names import shown
from .user_rights import with_rights_of

TEMPORARY = ".pymemtrace-report-"
# A temporary written to last this long ago was left by a run killed while naming its report.
STALE_AFTER = 60  # seconds
_TEMPORARY_NAME = re.compile(re.escape(TEMPORARY) + r"[0-9a-f]{12}\Z")


class ReportFile:
    """-o FILE for `owner` (a targets.CommandUser; None: root). Every step that opens or names a
    file runs as the owner (user_rights), so the kernel applies that user's permissions to each
    directory on the way; and the path is walked so that only links of root and of the owner
    are followed (trusted_paths): a FIFO, a device or a directory reached through another user's
    link is never written.

    A new or regular FILE: the report goes to an unnamed file in FILE's directory (O_TMPFILE:
    even a SIGKILL leaves nothing) that, once complete, is linked in as FILE, or renamed over
    it when FILE exists; the file is the owner's, made anew, whoever owned the one it replaces.
    A FIFO or a device (or /dev/stdout) is written directly; a link to a regular file is
    refused (the report is never written through a link)."""

    def __init__(self, path, owner=None):
        self.path, self.owner, self.directory = path, owner, None
        try:
            (kind, self.name), fds = with_rights_of(owner, lambda: _opened(path),
                                                    f"-o {shown(path)}")
        except OSError as error:
            fix = (f"give -o a path {owner.name} may write: the report is theirs (they ran "
                   "sudo, or --user named them)" if owner else "give -o a writable path")
            raise Failure(f"-o {shown(path)}: {error.strerror}", fix) from None
        if kind == "replace":
            self.directory, fd = fds
        else:
            (fd,) = fds
        self.stream = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")

    def commit(self):
        """The report is complete: name it FILE, in one step, as the owner."""
        self.stream.flush()
        if self.directory is not None:
            directory, fd, name = self.directory, self.stream.fileno(), self.name
            with_rights_of(self.owner, lambda: (_named(directory, fd, name), []),
                           f"-o {shown(self.path)}")
        self.stream.close()

    def close(self):
        if not self.stream.closed:
            try:
                self.stream.close()
            except OSError:
                pass  # commit() has said why the report could not be written
        if self.directory is not None:
            os.close(self.directory)
            self.directory = None


def _opened(path):
    """As the owner: (("replace", name), [directory, unnamed file]) or (("direct", name),
    [FIFO or device])."""
    place = trusted_paths.resolve(path, f"-o {shown(path)}")
    keep = False
    try:
        info = place.info
        if place.kernel_link or (info and not stat.S_ISREG(info.st_mode)
                                 and not stat.S_ISDIR(info.st_mode)):
            return ("direct", place.name), [_opened_directly(place, path)]
        if info and stat.S_ISDIR(info.st_mode):
            raise Failure(f"-o {shown(path)} is a directory", "give -o a file name")
        if place.via_link:
            raise Failure(f"-o {shown(path)} is a symbolic link to a file (or to nothing)",
                          "give the file's own path: reports are never written through a link")
        if info and not _may_replace(info, os.fstat(place.directory)):  # said now, not at the end
            raise Failure(f"-o {shown(path)} belongs to another user, in a directory with the "
                          "sticky bit (as /tmp): it cannot be replaced",
                          "give -o another file name")
        fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666,
                     dir_fd=place.directory)
        if info and info.st_uid == os.geteuid():
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o777)  # the owner's report keeps its mode
        _remove_stale_temporaries(place.directory)
        keep = True
        return ("replace", place.name), [place.directory, fd]
    finally:
        if not keep:
            os.close(place.directory)


def _may_replace(info, directory):
    """The kernel's rule for replacing an entry of a sticky directory."""
    me = os.geteuid()
    return (me == 0 or not directory.st_mode & stat.S_ISVTX or info.st_uid == me
            or directory.st_uid == me)


def _opened_directly(place, path):
    follow = 0 if place.kernel_link else os.O_NOFOLLOW  # a swapped-in link is refused (ELOOP)
    fd = os.open(place.name, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | follow,
                 dir_fd=place.directory)
    kind = os.fstat(fd).st_mode
    if stat.S_ISREG(kind) or stat.S_ISDIR(kind):
        os.close(fd)
        raise Failure(f"-o {shown(path)} is a symbolic link to a file",
                      "give the file's own path: reports are never written through a link")
    return fd


def _named(directory, fd, name):
    """As the owner: the unnamed file `fd` becomes `name` in `directory`, in one step. A new
    name is linked straight in; an existing one is replaced by a rename from a temporary name
    (left behind only by a kill between the two: the next run removes it)."""
    source = f"/proc/self/fd/{fd}"  # linkat(AT_SYMLINK_FOLLOW) of this names the open file
    try:
        os.link(source, name, dst_dir_fd=directory)
        return
    except FileExistsError:
        pass
    for _attempt in range(100):
        temporary = TEMPORARY + os.urandom(6).hex()
        try:
            os.link(source, temporary, dst_dir_fd=directory)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
    try:
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except OSError:
        os.unlink(temporary, dir_fd=directory)
        raise


def _remove_stale_temporaries(directory):
    """As the owner: temporaries of the owner's earlier, killed runs in this directory."""
    try:
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=directory)
    except OSError:
        return  # a directory the owner may not list keeps them
    try:
        with os.scandir(listing) as entries:
            for entry in entries:
                if _TEMPORARY_NAME.match(entry.name):
                    _remove_if_stale(entry, directory)
    finally:
        os.close(listing)


def _remove_if_stale(entry, directory):
    try:
        info = entry.stat(follow_symlinks=False)
        if (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
                and time.time() - info.st_mtime > STALE_AFTER):
            os.unlink(entry.name, dir_fd=directory)
    except OSError:
        pass  # removed by another run meanwhile, or not ours to remove
