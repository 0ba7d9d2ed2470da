# SPDX-License-Identifier: MIT
"""The bpftrace program for the options given: which toolkit script, with which files."""
import collections
import os
import re

from .aliases import check_program_paths
from .errors import Failure

TOOLKIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "toolkit")

# What the .bt files are written against (Debian 12); replaced by what the target really uses.
BT_PYTHON = "/usr/bin/python3.11"
BT_LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


# What to run: a toolkit script, its positional words, the kind of report it feeds, and the
# domain a flow's events belong to when its lines do not say.
Plan = collections.namedtuple("Plan", "script words kind flow_domain")


def choose_script(args, pymalloc=True):
    """The Plan for the options given (`pymalloc`: whether the target Python uses it).

    The scripts always get `full_path`: cutting a path to its basename in BPF reads it a byte at
    a time on every event (7x the cost of the event for a 100-character path, measured, and
    still 1.8x reading a word at a time); the report does it instead, once per location (see
    reports.Shortener)."""
    words = ["full_path"] + (["call_stack"] if args.call_stack else [])
    if args.libc:
        return Plan("py_flow_malloc_free.bt", words, "flowlog", 0)
    if args.object_allocator:
        letter = "D" if pymalloc else "U"
        return Plan(f"py_object_{letter}_WITH_PYMALLOC.bt", words, "flowlog",
                    3 if letter == "D" else 1)
    if args.frames == "python-probes":
        return Plan("pymemtrace_pyframes.bt", [args.report] + words, args.report, -1)
    if args.call_stack:
        raise Failure("--call-stack needs CPython's own probes",
                      "add --frames python-probes (or --libc / --object-allocator)")
    return Plan(f"pymemtrace_{args.report}.bt", words, args.report, -1)


def make_program(script, libraries, python, libc):
    """The script's text with its probes on `libraries`, `python` and `libc` (aliases only)."""
    with open(os.path.join(TOOLKIT, script)) as source:
        text = source.read()

    def by_library(match):
        name = match.group(1)
        return ",".join(f"usdt:{lib}:pymemtrace:{name}" for lib in libraries)

    text = re.sub(r"usdt:\*:pymemtrace:(\w+)", by_library, text)
    if python:
        text = text.replace(f"usdt:{BT_PYTHON}:", f"usdt:{python}:")
        text = text.replace(f"uprobe:{BT_PYTHON}:", f"uprobe:{python}:")
        text = text.replace(f"uretprobe:{BT_PYTHON}:", f"uretprobe:{python}:")
    if libc:
        text = text.replace(f"probe:{BT_LIBC}:", f"probe:{libc}:")
    check_program_paths(text)
    return text
