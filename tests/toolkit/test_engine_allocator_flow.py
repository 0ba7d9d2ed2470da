# SPDX-License-Identifier: MIT
"""The flow of `--libc` and `--object-allocator` on the libbpf engine (issue 20): the allocator
functions' calls by uprobes attached per traced process, each sent through the engine's flow
ring buffer and written by the runner as the bpftrace runner writes them (the same rows, PIDs
and pointers aside), realloc's inner malloc and free not twice; while the engine flows one
Python, another user's Python has no breakpoint in its allocator and its CPython semaphores at
0. bpftrace 0.17 attaches by path: every Python on the host traps (test_engine_python_probes).
Run through tests/support/run_pytest.py, as root."""
import os
import re
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_engine_python_probes import (  # noqa: E402,F401 (workload_dir: a fixture)
    LOOKS, MODES, PYTHON, RUNNER, TRACED, bystander_while_traced, cpython_semaphores, line_of,
    workload_dir)


@pytest.fixture(autouse=True)
def same_hashes(monkeypatch):
    """The same string hashes in every run, so that the interpreter makes the same calls (which
    frees a flow shows depends on the addresses it showed allocated)."""
    monkeypatch.setenv("PYTHONHASHSEED", "0")


def masked(text):
    """`text` with its pointers, which differ from run to run, as 0x?."""
    return re.sub(r"0x[0-9a-f]+", "0x?", text)


def event_rows(flow_text):
    """(the event rows of a flow with PIDs and pointers masked, sorted: bpftrace reads its
    per-CPU buffers in turn, so its rows of a thread that moved between CPUs are not always in
    order; what follows the END line)."""
    lines = flow_text.split("\n")
    assert "dtrace:::BEGIN" in lines and "dtrace:::END" in lines, flow_text[-800:]
    events = lines[lines.index("dtrace:::BEGIN") + 1:lines.index("dtrace:::END")]
    rows = sorted(masked(re.sub(r"^ *[0-9]+ ", "PID ", row)) for row in events if row)
    return rows, lines[lines.index("dtrace:::END"):]


def calls_at(flow_text, line, function):
    """The event text (`CALL(ARGS) ...`) of each row of the workload's `line`, in order."""
    at = re.compile(r"^ *\d+ +workload\.py:%d +-> %s (.*)$" % (line, re.escape(function)))
    return [found[1] for found in map(at.match, flow_text.split("\n")) if found]


def pointers(text):
    return re.findall(r"0x[0-9a-f]+", text)


@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_flows_the_object_allocator_calls_the_bpftrace_runner_flows(workload_dir,
                                                                              mode):
    options = [*MODES["object-allocator"], "--report", "flow"]
    engine = TRACED[mode](workload_dir, "libbpf", options)
    assert event_rows(engine) == event_rows(TRACED[mode](workload_dir, "bpftrace", options))
    # In order: each block kept, and each freed after its allocation (the same pointer).
    kept = calls_at(engine, line_of("PyObjectMalloc(size))"), "objects")
    assert [masked(call) for call in kept] == [
        f"PyObject_Malloc({size}) PyObject_Malloc returns 0x?" for size in (50, 60)], engine
    freed = calls_at(engine, line_of("PyObjectMalloc(size + 1)"), "objects")
    for size in (51, 61):
        made = next(i for i, call in enumerate(freed)
                    if call.startswith(f"PyObject_Malloc({size})"))
        block = pointers(freed[made])[0]
        assert f"PyObject_Free({block})" in freed[made + 1:], freed


@pytest.mark.parametrize("mode", ["command", "pid"])
def test_the_engine_flows_the_libc_calls_the_bpftrace_runner_flows(workload_dir, mode):
    options = [*MODES["libc"], "--report", "flow"]
    engine = TRACED[mode](workload_dir, "libbpf", options)
    rows, end = event_rows(engine)
    assert (rows, end) == event_rows(TRACED[mode](workload_dir, "bpftrace", options))
    # After the END line, the titles of its tables, as the bpftrace runner writes them.
    assert end[1:3] == ["Python malloc byte distributions by engine caller:", ""], end
    leaf = calls_at(engine, line_of("CMalloc(size))\n    cMemLeak.Py"), "leaf")
    assert [masked(call) for call in leaf] == [
        f"malloc({size}) pntr 0x?" for size in range(10, 15)], engine
    assert any("-> middle malloc(24) pntr 0x" in row for row in engine.split("\n")), engine


def test_the_engine_flows_libc_calls_with_their_python_calls_as_the_bpftrace_runner(
        workload_dir):
    # The CALL and RTN rows come from CPython's probes, which --libc attaches anyway. Before,
    # the engine refused --python-call-stack with --libc: bpftrace made it, system-wide.
    # -p: the interpreter's start-up, thousands of calls, is not in the flow (bpftrace's perf
    # buffers lost some of it on a loaded machine).
    options = [*MODES["libc"], "--python-call-stack", "--report", "flow", "--perf-pages", "1024"]
    engine = TRACED["pid"](workload_dir, "libbpf", options)
    rows, end = event_rows(engine)
    assert any("-> CALL leaf (depth" in row for row in rows), rows[:20]
    assert (rows, end) == event_rows(TRACED["pid"](workload_dir, "bpftrace", options))


