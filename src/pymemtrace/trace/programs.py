# SPDX-License-Identifier: MIT
"""The bpftrace program for the options given: which toolkit script, with which files."""
import collections

from . import scripts, stacks
from .aliases import check_program_paths
from .errors import Failure


def for_another_user(user, environ):
    """Whether the report is for a user other than root: the command's (`user`, a
    targets.CommandUser or None), or the one who ran sudo (-p). Then a traced process that
    execs a set-ID program is no longer traced (scripts.bpftrace_script's `setid`); root, who
    may ptrace any process, sees it all."""
    sudo_uid = environ.get("SUDO_UID", "")
    return (user is not None and user.uid != 0) or (sudo_uid.isdigit() and int(sudo_uid) != 0)


# What to run: a toolkit script (its name, without .bt), its positional words, the kind of
# report it feeds, and the domain a flow's events belong to when its lines do not say.
Plan = collections.namedtuple("Plan", "script words kind flow_domain")


def choose_script(request, pymalloc=True):
    """The Plan for the options given (`pymalloc`: whether the target Python uses it).

    The scripts always get `full_file_path`: cutting a path to its basename in BPF reads it a byte at
    a time on every event (7x the cost of the event for a 100-character path, measured, and
    still 1.8x reading a word at a time); the report does it instead, once per location (see
    reports.Shortener)."""
    words = ["full_file_path"] + (["python_call_stack"] if request.python_call_stack else [])
    if request.libc:
        return Plan("py_flow_malloc_free", words, "flowlog", 0)
    if request.object_allocator:
        letter = "D" if pymalloc else "U"
        return Plan(f"py_object_{letter}_WITH_PYMALLOC", words, "flowlog",
                    3 if letter == "D" else 1)
    if request.frames == "python-probes":
        return Plan("pymemtrace_pyframes", [request.report] + words, request.report, -1)
    if request.python_call_stack:
        raise Failure("--python-call-stack needs CPython's own probes",
                      "add --frames python-probes (or --libc / --object-allocator)")
    return Plan(f"pymemtrace_{request.report}", words, request.report, -1)


def make_program(script, libraries, python, libc, follow=True, interval=None, everyone=False,
                 depth=1, setid=False, native_caller=False):
    """The program of toolkit script `script` (scripts.SCRIPTS) with its probes on `libraries`,
    `python` and `libc`: aliases only, which the last check enforces. `follow`: the processes
    the target forks are traced too; `interval`, `everyone`, `setid`: see
    scripts.bpftrace_script. `depth` > 1: summary or leaks by stacks of that many frames
    (stacks.py's programs); `native_caller`: by the C caller too (--native, stacks.py's programs
    at any depth)."""
    if depth > 1 or native_caller:
        text = stacks.bpftrace_program(script[len("pymemtrace_"):], depth, libraries or None,
                                       follow, everyone, setid=setid,
                                       native_caller=native_caller)
        check_program_paths(text)
        return text
    text = scripts.bpftrace_script(script, libraries=libraries or None,
                                   python=python or scripts.BT_PYTHON,
                                   libc=libc or scripts.BT_LIBC, follow=follow,
                                   interval=interval, everyone=everyone, whole_paths=True,
                                   setid=setid)
    check_program_paths(text)
    return text
