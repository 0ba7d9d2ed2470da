# SPDX-License-Identifier: MIT
"""`--frames python-probes` on the libbpf engine (issue 20): CPython's own probes attached per
traced process, so that no other Python pays. The engine's summary and leaks equal the bpftrace
runner's for the same workload, as a command and with -p; while either traces one Python,
another user's /usr/bin/python3 keeps its `line` and `function__entry` semaphores at 0 (it never
traps) and runs to its normal end. bpftrace 0.17 attaches these probes by path: it sets the
bystander's semaphores (checked below, the reason the engine takes this mode). Run through
tests/support/run_pytest.py, as root."""
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "src"))
from other_user import other_user  # noqa: E402
from runner import BUILD_SRC, PYTHON, RUNNER, pid_run  # noqa: E402

from pymemtrace.trace import elf, procfs  # noqa: E402

PYTHON_BINARY = os.path.realpath(PYTHON)
CPYTHON_PROBES = ("line", "function__entry")

# Python-to-Python calls (which CPython 3.11 does not report as entries), calls entered from C
# (map), a frame left by an exception, a generator resumed, an allocation in the frame a call
# returned to, module level; blocks kept (leaks)
# and freed; it ends with os._exit so that what it holds is still live at the report.
WORKLOAD = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
kept = []
def leaf(size):
    kept.append(cMemLeak.CMalloc(size))
    cMemLeak.PyMalloc(size * 2)
def middle(n):
    for i in range(n):
        leaf(10 + i)
    kept.append(cMemLeak.PyRawMalloc(24))
def from_c(size):
    return cMemLeak.CMalloc(size)
def fails():
    kept.append(cMemLeak.CMalloc(5))
    raise ValueError
def catches():
    try:
        fails()
    except ValueError:
        kept.append(cMemLeak.CMalloc(6))
def generates():
    for size in (30, 31):
        kept.append(cMemLeak.CMalloc(size))
        yield
def drives():
    for _ in generates():
        kept.append(cMemLeak.CMalloc(40))
def size_of(n):
    return n * 2
def objects():
    for size in (50, 60):
        kept.append(cMemLeak.PyObjectMalloc(size))
        cMemLeak.PyObjectMalloc(size + 1)
def after_a_call():
    kept.append(cMemLeak.CMalloc(size_of(4)))
print(os.getpid(), flush=True)
sys.stdin.readline()
after_a_call()
middle(5)
kept.extend(map(from_c, [7, 8, 9]))
catches()
drives()
objects()
kept.append(cMemLeak.CMalloc(3))
print("done", flush=True)
os._exit(0)
"""

# Another user's Python: calls a function in a loop until its stdin closes, then says so.
BYSTANDER = """\
import os, sys, threading
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
def step(i):
    return i + 1
print(os.getpid(), flush=True)
i = 0
while not done.is_set():
    i = step(i)
print("clean exit", flush=True)
"""


def line_of(text):
    """The line of WORKLOAD where `text` starts."""
    return WORKLOAD[:WORKLOAD.index(text)].count("\n") + 1


def cpython_semaphores(pid):
    """{probe: value} of CPython's `line` and `function__entry` semaphores in process `pid`."""
    linked = {probe.name: probe.semaphore for probe in elf.probes(PYTHON_BINARY)
              if probe.provider == "python" and probe.name in CPYTHON_PROBES}
    assert set(linked) == set(CPYTHON_PROBES), linked
    addresses = procfs.runtime_addresses(pid, PYTHON_BINARY, linked)
    assert addresses, f"process {pid} does not map {PYTHON_BINARY}"
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        values = {}
        for name, address in addresses.items():
            mem.seek(address)
            values[name] = int.from_bytes(mem.read(2), "little")
    return values


