# SPDX-License-Identifier: MIT
"""What every report is made of: an entry is a location (a stack of Python frames, innermost
first) in one allocation domain, with its count and bytes. A frame is (file, line, function).

The reports (text tables, JSON, folded stacks, HTML) read entries only through this module, so
a deeper location (`--depth N`: N frames) changes what the producers put in `stack`, not them."""
from .names import shown

# probes.h's enum pymemtrace_domain; -1: a realloc, whose probe carries no domain.
DOMAINS = {0: "C heap", 1: "PyMem_Raw", 2: "PyMem", 3: "PyObject", 4: "C++", -1: "realloc"}
USER_DOMAIN = 16  # PYMEMTRACE_DOMAIN_USER: the first of the users' own allocators


def domain_name(domain):
    """A domain in words, as every report shows it (JSON keeps the number too)."""
    if domain >= USER_DOMAIN:
        return f"user {domain}"
    return DOMAINS.get(domain, f"domain {domain}")


def stack_of(entry):
    """The entry's frames, innermost first: its `stack`, or the one frame of a flat entry."""
    stack = entry.get("stack")
    if stack:
        return tuple(tuple(frame) for frame in stack)
    return ((entry["file"], entry["line"], entry["function"]),)


def frames_with_native(entry):
    """The entry's frames, innermost first, below them its native caller (--native): the
    stacks of folded and html reports."""
    stack = stack_of(entry)
    if entry.get("native"):
        from .native import frame  # late: native imports the runner's process machinery
        return (frame(entry["native"]),) + stack
    return stack


def native_id(entry):
    """What tells apart entries at the same Python location by their native caller; None."""
    native = entry.get("native")
    return None if native is None else (native["library"], native["offset"])


def frame_label(frame):
    """`file:line function`, escaped for showing (names come from the target)."""
    file, line, function = frame
    return f"{shown(file)}:{line} {shown(function)}"


def ranked(entries):
    """Entries largest first; ties by count, then by location, so the order is stable."""
    return sorted(entries, key=lambda e: (-e["bytes"], -e["count"],
                                          [(f, n, fn) for f, n, fn in stack_of(e)], e["domain"]))


def as_json(entry):
    """An entry for --json: the innermost frame flat (file, line, function), the whole stack,
    the domain as its number and in words, and its process (`pid`) or processes (`pids`)."""
    stack = stack_of(entry)
    file, line, function = stack[0]
    return {"file": file, "line": line, "function": function, "domain": entry["domain"],
            "domain_name": domain_name(entry["domain"]), "count": entry["count"],
            "bytes": entry["bytes"],
            "stack": [{"file": f, "line": n, "function": fn} for f, n, fn in stack],
            **{key: entry[key] for key in ("pid", "pids", "native") if key in entry}}
