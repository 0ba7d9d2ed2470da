# SPDX-License-Identifier: MIT
"""Root opens the files a target or a user names (libraries, directories to scan, a Python
binary) only this way: never a device, FIFO or socket (each path is first opened with O_PATH,
which neither acts nor blocks, and checked with fstat), never a file bigger than a library can
be, and, for path text from a user or a target (`walked`), never through another user's
symbolic link: the path is walked by path_walk with only root trusted, so a link is followed
only when root owns it and the directory holding it (/lib -> usr/lib, Debian's
/usr/bin/python3), else refused. (-o is walked the same way by trusted_paths, trusting the
report's user too.)
Each returns a read-only, non-blocking descriptor, or raises Refused (an OSError whose text says
what was refused and why)."""
import errno
import os
import stat

from . import path_walk

MAX_SIZE = 1 << 32  # 4 GiB: bigger is no library anyone traces, only a sparse decoy

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFLNK: "a symbolic link"}


Refused = path_walk.Refused  # a file root did not open; str() says why


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
    """An O_PATH descriptor of what `path` names, walked as path_walk does with only root's
    links trusted (Refused: another user's link, a link in a directory another user can write,
    '..' out of such a directory)."""
    place = path_walk.walk(os.fsdecode(path), trusted={0})
    try:
        if place.name is None:  # the path is the directory reached
            handle, place.directory = place.directory, None
            return handle
        if place.info is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        follow = 0 if place.kernel_link else os.O_NOFOLLOW
        handle = os.open(place.name, os.O_PATH | follow | os.O_CLOEXEC, dir_fd=place.directory)
        opened = os.fstat(handle)
        if not place.kernel_link and \
                (opened.st_dev, opened.st_ino) != (place.info.st_dev, place.info.st_ino):
            os.close(handle)
            raise Refused(f"{os.fsdecode(path)} changed while it was opened")
        return handle
    finally:
        if place.directory is not None:
            os.close(place.directory)


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
