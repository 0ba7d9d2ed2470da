# SPDX-License-Identifier: MIT
"""`--frames python-probes --python-call-stack` on the libbpf engine (issue 20): the flow's
`-> CALL f (depth N)` and `<- RTN  f (depth N)` rows made from CPython's function__entry and
function__return attached to the traced process only (call_stack.bpf.h). The rows equal the
bpftrace runner's, depth included, for nested calls, recursion, a generator and an exception, as
a command and with -p; a hostile function name is one escaped row; another user's Python keeps
CPython's semaphores at 0 meanwhile; a ring buffer that overflows states a loss that adds up.
Run through tests/support/run_pytest.py, as root."""
import os
import re
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from runner import PYTHON, pid_run  # noqa: E402
from test_engine_python_probes import (CPYTHON_PROBES, TRACED,  # noqa: E402
                                       bystander_while_traced, flow_rows, line_of)

from pymemtrace.trace.engine import find_engine  # noqa: E402  (the source tree's: on sys.path)

# Both runs of a comparison call the same functions in the same order: no set or dict of strings
# ordered differently by hash randomisation in the interpreter's start-up (command mode).
os.environ["PYTHONHASHSEED"] = "0"

CALL_STACK = ["--frames", "python-probes", "--python-call-stack"]

# One thread, released by a line on stdin (TRACED's protocol): nested Python calls, recursion, a
# generator resumed, a frame left by an exception, and a function whose name forges a row and
# holds escape sequences; blocks allocated in each.
WORKLOAD = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
kept = []
def leaf(size):
    kept.append(cMemLeak.CMalloc(size))
def nested(n):
    for i in range(n):
        leaf(10 + i)
def recurse(n):
    if n:
        recurse(n - 1)
    kept.append(cMemLeak.CMalloc(20 + n))
def generates():
    for size in (30, 31):
        kept.append(cMemLeak.CMalloc(size))
        yield
def drives():
    for _ in generates():
        leaf(40)
def fails():
    kept.append(cMemLeak.CMalloc(5))
    raise ValueError
def catches():
    try:
        fails()
    except ValueError:
        leaf(6)
def plain():
    kept.append(cMemLeak.CMalloc(7))
HOSTILE = "evil\\n     1      workload.py:1    -> CALL forged (depth 1)\\x1b[2J\\x07"
hostile = type(plain)(plain.__code__.replace(co_name=HOSTILE), globals())
print(os.getpid(), flush=True)
sys.stdin.readline()
nested(3)
recurse(4)
drives()
catches()
hostile()
print("done", flush=True)
os._exit(0)
"""
HOSTILE_SHOWN = "evil\\n     1      workload.py:1    -> CALL forged (depth 1)\\x1b[2J\\x07"


def at(text):
    """A row's location, as the flow shows it, of the line of WORKLOAD where `text` starts."""
    return f"workload.py:{line_of(text, WORKLOAD):<4}"


@pytest.fixture
def workload_dir():
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "workload.py"), "w") as source:
            source.write(WORKLOAD)
        yield directory


def workload_rows(rows):
    """The rows from the workload's first call on: PID, `workload.py:LINE`, the rest."""
    first = next(i for i, row in enumerate(rows) if "-> CALL nested " in row)
    return [re.sub(r" +workload\.py:", " workload.py:", row, count=1) for row in rows[first:]]


def depths(rows, word, function):
    return [int(re.search(r"\(depth (\d+)\)$", row)[1]) for row in rows
            if f" {word} {function} (depth " in row]


