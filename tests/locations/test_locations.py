#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python locations in the py* probes, on every CPython 3.8-3.13 present, under real bpftrace.

For each interpreter: build locate_ext.c against its headers, run workload.py untraced (nothing
breaks, no semaphore set), then run it again while bpftrace is attached by path to the built
extension, and check that every pyalloc, pyrealloc and pyfree of that process names the file,
function and line of the tagged line that made it (pointers matched with the ones Python got),
and "" with line 0 where no Python location exists (a C thread with no thread state, the GIL
released, a C atexit callback, and sub-interpreters on 3.8-3.11); that the lookup survives its
own allocations (an allocator hook) and keeps a pending exception; and that the interpreter
exits 0. An interpreter that is absent is skipped with the reason printed; one present must pass.
Exits 77 when not root or without bpftrace.
"""
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.normpath(os.path.join(HERE, "..", "..", "include"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from tracing import BpftraceSession, require_tracer  # noqa: E402

PYENV = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
INTERPRETERS = [("Debian 3.11", "/usr/bin/python3")] + [
    (f"pyenv 3.{minor}", f"{PYENV}/versions/3.{minor}.*/bin/python3") for minor in range(8, 14)]
SOURCES = ("workload.py", "in_subinterpreter.py")
NOWHERE = ("", "", 0)
# Two 128-byte str() fit bpftrace 0.17's 512-byte BPF stack; paths are kept short anyway.
os.environ["BPFTRACE_STRLEN"] = "128"

PROGRAM = """
usdt:{so}:pymemtrace:pyalloc {{
    printf("EV|pyalloc|%d|%lu|0|%lu|%d|%s|%s|%d\\n", pid, arg0, arg1, arg2, str(arg3), str(arg4), arg5);
}}
usdt:{so}:pymemtrace:pyrealloc {{
    printf("EV|pyrealloc|%d|%lu|%lu|%lu|-1|%s|%s|%d\\n", pid, arg0, arg1, arg2, str(arg3), str(arg4), arg5);
}}
usdt:{so}:pymemtrace:pyfree {{
    printf("EV|pyfree|%d|%lu|0|0|%d|%s|%s|%d\\n", pid, arg0, arg1, str(arg2), str(arg3), arg4);
}}
"""


def tagged_lines(path):
    """{tag: line number} for every `# ALLOC: tag` comment in the file."""
    with open(path, encoding="utf-8") as source:
        return {match.group(1): number for number, line in enumerate(source, 1)
                for match in [re.search(r"# ALLOC: (\w+)", line)] if match}


def function_names(version):
    """The function each tag's probes must name: co_qualname on 3.11+, co_name before."""
    qualified = version >= (3, 11)
    if version >= (3, 12):
        listcomp = "comprehension"  # PEP 709: comprehensions are inlined, no frame of their own
    elif qualified:
        listcomp = "comprehension.<locals>.<listcomp>"
    else:
        listcomp = "<listcomp>"
    names = {
        "nested": "outer.<locals>.inner" if qualified else "inner",
        "method": "Widget.build" if qualified else "build",
        "generator": "generator", "lambda": "<lambda>", "listcomp": listcomp,
        "non_ascii": "größe", "thread": "in_thread", "except": "while_handling", "pending_error": "with_pending_error",
        "atexit": "at_exit", "atexit_free": "at_exit", "module": "<module>",
        "subinterpreter_malloc": "<module>", "subinterpreter_free": "<module>",
    }
    names.update((tag, "every_family") for tag in
                 ("function_malloc", "function_calloc", "function_realloc",
                  "function_realloc_null", "function_free"))
    return names


def expected_locations(python, version, workdir):
    """{tag: (file, function, line)}; NOWHERE where there is no Python location."""
    workload, subinterpreter = (os.path.join(workdir, name) for name in SOURCES)
    lines = dict(tagged_lines(workload))
    sub_lines = tagged_lines(subinterpreter)
    names = function_names(version)
    where = {tag: (workload, names[tag], line) for tag, line in lines.items()}
    # The exec slot runs under importlib's _call_with_frames_removed: ask the interpreter where.
    init = subprocess.run([python, "-c", (
        "import dis, importlib._bootstrap as b; c = b._call_with_frames_removed.__code__;"
        "print(c.co_filename, max(l for _, l in dis.findlinestarts(c) if l), sep='|')")],
        capture_output=True, text=True, check=True).stdout.strip().split("|")
    where["init"] = (init[0], "_call_with_frames_removed", int(init[1]))
    for tag in ("c_thread", "without_gil", "atexit_c"):
        where[tag] = NOWHERE
    # 3.8-3.11 know the calling thread only through PyGILState, which a sub-interpreter on a
    # thread that already has a main-interpreter thread state does not update (see python.h).
    sub_known = version >= (3, 12)
    for tag, line in sub_lines.items():
        where[tag] = (subinterpreter, names[tag], line) if sub_known else NOWHERE
    where["subinterpreter_init"] = where["init"] if sub_known else NOWHERE
    return where


def expected_events(records, where):
    """The py* events the records imply, as (probe, ptr, new_ptr, size, domain, file, function, line)."""
    events = []
    for tag, op, domain, size, ptr, new_ptr in records:
        domain, size, ptr, new_ptr = int(domain), int(size), int(ptr), int(new_ptr)
        if op in ("malloc", "calloc"):
            event = ("pyalloc", ptr, 0, size, domain)
        elif op == "realloc" and ptr == 0:
            event = ("pyalloc", new_ptr, 0, size, domain)
        elif op == "realloc":
            event = ("pyrealloc", ptr, new_ptr, size, -1)
        else:
            event = ("pyfree", ptr, 0, 0, domain)
        events.append(event + where[tag])
    return events