REALLOCS = """\
import ctypes, os
libc = ctypes.CDLL(None)
libc.realloc.restype = ctypes.c_void_p
libc.realloc.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
block = libc.realloc(None, 4000)  # glibc's realloc(NULL, n) calls malloc
block = libc.realloc(block, 90000)
libc.realloc(block, 0)  # glibc's realloc(p, 0) calls free
print("done", flush=True)
os._exit(0)
"""


def reallocs_flow(engine):
    with tempfile.TemporaryDirectory() as scratch:
        with open(os.path.join(scratch, "workload.py"), "w") as source:
            source.write(REALLOCS)
        out = os.path.join(scratch, "flow.txt")
        result = subprocess.run(
            [PYTHON, RUNNER, "--engine", engine, *MODES["libc"], "--report", "flow", "-o", out,
             "--", PYTHON, "workload.py"], capture_output=True, text=True, timeout=180,
            cwd=scratch)
        assert result.returncode == 0, result.stderr[-800:]
        return open(out).read()


def test_the_engine_flows_libcs_reallocs_without_the_malloc_and_free_inside_them():
    engine = reallocs_flow("libbpf")
    assert event_rows(engine) == event_rows(reallocs_flow("bpftrace"))

    def reallocs(text):
        return [call for call in calls_at(engine, REALLOCS[:REALLOCS.index(text)].count("\n") + 1,
                                          "<module>")
                if call.startswith(("malloc(", "free(", "realloc("))]
    made = reallocs("libc.realloc(None")
    assert len(made) == 1 and made[0].startswith("realloc(0x0, 4000) pntr 0x"), made
    moved = reallocs("libc.realloc(block, 9")
    assert len(moved) == 1 and moved[0].startswith(
        f"realloc({pointers(made[0])[1]}, 90000) pntr 0x"), moved
    released = reallocs("libc.realloc(block, 0")
    assert released == [f"realloc({pointers(moved[0])[1]}, 0) pntr 0x0"], released


def allocator_and_cpython(tracing):
    """The breakpoints of `tracing`'s allocator functions and CPython's semaphores in a process:
    the engine sets both in the traced one (its allocator calls are located by CPython's
    probes)."""
    def looks(pid):
        return {**LOOKS[tracing](pid), **cpython_semaphores(pid)}
    return looks


@pytest.mark.parametrize("tracing", ["object-allocator", "libc"])
@pytest.mark.parametrize("mode", ["command", "pid"])
def test_another_users_python_does_not_trap_while_the_engine_flows_the_allocator(
        workload_dir, mode, tracing):
    """--engine auto, as users run it: the engine takes the flow."""
    bystander, target, _read = bystander_while_traced(
        "auto", mode, workload_dir, tracing, report="flow", looks=allocator_and_cpython(tracing))
    assert all(target.values()), target  # the look reads what tracing sets
    assert not any(bystander.values()), bystander


LOST = re.compile(r"(\d+) of (\d+) events were lost \(([^)]*)\)")
UNSEEN_FREES = re.compile(r"(\d+) frees of blocks this flow did not show allocated")
CHURN = "for _ in range(100000):\n    bytearray(1000)  # libc's malloc and free\n"


def test_a_libc_flow_that_overflows_the_ring_buffer_states_a_loss_that_adds_up(tmp_path):
    """--perf-pages 1: a ring buffer of two pages (128 events), which the target outruns. The
    calls the engine saw are every row shown, every free not shown (its block unseen) and every
    call lost, by kind; the run exits 3."""
    (tmp_path / "churn.py").write_text(CHURN)
    out = tmp_path / "flow.txt"
    result = subprocess.run(
        [PYTHON, RUNNER, "--engine", "libbpf", *MODES["libc"], "--report", "flow",
         "--perf-pages", "1", "-o", str(out), "--", PYTHON, "churn.py"],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 3, result.stderr[-800:]
    stated, unseen = LOST.search(result.stderr), UNSEEN_FREES.search(result.stderr)
    assert stated, result.stderr[-800:]
    lost, made = int(stated[1]), int(stated[2])
    shown = sum(" -> " in row for row in out.read_text().split("\n"))
    assert lost > 0 and shown + (int(unseen[1]) if unseen else 0) + lost == made, (
        shown, unseen, stated[0])
    assert {kind.split()[1] for kind in stated[3].split(", ")} <= {"malloc", "calloc", "realloc",
                                                                   "free"}, stated[0]
    assert "were not shown" not in result.stderr, result.stderr[-800:]