@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_flows_the_call_and_return_rows_the_bpftrace_runner_flows(workload_dir, mode):
    """Whole flows, every row in order (one thread: its sequence), PIDs and pointers masked."""
    options = [*CALL_STACK, "--report", "flow"]
    engine = flow_rows(TRACED[mode](workload_dir, "libbpf", options))
    assert engine == flow_rows(TRACED[mode](workload_dir, "bpftrace", options))
    rows = workload_rows(engine)
    depth = depths(rows, "CALL", "nested")[0]
    # Nested: each call and return at the depth below its caller's.
    assert depths(rows, "CALL", "leaf")[:3] == depths(rows, "RTN ", "leaf")[:3] == [depth + 1] * 3
    # Recursion: five frames down, then back up, each allocation in the frame it returns from.
    assert depths(rows, "CALL", "recurse") == list(range(depth, depth + 5))
    assert depths(rows, "RTN ", "recurse") == list(range(depth + 4, depth - 1, -1))
    deepest = rows.index(f"PID {at('CMalloc(20 + n)')} -> recurse malloc(20) pntr 0x? domain 0")
    assert rows[deepest + 1] == f"PID {at('CMalloc(20 + n)')} <- RTN  recurse (depth {depth + 4})"
    # A generator: entered on each resume (3), left at each yield and at its end.
    assert (depths(rows, "CALL", "generates") == depths(rows, "RTN ", "generates")
            == [depth + 1] * 3)
    # An exception: the frame it leaves returns, then its caller's handler calls on.
    failing = rows.index(f"PID {at('CMalloc(5)')} -> fails malloc(5) pntr 0x? domain 0")
    assert rows[failing + 1:failing + 3] == [
        f"PID {at('raise ValueError')} <- RTN  fails (depth {depth + 1})",
        f"PID {at('def leaf')} -> CALL leaf (depth {depth + 1})"]


def test_a_hostile_function_name_is_one_escaped_row_in_calls_and_returns(workload_dir):
    rows = workload_rows(flow_rows(TRACED["pid"](workload_dir, "libbpf",
                                                 [*CALL_STACK, "--report", "flow"])))
    depth = depths(rows, "CALL", "nested")[0]  # called from module level too
    assert rows[-3:] == [
        f"PID {at('def plain')} -> CALL {HOSTILE_SHOWN} (depth {depth})",
        f"PID {at('CMalloc(7)')} -> {HOSTILE_SHOWN} malloc(7) pntr 0x? domain 0",
        f"PID {at('CMalloc(7)')} <- RTN  {HOSTILE_SHOWN} (depth {depth})"]
    assert not any(row.startswith("PID workload.py:1 ") for row in rows)


@pytest.mark.parametrize("report", ["flow", "summary"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_another_users_python_keeps_its_cpython_semaphores_at_0_while_the_call_stack_is_traced(
        workload_dir, mode, report):
    """--engine auto, as users run it (a summary has no CALL rows, with either engine: the
    engine takes it too)."""
    bystander, target, _read = bystander_while_traced("auto", mode, workload_dir, report=report,
                                                      options=["--python-call-stack"])
    assert all(target.values()), target  # the look reads the semaphores that tracing sets
    assert bystander == {name: 0 for name in CPYTHON_PROBES}


# As many Python calls as the interpreter makes, each entered from C (map): a call and a return.
# cMemLeak is imported only to be found: the runner needs a library with pymemtrace probes.
CALLS = """\
import os, sys
from pymemtrace import cMemLeak
def step(i):
    return i + 1
print(os.getpid(), flush=True)
sys.stdin.readline()
list(map(step, range(int(sys.argv[1]))))
os._exit(0)
"""
LOST = re.compile(r"(\d+) of (\d+) events were lost \(([^)]*)\)")


def test_a_call_stack_flow_that_overflows_the_ring_buffer_states_a_loss_that_adds_up(tmp_path):
    """--perf-pages 1: a ring buffer of two pages (146 records), which the calls outrun."""
    n = 100000
    script = tmp_path / "calls.py"
    script.write_text(CALLS)
    target = subprocess.Popen([PYTHON, str(script), str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        int(target.stdout.readline())
        status, out, err = pid_run(target, ["--engine", "libbpf", *CALL_STACK, "--report",
                                            "flow", "--perf-pages", "1"], timeout=300)
    finally:
        target.kill()
        target.wait()
    stated = LOST.search(err)
    assert status == 3 and stated, err[-800:]
    lost, made = int(stated[1]), int(stated[2])
    rows = sum(bool(re.match(r"^ *\d+ ", row)) for row in out.splitlines())
    assert lost > 0 and made >= 2 * n and rows + lost == made, (rows, lost, made, err[-800:])
    assert " call" in stated[3] and " rtn" in stated[3], stated[3]


@pytest.mark.parametrize("given", [[], ["--python-frames", PYTHON]], ids=["alone", "no flow"])
def test_the_engine_refuses_a_call_stack_without_a_flow_of_python_frames_in_one_line(given):
    result = subprocess.run([find_engine(), "--pid", "1", *given, "--python-call-stack"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr == ("pymemtrace-engine: --python-call-stack sends CPython's calls and "
                             "returns in the flow: give --flow-fd FD and --python-frames PYTHON\n")
