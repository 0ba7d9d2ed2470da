# SPDX-License-Identifier: MIT
"""What a report cannot see for the libraries it traced, in words with what would see it: the
allocations CPython makes on their behalf, the C++ heap of a library built without the C++ flags,
and the shared libraries they link. `not_seen(paths)` gives the sentences; the runner prints them
with every report, so that "Total: 0 bytes" is never read as "nothing".

The libraries are hostile input (paths of the traced command's files): every read is bounded, a
malformed file tells nothing, and a name is only ever quoted through `shown`."""
import os
import struct

from .. import CXX_WRAPPED
from .names import shown

# Every replaceable global operator new/delete: a library built with the redirect flags imports
# all of them (its cxxheap.h wrappers reference each); one built without imports what it calls.
CXX_OPERATORS = frozenset(CXX_WRAPPED)

# Linked by every extension, or whose allocations are the extension's own calls (wrapped) or
# CPython's (the first sentence): not "libraries they link" in the sense of a library's own heap.
SYSTEM_LIBRARIES = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux",
                    "libgcc_s.so", "libstdc++.so", "libpython")

HOOKS = "pymemtrace._hooks.install() (or python3 -m pymemtrace.hooked SCRIPT)"


def not_seen(paths):
    """The sentences for the traced libraries at `paths`: CPython's allocations for them (unless
    pymemtrace._hooks is among them), then per library its untraced C++ heap and the shared
    libraries it links."""
    lines = []
    if not any(is_hooks(path) for path in paths):
        lines.append("not seen: what CPython allocates for the traced extensions (objects from "
                     "tp_alloc, strings, lists and dicts built through the C API); "
                     f"{HOOKS} in the traced program reports them at the same lines")
    for path in paths:
        needed, imports = dynamic_facts(path)
        name = shown(os.path.basename(path))
        used = CXX_OPERATORS & imports
        if used and used != CXX_OPERATORS:
            lines.append(f"not seen: the C++ heap (operator new/delete) of {name}, built without "
                         "the C++ flags; rebuild it with `pkg-config --libs pymemtrace-redirect`")
        linked = [shown(library) for library in needed
                  if not library.startswith(SYSTEM_LIBRARIES)]
        if linked:
            lines.append(f"not seen: allocations inside the shared libraries {name} links "
                         f"({', '.join(linked)}); only the extension's own calls are traced")
    return lines


def is_hooks(path):
    """Whether `path` is pymemtrace._hooks' extension (pymemtrace/_hooks.<suffix>.so)."""
    directory, name = os.path.split(path)
    return os.path.basename(directory) == "pymemtrace" and name.startswith("_hooks.")


def dynamic_facts(path, limit=1 << 24):
    """(DT_NEEDED names, names of the undefined dynamic symbols) of the 64-bit little-endian ELF
    file at `path` (x86-64, aarch64); ([], frozenset()) if it is anything else or malformed."""
    try:
        with open(path, "rb") as file:
            data = file.read(limit)
    except OSError:
        return [], frozenset()
    try:
        return _dynamic_facts(data)
    except (struct.error, IndexError, ValueError):
        return [], frozenset()


def _dynamic_facts(data):
    if data[:6] != b"\x7fELF\x02\x01":
        return [], frozenset()
    table, = struct.unpack_from("<Q", data, 0x28)
    size, count = struct.unpack_from("<HH", data, 0x3A)
    if size != 64:
        return [], frozenset()
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, table + 64 * i) for i in range(count)]
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)

    def strings(index):
        _, _, _, _, offset, length, *_ = sections[index]
        return data[offset:offset + length]

    def text(table_bytes, at):
        return table_bytes[at:table_bytes.index(b"\0", at)].decode("utf-8", "replace")

    needed, imports = [], set()
    for _, kind, _, _, offset, length, link, _, _, entsize in sections:
        if kind == 6:  # SHT_DYNAMIC: (tag, value) pairs; DT_NEEDED is 1
            names = strings(link)
            for at in range(offset, offset + length, 16):
                tag, value = struct.unpack_from("<qQ", data, at)
                if tag == 0:
                    break
                if tag == 1:
                    needed.append(text(names, value))
        elif kind == 11 and entsize == 24:  # SHT_DYNSYM
            names = strings(link)
            for at in range(offset + 24, offset + length, 24):
                name, _, _, shndx = struct.unpack_from("<IBBH", data, at)
                if shndx == 0:  # SHN_UNDEF: imported
                    imports.add(text(names, name).split("@")[0])
    return needed, frozenset(imports)
