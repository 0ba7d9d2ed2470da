# SPDX-License-Identifier: MIT
"""What the runner learns about a target's Python from its ELF file, read (bounded), never run:
root running a target's executable, or even Debian's python3 in root's working directory, runs
whatever that user put there (issue 19)."""
import os
import struct

from . import elf

# printf format of _PyObject_DebugMallocStats, which CPython compiles only WITH_PYMALLOC (in
# Objects/obmalloc.c, 3.6 to 3.13 alike): in the read-only data of every pymalloc build checked
# (Debian's 3.11, pyenv's 3.6 to 3.13), absent from a --without-pymalloc one.
PYMALLOC_MARK = b"Small block threshold = %d, in %u size classes.\n\0"
READ_ONLY_BUDGET = 64 << 20  # bytes of read-only data read at most (3.13's: 1 MiB)
_CHUNK = 1 << 20
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 1, 2, 4


def uses_pymalloc(path):
    """Whether the Python binary at `path` (an alias: a checked regular file) was built with
    pymalloc, from the strings of its read-only sections; None if its sections cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            headers = elf.section_headers(file)
        except (OSError, ValueError, struct.error):
            return None
        if headers is None:
            return None
        budget = READ_ONLY_BUDGET
        for _name, kind, flags, offset, size, *_ in headers[2]:
            if kind != 1 or flags & (_SHF_WRITE | _SHF_ALLOC | _SHF_EXECINSTR) != _SHF_ALLOC:
                continue  # SHT_PROGBITS, allocated, neither written nor run: .rodata
            size = min(size, budget)
            budget -= size
            if _holds(file, offset, size, PYMALLOC_MARK):
                return True
        return False


def _holds(file, offset, size, mark):
    """Whether `size` bytes of `file` from `offset` hold `mark`, read a chunk at a time."""
    tail, end = b"", offset + size
    while offset < end:
        data = os.pread(file.fileno(), min(_CHUNK, end - offset), offset)
        if not data:
            return False
        if mark in tail + data:
            return True
        tail, offset = data[-len(mark):], offset + len(data)
    return False
