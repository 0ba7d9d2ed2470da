# SPDX-License-Identifier: MIT
"""Which bpftrace root runs: looked for in a fixed list of system directories, never on PATH (a
PATH carried through sudo may name another user's directory, whose `bpftrace` would then run as
root). The directory and the binary must be root's and writable by root only; the path is walked
as safe_open walks, so a link on the way (/sbin -> usr/sbin) is followed only when root's."""
import functools
import os
import stat

from . import safe_open
from .errors import Failure

SYSTEM_DIRECTORIES = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin",
                      "/usr/local/bin")
FIX = ("install it as root (apt-get install bpftrace), into a directory of root's that only "
       "root may write")


@functools.cache
def path():
    """The bpftrace of the system (the first of SYSTEM_DIRECTORIES that has one); a Failure if
    none is there, or the first found is not safe to run as root."""
    return find(SYSTEM_DIRECTORIES)


def find(directories):
    """The path of the first `bpftrace` in `directories`, checked (see the module)."""
    for directory in directories:
        candidate = os.path.join(directory, "bpftrace")
        try:
            handle = safe_open.walk(candidate)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise Failure(f"{candidate} is not run: {safe_open.reason(error)}", FIX) from None
        try:
            binary = os.fstat(handle)
        finally:
            os.close(handle)
        holder = safe_open.walk(directory)
        try:
            held_in = os.fstat(holder)
        finally:
            os.close(holder)
        for what, info in ((candidate, binary), (directory, held_in)):
            if info.st_uid != 0 or info.st_mode & 0o022:
                raise Failure(f"{what} is not run as root: it belongs to uid {info.st_uid} with "
                              f"mode {stat.filemode(info.st_mode)} (root's, writable by root "
                              "only, is needed)", FIX)
        if not stat.S_ISREG(binary.st_mode):
            raise Failure(f"{candidate} is not a regular file", FIX)
        return candidate
    raise Failure("bpftrace is not installed (looked for in " + ", ".join(directories)
                  + "; PATH is not used)", FIX)