ALLOCATOR_FUNCTIONS = ("PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "PyObject_Free")
LIBC = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
LIBC_FUNCTIONS = ("malloc", "calloc", "realloc", "free")


def breakpoints(pid, binary=PYTHON_BINARY, functions=ALLOCATOR_FUNCTIONS):
    """{function: 1 if a breakpoint (int3) is written at its first byte in process `pid`, else 0}
    of the allocator `functions` of `binary`: a uprobe is that breakpoint, written only into the
    code of the processes it was attached in."""
    symbols = subprocess.run(["nm", "-D", "--defined-only", binary], capture_output=True,
                             text=True, check=True).stdout.split("\n")
    linked = {fields[2].split("@")[0]: int(fields[0], 16) for fields in map(str.split, symbols)
              if len(fields) == 3 and fields[2].split("@")[0] in functions}
    assert set(linked) == set(functions), linked
    addresses = procfs.runtime_addresses(pid, binary, linked)
    assert addresses, f"process {pid} does not map {binary}"
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        values = {}
        for name, address in addresses.items():
            mem.seek(address)
            values[name] = int(mem.read(1) == b"\xcc")
    return values


# What tracing changes in a process, by mode: CPython's semaphores, or breakpoints.
LOOKS = {"python-probes": cpython_semaphores, "object-allocator": breakpoints,
         "libc": lambda pid: breakpoints(pid, LIBC, LIBC_FUNCTIONS)}


def rows(report_text):
    """{(line, function, domain): (count, bytes)} of the workload's rows in a --json report."""
    return {(e["line"], e["function"], e["domain_name"]): (e["count"], e["bytes"])
            for e in json.loads(report_text) if e["file"] == "workload.py"}


# The modes: CPython's probes locating the plain ones, and Python's object allocator.
MODES = {"python-probes": ["--frames", "python-probes"], "object-allocator": ["--object-allocator"],
         "libc": ["--libc"]}


def as_json(options):
    """`options` and --json, but for the flow: text only."""
    return options if "flow" in options else [*options, "--json"]


def traced_as_command(directory, engine, options, while_traced=lambda pid: None):
    """The --json report (the flow's text) of the runner's `options` on the workload run as its
    command; `while_traced(pid)` is called once the command runs traced, before it allocates."""
    out = os.path.join(directory, "report.json")
    runner = subprocess.Popen(
        [PYTHON, RUNNER, "--engine", engine, *as_json(options), "-o", out,
         "--", PYTHON, os.path.join(directory, "workload.py"), BUILD_SRC],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=directory)
    try:
        pid = int(runner.stdout.readline())
        while_traced(pid)
        stdout, stderr = runner.communicate("go\n", timeout=180)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, stderr[-800:]
    assert "done" in stdout
    return open(out).read()


def traced_by_pid(directory, engine, options, while_traced=lambda pid: None):
    """The --json report of the workload traced with -p; `while_traced(pid)` as above."""
    target = subprocess.Popen([PYTHON, os.path.join(directory, "workload.py"), BUILD_SRC],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=directory)
    try:
        pid = int(target.stdout.readline())
        original_write = target.stdin.write

        def released(text):  # pid_run releases the target once the runner traces it
            while_traced(pid)
            return original_write(text)
        target.stdin.write = released
        status, out, err = pid_run(target, ["--engine", engine, *as_json(options)])
    finally:
        if target.poll() is None:
            target.kill()
        target.wait()
    assert status == 0, err[-800:]
    return out


TRACED = {"command": traced_as_command, "pid": traced_by_pid}


@pytest.fixture
def workload_dir():
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "workload.py"), "w") as source:
            source.write(WORKLOAD)
        yield directory


