# SPDX-License-Identifier: MIT
"""Files named in the bpftrace program. bpftrace parses a probe's path from the program text, so a
path is code: a directory named `x.so:pymemtrace:pyalloc{}interval:ms:9{exit()}usdt:` would add
clauses to root's bpftrace. The program names files only as /proc/<our PID>/fd/<N>, a file we
opened and checked: digits and slashes, whatever the real path holds, and the same inode that
was checked whatever happens to the path afterwards. bpftrace attaches through such a path."""
import os
import re

from . import safe_open

ALIAS = re.compile(r"/proc/\d+/fd/\d+")
PROBE_PATH = re.compile(r"\b(?:usdt|uprobe|uretprobe):([^:\s]+):")


class FileAliases:
    """Open files, each named by an alias the program can hold safely. Closed by close()."""

    def __init__(self):
        self.fds = []

    def open(self, path, probe_elf=False):
        """The alias of the regular file at `path`, links followed (safe_open.followed: the
        kernel's /proc links, a command's executable); with probe_elf, None if it is not ELF."""
        return self.adopt(safe_open.followed(path), probe_elf)

    def open_walked(self, path, probe_elf=False):
        """The same for path text a user or a target wrote (safe_open.walked: no link of another
        user is followed)."""
        return self.adopt(safe_open.walked(path), probe_elf)

    def adopt(self, fd, probe_elf=False):
        """The alias of `fd`, a descriptor safe_open checked, now this object's to close; with
        probe_elf, None (and `fd` closed) if the file is not ELF."""
        try:
            if probe_elf and os.pread(fd, 4, 0) != b"\x7fELF":
                os.close(fd)
                return None
        except OSError:
            os.close(fd)
            raise
        self.fds.append(fd)
        return f"/proc/{os.getpid()}/fd/{fd}"

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def check_program_paths(program):
    """Defence in depth: every file the program names is one of our aliases."""
    for path in PROBE_PATH.findall(program):
        if path != "*" and not ALIAS.fullmatch(path):
            raise AssertionError(f"internal error: a file named in the bpftrace program by its "
                                 f"own path: {path!r}")