def parse(lines, tag):
    return [line.split("|")[1:] for line in lines if line.startswith(tag + "|")]


def build(python, workdir):
    """Compile locate_ext for `python` into workdir (no libpython link: the interpreter has it)."""
    include = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('INCLUDEPY'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python.h in {include}"
    so = os.path.join(workdir, "locate_ext.so")
    compiler = os.environ.get("CC", "cc").split()
    subprocess.run([*compiler, "-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                    "-shared", "-fPIC", "-pthread", "-isystem", include, "-I", INCLUDE,
                    os.path.join(HERE, "locate_ext.c"), "-o", so], check=True)
    for name in SOURCES:
        shutil.copy(os.path.join(HERE, name), workdir)
    return None


def run_workload(python, workdir):
    proc = subprocess.run([python, os.path.join(workdir, "workload.py"),
                           os.path.join(workdir, "in_subinterpreter.py")],
                          cwd=workdir, capture_output=True, encoding="utf-8", timeout=120)
    return proc


class Failures:
    def __init__(self):
        self.messages = []

    def check(self, condition, message):
        if not condition:
            self.messages.append(message)
        return condition


def test_untraced(python, workdir, failures):
    """With no tracer attached the workload runs, exits 0 and sees every semaphore clear."""
    proc = run_workload(python, workdir)
    if failures.check(proc.returncode == 0, f"untraced run exited {proc.returncode}:\n{proc.stderr}"):
        failures.check(parse(proc.stdout.splitlines(), "ENABLED") == [["0"] * 6],
                       f"semaphores set with no tracer: {parse(proc.stdout.splitlines(), 'ENABLED')}")


def test_traced(python, version, workdir, failures):
    """Every py* event of the workload names the right place; nothing else breaks."""
    so = os.path.join(workdir, "locate_ext.so")
    with BpftraceSession(PROGRAM.format(so=so)) as session:
        proc = subprocess.Popen([python, os.path.join(workdir, "workload.py"),
                                 os.path.join(workdir, "in_subinterpreter.py")],
                                cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8")
        out, err = proc.communicate(timeout=120)
        lines = session.stop()
    if not failures.check(proc.returncode == 0, f"traced run exited {proc.returncode}:\n{err}"):
        return ""
    output = out.splitlines()
    failures.check(parse(output, "ENABLED") == [["0", "1", "0", "1", "0", "1"]],
                   f"py* semaphores not set while traced: {parse(output, 'ENABLED')}")
    events = [(probe, int(ptr), int(new), int(size), int(domain), file, function, int(line))
              for probe, pid, ptr, new, size, domain, file, function, line in parse(lines, "EV")
              if int(pid) == proc.pid]
    hooked = [event for event in events if event[4] == 16]
    observed = collections.Counter(event for event in events if event[4] != 16)
    expected = collections.Counter(expected_events(parse(output, "REC"),
                                                   expected_locations(python, version, workdir)))
    missing, unexpected = expected - observed, observed - expected
    failures.check(not missing and not unexpected,
                   "py* events differ from the workload's records:\n  missing (expected, not seen):\n    "
                   + "\n    ".join(map(str, sorted(missing.elements())))
                   + "\n  unexpected (seen, not expected):\n    "
                   + "\n    ".join(map(str, sorted(unexpected.elements()))))
    # The allocator hook: its blocks are reported from where Python was, and on 3.11+ the
    # lookup's own frame object comes back through the hook, where the guard makes it NOWHERE.
    workload = os.path.join(workdir, "workload.py")
    located = [e for e in hooked if e[5] == workload and e[6] in ("hooked", "hooked.<locals>.<listcomp>",
                                                                  "<listcomp>")]
    failures.check(located, f"no hooked allocation located in hooked(): {hooked[:20]}")
    if version >= (3, 11):
        failures.check(any(e[5:] == NOWHERE for e in hooked if e[0] == "pyalloc"),
                       "3.11+: no nested (guarded) lookup seen through the allocator hook")
    nowhere = sum(count for event, count in observed.items() if event[5:] == NOWHERE)
    return (f"{sum(observed.values())} py* events matched ({nowhere} without a location), "
            f"{len(hooked)} through the hook ({sum(e[5:] == NOWHERE for e in hooked)} guarded)")


def main():
    require_tracer()
    failed = False
    for label, pattern in INTERPRETERS:
        found = sorted(glob.glob(pattern))
        if not found:
            print(f"SKIP {label}: no interpreter matches {pattern}")
            continue
        python = found[-1]
        version = tuple(int(part) for part in subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, check=True).stdout.split())
        workdir = tempfile.mkdtemp(prefix="pmt")  # short: bpftrace's str() reads 128 bytes
        try:
            reason = build(python, workdir)
            if reason:
                print(f"SKIP {label} ({python}): {reason}")
                continue
            failures = Failures()
            test_untraced(python, workdir, failures)
            summary = test_traced(python, version, workdir, failures)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if failures.messages:
            failed = True
            print(f"FAIL {label} ({python}):\n  " + "\n  ".join(failures.messages))
        else:
            print(f"PASS {label} ({python}): {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
