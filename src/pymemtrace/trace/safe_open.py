# SPDX-License-Identifier: MIT
"""Root opens the files a target or a user names (libraries, directories to scan, a Python
binary) only this way: never a device, FIFO or socket (each path is first opened with O_PATH,
which neither acts nor blocks, and checked with fstat), never a file bigger than a library can
be, and, for path text from a user or a target (`walked`), never through another user's
symbolic link: the path is walked a component at a time with O_NOFOLLOW, and a link is
followed only when root owns it and the directory holding it (/lib -> usr/lib, Debian's
/usr/bin/python3), else refused. (-o has its own walk, trusted_paths, for a file to write as the
report's user.)
Each returns a read-only, non-blocking descriptor, or raises Refused (an OSError whose text says
what was refused and why)."""
import os
import stat

MAX_SIZE = 1 << 32  # 4 GiB: bigger is no library anyone traces, only a sparse decoy
LINKS = 40  # links followed in one path at most, as the kernel allows

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFLNK: "a symbolic link"}


class Refused(OSError):
    """A file root did not open; str() says why."""


def reason(error):
    """Why an OSError from here happened, in words (a Refused says it all; others, strerror)."""
    return str(error) if isinstance(error, Refused) else error.strerror or str(error)


def kind(mode):
    """What a file of st_mode `mode` is, in words."""
    return "a regular file" if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "special")


def followed(path):
    """A descriptor of the regular file at `path`, links followed: for the kernel's own links
    (/proc/PID/exe, /proc/PID/map_files/..., /proc/self/fd/N), which lead to the very file a
    process maps, and for a command's executable (the kernel follows the same links to run
    it)."""
    return regular(os.open(path, os.O_PATH | os.O_CLOEXEC), path)


def walked(path):
    """A descriptor of the regular file at `path`, a path a user or a target wrote: see walk."""
    return regular(walk(path), path)


def walk(path):
    """An O_PATH descriptor of what `path` names, reached a component at a time with
    O_NOFOLLOW from the directory before it; a symbolic link only if root owns it and only root
    can replace it (its text read from the link that was checked). Refused: another user's link,
    a link in a directory another user can write, too many links."""
    text = os.fsdecode(path)
    current = os.open("/" if text.startswith("/") else ".", os.O_PATH | os.O_CLOEXEC)
    pending, seen, links = text.split("/"), "/" if text.startswith("/") else "", LINKS
    try:
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            step = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            info = os.fstat(step)
            here = os.path.join(seen, name)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink("", dir_fd=step)  # the link just checked, not its name
                os.close(step)
                if info.st_uid != 0:
                    raise Refused(f"{here} is a symbolic link owned by uid {info.st_uid}: root "
                                  "follows only links root owns")
                if not _only_root_replaces(os.fstat(current)):
                    raise Refused(f"{here} is a symbolic link in a directory another user can "
                                  "write (and so replace the link)")
                links -= 1
                if links < 0:
                    raise Refused(f"{text}: more than {LINKS} symbolic links")
                pending = target.split("/") + pending
                if target.startswith("/"):
                    os.close(current)
                    current, seen = os.open("/", os.O_PATH | os.O_CLOEXEC), "/"
                continue
            os.close(current)
            current, seen = step, here
            if pending and any(part not in ("", ".") for part in pending) \
                    and not stat.S_ISDIR(info.st_mode):
                raise Refused(f"{here} is {kind(info.st_mode)}, not a directory")
        return current
    except BaseException:
        os.close(current)
        raise


def _only_root_replaces(directory):
    """Whether only root can put or replace an entry in `directory` (os.stat_result): root owns
    it and no one else may write it, or only under the sticky bit (others cannot replace
    root's entries then)."""
    mode = directory.st_mode
    return directory.st_uid == 0 and (not mode & 0o022 or bool(mode & stat.S_ISVTX))


def regular(handle, path):
    """A read-only, non-blocking descriptor of the file O_PATH `handle` refers to (closed), if
    it is a regular file of at most MAX_SIZE bytes: checked before it is opened (so no device
    is opened) and again after (the same inode, whatever happened to the path)."""
    try:
        info = os.fstat(handle)
        check_regular(info, path)
        fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        os.close(handle)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise Refused(f"{os.fsdecode(path)} changed while it was opened")
    return fd


def check_regular(info, path):
    """Refused unless os.stat_result `info` is a regular file of at most MAX_SIZE bytes."""
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"{os.fsdecode(path)} is {kind(info.st_mode)}, not a regular file")
    if info.st_size > MAX_SIZE:
        raise Refused(f"{os.fsdecode(path)} has {info.st_size} bytes: more than a library has "
                      f"({MAX_SIZE})")
