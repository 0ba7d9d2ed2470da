# SPDX-License-Identifier: MIT
"""What a report cannot see for the libraries it traced, in words with what would see it: the
allocations CPython makes on their behalf, the C++ heap of a library built without the C++ flags,
and the shared libraries they link. `not_seen(paths)` gives the sentences; the runner prints them
with every report, so that "Total: 0 bytes" is never read as "nothing".

The libraries are hostile input (paths of the traced command's files): they are read by
elf.dynamic_facts (opened through safe_open, every read bounded; a malformed file tells nothing),
and a name is only ever quoted through `shown`."""
import os

from .. import CXX_WRAPPED
from .aliases import ALIAS
from .elf import dynamic_facts
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
    """The sentences for the traced libraries at `paths` (or the runner's aliases of them):
    CPython's allocations for them (said conditionally when pymemtrace._hooks is among them: it
    is attached when importable, installed or not), then per library
    its untraced C++ heap and the shared libraries it links."""
    lines = []
    if not any(is_hooks(real_name(path)) for path in paths):
        lines.append("not seen: what CPython allocates for the traced extensions (objects from "
                     "tp_alloc, strings, lists and dicts built through the C API); "
                     f"{HOOKS} in the traced program reports them at the same lines")
    else:  # attached because it is importable: whether the program installed it is not known
        lines.append("not seen unless the traced program installed the hooks: what CPython "
                     "allocates for the traced extensions (objects from tp_alloc, strings, lists "
                     f"and dicts built through the C API); {HOOKS}")
    names = _distinct_names([real_name(path) for path in paths])
    for path in paths:
        needed, imports = dynamic_facts(path)
        name = names[real_name(path)]
        used = CXX_OPERATORS & imports
        if used and used != CXX_OPERATORS:
            lines.append(f"not seen: the C++ heap (operator new/delete) of {name}, built without "
                         "the C++ flags; rebuild it with `pkg-config --libs pymemtrace-redirect`")
        linked = [shown(library) for library in needed
                  if not library.startswith(SYSTEM_LIBRARIES)]
        if linked:
            lines.append(f"not seen: allocations inside the shared libraries {name} links "
                         f"({', '.join(linked)}); only the extension's own calls are traced")
    return list(dict.fromkeys(lines))  # a file traced through two aliases is said once


def _distinct_names(paths):
    """{path: how a sentence names it}: the file's name, or its whole path where another traced
    file has the same name (a scan may find copies of one extension in several builds)."""
    by_name = {}
    for path in dict.fromkeys(paths):
        by_name.setdefault(os.path.basename(path), []).append(path)
    return {path: shown(name if len(same) == 1 else path)
            for name, same in by_name.items() for path in same}


def real_name(path):
    """The path a runner's alias (/proc/PID/fd/N, aliases.FileAliases) was opened as, as the
    kernel keeps it; any other path as it is."""
    if ALIAS.fullmatch(path):
        try:
            return os.readlink(path)
        except OSError:
            return path
    return path


def is_hooks(path):
    """Whether `path` is pymemtrace._hooks' extension (pymemtrace/_hooks.<suffix>.so)."""
    directory, name = os.path.split(path)
    return os.path.basename(directory) == "pymemtrace" and name.startswith("_hooks.")