@pytest.mark.parametrize("report", ["summary", "leaks"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_reports_what_the_bpftrace_runner_reports(workload_dir, mode, report):
    options = [*MODES["python-probes"], "--report", report]
    engine = rows(TRACED[mode](workload_dir, "libbpf", options))
    bpftrace = rows(TRACED[mode](workload_dir, "bpftrace", options))
    assert engine == bpftrace
    # Located by CPython's probes: a Python-to-Python call, calls entered from C, the frame
    # below one an exception left, a generator and its caller, module level.
    assert engine[(line_of("CMalloc(size))\n    cMemLeak.Py"), "leaf", "C heap")] == (
        5, 10 + 11 + 12 + 13 + 14), engine
    assert engine[(line_of("return cMemLeak.CMalloc"), "from_c", "C heap")] == (3, 24), engine
    assert engine[(line_of("CMalloc(5)"), "fails", "C heap")] == (1, 5), engine
    assert engine[(line_of("CMalloc(6)"), "catches", "C heap")] == (1, 6), engine
    assert engine[(line_of("CMalloc(size))\n        yield"), "generates", "C heap")] == (
        2, 61), engine
    assert engine[(line_of("CMalloc(40)"), "drives", "C heap")] == (2, 80), engine
    assert engine[(line_of("CMalloc(3)"), "<module>", "C heap")] == (1, 3), engine
    # The frame a call returned to, with no line event since: the stack, not the last line.
    assert engine[(line_of("CMalloc(size_of"), "after_a_call", "C heap")] == (1, 8), engine
    freed = (line_of("PyMalloc(size * 2)"), "leaf", "PyMem")
    assert (freed in engine) == (report == "summary"), engine


def flow_rows(flow_text):
    """The event rows of a flow, its PIDs and pointers (which differ from run to run) masked:
    kinds, sizes, domains and locations, in order."""
    lines = flow_text.splitlines()
    assert "dtrace:::BEGIN" in lines and "dtrace:::END" in lines, flow_text[-800:]
    events = lines[lines.index("dtrace:::BEGIN") + 1:lines.index("dtrace:::END")]
    return [re.sub(r"0x[0-9a-f]+", "0x?", re.sub(r"^ *[0-9]+ ", "PID ", row))
            for row in events if row]


@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_flows_the_rows_the_bpftrace_runner_flows(workload_dir, mode):
    options = [*MODES["python-probes"], "--report", "flow"]
    engine = flow_rows(TRACED[mode](workload_dir, "libbpf", options))
    assert engine == flow_rows(TRACED[mode](workload_dir, "bpftrace", options))
    # Located by CPython's probes: an allocation and the free of its block, a generator.
    at = f"workload.py:{line_of('PyMalloc(size * 2)')} "
    assert any(at in row and "-> leaf malloc(20) pntr 0x? domain 2" in row for row in engine)
    assert any(at in row and "-> leaf free(0x?) domain 2" in row for row in engine)
    assert sum("-> generates malloc(" in row for row in engine) == 2, engine


REDIRECT_BUILT = os.environ.get("PYMEMTRACE_REDIRECT_MESON", "")
REDIRECT_DIR = os.path.join(ROOT, "tests", "redirect")


def redirect_run(engine, report):
    """The --json report (the flow's text) of tests/redirect's workload (reallocs that move,
    grow and free; four domains), run as the runner's command on `engine`."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "report.json")
        result = subprocess.run(
            [PYTHON, RUNNER, "--engine", engine,
             *as_json(["--frames", "python-probes", "--report", report]),
             "-o", out, "--", PYTHON, "-c", "import workload; workload.main()"],
            capture_output=True, text=True, timeout=180, cwd=scratch,
            env=dict(os.environ, PYTHONPATH=f"{REDIRECT_BUILT}:{REDIRECT_DIR}"))
        assert result.returncode == 0, result.stderr[-800:]
        return open(out).read()


def redirect_rows(engine, report):
    """{(line, function, domain): (count, bytes)} of redirect_run's report."""
    return rows(redirect_run(engine, report))


def test_the_engine_flows_reallocs_as_the_bpftrace_runner_does():
    engine = flow_rows(redirect_run("libbpf", "flow"))
    assert engine == flow_rows(redirect_run("bpftrace", "flow"))
    assert sum(" realloc(0x?, " in row for row in engine) >= 3, engine


@pytest.mark.parametrize("report", ["summary", "leaks"])
def test_the_engine_reports_reallocs_as_the_bpftrace_runner_does(report):
    engine = redirect_rows("libbpf", report)
    assert engine == redirect_rows("bpftrace", report)
    assert any(domain == "realloc" for _line, _function, domain in engine) == (
        report == "summary"), engine


GROWS = """\
import os, redirected
redirected.grow(3, 300)
redirected.keep(3, 900)
os._exit(0)
"""


@pytest.mark.parametrize("report", ["summary", "leaks"])
def test_the_engine_reports_object_reallocs_as_the_bpftrace_runner_does(report):
    """tests/redirect's extension: PyObject_Malloc(300), PyObject_Realloc to 600 (the block
    moves out of pymalloc's pools: the old one is not live), PyObject_Free; then a block of 900
    kept."""
    def traced(engine):
        with tempfile.TemporaryDirectory() as scratch:
            with open(os.path.join(scratch, "workload.py"), "w") as source:
                source.write(GROWS)
            out = os.path.join(scratch, "report.json")
            result = subprocess.run(
                [PYTHON, RUNNER, "--engine", engine, *MODES["object-allocator"], "--report",
                 report, "--json", "-o", out, "--", PYTHON, "workload.py"],
                capture_output=True, text=True, timeout=180, cwd=scratch,
                env=dict(os.environ, PYTHONPATH=f"{REDIRECT_BUILT}:{REDIRECT_DIR}"))
            assert result.returncode == 0, result.stderr[-800:]
            return rows(open(out).read())
    engine = traced("libbpf")
    assert engine == traced("bpftrace")
    if report == "summary":
        assert engine[(2, "<module>", "PyObject")] == (2, 300 + 600), engine
    else:
        assert (2, "<module>", "PyObject") not in engine, engine
    assert engine[(3, "<module>", "PyObject")] == (1, 900), engine


def bystander_while_traced(engine, mode, workload_dir, tracing="python-probes",
                           report="summary", options=()):
    """(what the run added to the bystander's semaphores or breakpoints, the traced target's,
    the bystander's as read) while the runner on `engine` traces the workload in `mode` (with
    `options` more); the
    bystander, another user's Python, must run to its normal end. What the run added: what they
    were before and after it is taken off, so that a tracer outside the test (another bpftrace on
    a shared machine, which sets them in every Python) is not counted; alone on a machine, as in
    CI, that is all of it."""
    seen = {}
    with other_user() as user:
        bystander = user.popen([PYTHON, "-c", BYSTANDER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        try:
            bystander_pid = int(bystander.stdout.readline())
            before = LOOKS[tracing](bystander_pid)

            def look(target_pid):
                seen["bystander"] = LOOKS[tracing](bystander_pid)
                seen["target"] = LOOKS[tracing](target_pid)
            TRACED[mode](workload_dir, engine, [*MODES[tracing], "--report", report, *options],
                         look)
            after = LOOKS[tracing](bystander_pid)
            assert bystander.poll() is None, "the bystander ended while the target was traced"
            seen["added"] = {name: max(0, value - max(before[name], after[name]))
                             for name, value in seen["bystander"].items()}
            out, _ = bystander.communicate("", timeout=60)
        finally:
            if bystander.poll() is None:
                bystander.kill()
                bystander.wait()
        assert bystander.returncode == 0 and out.strip() == "clean exit", out
    return seen["added"], seen["target"], seen["bystander"]


@pytest.mark.parametrize("report", ["summary", "flow"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_another_users_python_keeps_its_cpython_semaphores_at_0_while_the_engine_traces(
        workload_dir, mode, report):
    """--engine auto, as users run it: the engine takes the summary and the flow alike."""
    bystander, target, _read = bystander_while_traced("auto", mode, workload_dir,
                                                      report=report)
    assert all(target.values()), target  # the look reads the semaphores that tracing sets
    assert bystander == {name: 0 for name in CPYTHON_PROBES}


@pytest.mark.parametrize("tracing", ["object-allocator", "libc"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_another_users_python_has_no_breakpoint_in_its_allocator_while_the_engine_traces_it(
        workload_dir, mode, tracing):
    bystander, target, _read = bystander_while_traced("libbpf", mode, workload_dir, tracing)
    assert all(target.values()), target  # the look reads the breakpoints that tracing writes
    assert not any(bystander.values()), bystander


@pytest.mark.parametrize("tracing", ["python-probes", "object-allocator", "libc"])
def test_the_bpftrace_runner_traps_another_users_python(workload_dir, tracing):
    """Why the engine takes these modes: bpftrace 0.17 attaches by path, system-wide (every
    other Python then traps on every line, or every allocation: docs/benchmarks.md)."""
    _added, _target, bystander = bystander_while_traced("bpftrace", "pid", workload_dir, tracing)
    assert all(bystander.values()), bystander


@pytest.mark.parametrize("report", ["summary", "leaks"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_reports_object_allocations_as_the_bpftrace_runner_does(workload_dir, mode,
                                                                           report):
    """--object-allocator: PyObject_Malloc and the rest as called from outside the interpreter
    (its own calls are inlined into it, on both engines: so few rows)."""
    options = [*MODES["object-allocator"], "--report", report]
    engine = rows(TRACED[mode](workload_dir, "libbpf", options))
    assert engine == rows(TRACED[mode](workload_dir, "bpftrace", options))
    kept = (line_of("PyObjectMalloc(size))"), "objects", "PyObject")
    freed = (line_of("PyObjectMalloc(size + 1)"), "objects", "PyObject")
    assert engine[kept] == (2, 110), engine
    assert (freed in engine) == (report == "summary"), engine


@pytest.mark.parametrize("report", ["summary", "leaks"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_reports_libc_allocations_as_the_bpftrace_runner_does(workload_dir, mode,
                                                                         report):
    options = [*MODES["libc"], "--report", report]
    engine = rows(TRACED[mode](workload_dir, "libbpf", options))
    assert engine == rows(TRACED[mode](workload_dir, "bpftrace", options))
    kept = (line_of("CMalloc(size))\n    cMemLeak.Py"), "leaf", "C heap")
    assert engine[kept] == (5, 10 + 11 + 12 + 13 + 14), engine
    assert engine[(line_of("CMalloc(40)"), "drives", "C heap")] == (2, 80), engine


FORKS = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
child = os.fork()
if child == 0:  # allocates at once, and for long enough to be attached
    import time
    end, kept = time.monotonic() + 1, []
    while time.monotonic() < end:
        kept.append(cMemLeak.PyObjectMalloc(70))
        kept.append(bytearray(700))
    os._exit(0)
os.waitpid(child, 0)
os._exit(0)
"""


@pytest.mark.parametrize("tracing", ["object-allocator", "libc"])
def test_a_forked_child_of_an_allocator_trace_is_a_stated_window(tmp_path, tracing):
    """A child's inherited breakpoints are dropped at its first hit until the engine attaches it:
    what it allocated meanwhile is unknown, so the report says so (exit 3), never exact."""
    script = tmp_path / "forks.py"
    script.write_text(FORKS)
    result = subprocess.run(
        [PYTHON, RUNNER, "--engine", "libbpf", *MODES[tracing], "--report", "summary", "--json",
         "-o", str(tmp_path / "report.json"), "--", PYTHON, str(script), BUILD_SRC],
        capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    assert result.returncode == 3, result.stderr[-800:]
    assert "forked processes made allocations before their probes were attached" in result.stderr
