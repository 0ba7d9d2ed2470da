# SPDX-License-Identifier: MIT
"""--native: the C or C++ code that called the allocator, named from the target's library.

The record of each py* event carries the caller's return address as an offset from the
library's ELF header (include/pymemtrace/location.h, docs/probes.md); the programs key their maps
by it, with the library's index in the top 16 bits (LIBRARY_SHIFT). Here each (library, offset)
becomes the function, source file and line of the call (`addr2line -f -i -C` on offset - 1, the
call instruction): the innermost frame outside pymemtrace's own headers, the whole inline chain
kept for JSON. A library without debug info gives its symbol and line 0 (unknown).

The libraries are the target's, hostile input: they are parsed by binutils in a process that
has dropped to the `nobody` user for good (user_rights), reading a copy made from the
descriptor the runner checked and traced (the alias), never a path. Names that come back are
the target's strings, escaped wherever they are shown (names.shown)."""
import os
import pwd
import re
import subprocess

from .errors import Failure
from .names import shown
from .targets import CommandUser
from .user_rights import with_rights_of

LIBRARY_SHIFT = 48  # the key: library index << 48 | offset (a library is far below 2**48 bytes)
OFFSET_MASK = (1 << LIBRARY_SHIFT) - 1
ADDR2LINE = "/usr/bin/addr2line"
# pymemtrace's own headers: the wrappers inlined into the caller, not the caller.
_OWN_HEADER = re.compile(r"(^|/)pymemtrace/(pymemtrace|python|redirect|cxxheap|location|probes)"
                         r"\.h(pp)?$")
_ALIAS_FD = re.compile(r"/proc/\d+/fd/(\d+)\Z")


def split(key):
    """(library index, offset) of a program's native key; None for 0 (not known)."""
    key = int(key) & ((1 << 64) - 1)
    if key & OFFSET_MASK == 0:
        return None
    return key >> LIBRARY_SHIFT, key & OFFSET_MASK


def _symbolized(fd, offsets):
    """In the unprivileged process: {offset: [(function, file, line), ...] innermost first}."""
    copy = os.memfd_create("pymemtrace-native")  # ours: binutils reads it, not the target's path
    at = 0
    while True:
        chunk = os.pread(fd, 1 << 20, at)
        if not chunk:
            break
        os.write(copy, chunk)
        at += len(chunk)
    out = subprocess.run(
        [ADDR2LINE, "-f", "-i", "-C", "-a", "-e", f"/proc/self/fd/{copy}",
         *(f"{offset - 1:#x}" for offset in offsets)],
        capture_output=True, check=False, pass_fds=(copy,), timeout=120,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}).stdout.decode("utf-8", "surrogateescape")
    os.close(copy)
    chains, current = {}, None
    lines = out.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if re.fullmatch(r"0x[0-9a-f]+", line):  # -a: each address starts its chain
            current = chains.setdefault(int(line, 16) + 1, [])
            index += 1
            continue
        if current is not None and index + 1 < len(lines):
            where = lines[index + 1]
            file, _, number = where.rpartition(":")
            number = number.split(" ", 1)[0]  # "42 (discriminator 1)"
            current.append([line, file if file != "??" else "",
                            int(number) if number.isdigit() else 0])
            index += 2
            continue
        index += 1
    return {str(offset): chains.get(offset, []) for offset in offsets}


def _nobody():
    try:
        return CommandUser(pwd.getpwnam("nobody"))
    except KeyError:
        raise Failure("--native: there is no user `nobody` to parse the target's libraries as",
                      "add one (useradd --system nobody), or leave --native out") from None


def check_tools():
    """A Failure, before tracing, if --native could not name what it traced."""
    if not os.access(ADDR2LINE, os.X_OK):
        raise Failure(f"--native needs binutils' {ADDR2LINE} to name the C callers",
                      "install binutils (apt-get install binutils), or leave --native out")
    _nobody()


def caller(chain):
    """The frame that called the allocator: the innermost outside pymemtrace's headers."""
    for function, file, line in chain:
        if not _OWN_HEADER.search(file):
            return {"function": function, "file": file, "line": line}
    return None


def symbolize(libraries, keys):
    """{key: native} for the programs' native `keys` (split's), `libraries` the aliases in the
    programs' order. A native is {library, offset, function, file, line, inlined}: line 0 and
    file "" when the library has no line table; function "??" when not even a symbol."""
    wanted = {}
    for key in keys:
        parts = split(key)
        if parts is not None and parts[0] < len(libraries):
            wanted.setdefault(parts[0], set()).add(parts[1])
    found, user = {}, _nobody()
    for index, offsets in wanted.items():
        alias = libraries[index]
        aliased = _ALIAS_FD.match(alias)
        if aliased is None:  # never a path: only the descriptor the runner checked is read
            continue
        fd = int(aliased.group(1))
        ordered = sorted(offsets)
        chains, _fds = with_rights_of(user, lambda: (_symbolized(fd, ordered), []),
                                      "--native")
        try:
            name = os.readlink(alias)
        except OSError:
            name = alias
        for offset in ordered:
            chain = chains.get(str(offset), [])
            call = caller(chain) or {"function": "??", "file": "", "line": 0}
            found[index << LIBRARY_SHIFT | offset] = {
                "library": name, "offset": offset, **call,
                "inlined": [{"function": f, "file": fi, "line": n} for f, fi, n in chain]}
    return found


def frame(native):
    """The native caller as a report frame (file, line, function): below the Python frames."""
    return (native["file"] or os.path.basename(native["library"]), native["line"],
            native["function"])


def text(native):
    """`in cfunc (src.c:42)`, or `in symbol (lib.so+0x1234, line unknown)`: escaped."""
    if native is None:
        return "in ? (native caller unknown)"
    if native["function"] == "??" and native.get("inlined"):  # every frame is pymemtrace's
        return "in ? (inside pymemtrace's wrappers: the extension was built without inlining)"
    if native["line"]:
        return (f"in {shown(native['function'])} "
                f"({shown(os.path.basename(native['file']))}:{native['line']})")
    return (f"in {shown(native['function'])} ({shown(os.path.basename(native['library']))}"
            f"+{native['offset'] - 1:#x}, line unknown)")
