# SPDX-License-Identifier: MIT
"""Inside the arm64 guest: cMemLeak, built for the guest's python3, traced through bpftrace with
the py* probes and a request for depth (pystack16 attached): pyalloc's seventh argument (x6) and
pyfree's sixth (x5) point at the thread's stack record (location.h), whose frames are the Python
stack that made the call, innermost first, and which the probes' own file, function and line
agree with. Run through tests/support/run_pytest.py with --pythonpath DIR.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "support"))
from source_lines import tagged_lines  # noqa: E402
from tracing import BpftraceSession, events  # noqa: E402

SIZE = 4321  # the one block of this size: the events of the workload's block, not Python's own
WORKLOAD = f'''\
import os
from pymemtrace import cMemLeak


def inner():
    return cMemLeak.CMalloc({SIZE})  # STACK: inner


def outer():
    return inner()  # STACK: outer


def drop():
    global block
    del block  # STACK: drop


block = outer()  # STACK: module
print("block", block.buffer, flush=True)
drop()  # STACK: dropper
print("pid", os.getpid(), flush=True)
'''
# The record: u32 depth, u32 requested, then frames of 40 bytes: u64 id, u64 stack, char
# *filename, char *function, i32 lineno. Three frames are enough for these stacks; a frame
# past the depth has empty names, so these lines are "|"-separated.
FRAMES = """
    $i = (uint64)0;
    unroll(3) {{
        $p = $r + 8 + $i * 40;
        printf("frame_{tag}|%d|%lu|%d|%d|%s|%s\\n", pid, arg0, $i, *(int32 *)($p + 32),
               str(*(uint64 *)($p + 24)), str(*(uint64 *)($p + 16)));
        $i++;
    }}
"""
PROGRAM = """
usdt:{so}:pymemtrace:pystack16 {{ @requests = count(); }}
usdt:{so}:pymemtrace:pyalloc /arg1 == {size} && arg6 != 0/ {{
    $r = arg6;
    printf("pyalloc %d %lu %d %d %d %s %s\\n", pid, arg0, *(uint32 *)$r, *(uint32 *)($r + 4),
           arg5, str(arg4), str(arg3));
{frames_pyalloc}}}
usdt:{so}:pymemtrace:pyalloc /arg1 == {size} && arg6 == 0/ {{ printf("nostack %d\\n", pid); }}
usdt:{so}:pymemtrace:pyfree /arg5 != 0/ {{
    $r = arg5;
    printf("pyfree %d %lu %d %d %d %s %s\\n", pid, arg0, *(uint32 *)$r, *(uint32 *)($r + 4),
           arg4, str(arg3), str(arg2));
{frames_pyfree}}}
"""


@pytest.fixture(scope="module")
def traced(pythonpath):
    """What the workload printed and bpftrace's events of its process."""
    library = next(pathlib.Path(pythonpath, "pymemtrace").glob("cMemLeak*.so"))
    with tempfile.TemporaryDirectory(prefix="pymemtrace-") as tmp:
        script = pathlib.Path(tmp) / "stack_workload.py"
        script.write_text(WORKLOAD)
        session = BpftraceSession(PROGRAM.format(
            so=library, size=SIZE, frames_pyalloc=FRAMES.format(tag="pyalloc"),
            frames_pyfree=FRAMES.format(tag="pyfree"))).start()
        try:
            run = subprocess.run(["/usr/bin/python3", str(script)], capture_output=True,
                                 text=True, env={**os.environ, "PYTHONPATH": pythonpath},
                                 timeout=120)
            out = dict(line.split(None, 1) for line in run.stdout.splitlines())
            pid, buffer = out.get("pid", "0").strip(), out.get("block", "0").strip()
            session.wait_for(lambda lines: any(
                e[:2] == [pid, buffer] for e in events(lines, "pyfree")), timeout=20)
        finally:
            lines = session.stop()
    assert run.returncode == 0, f"the workload exited {run.returncode}:\n{run.stderr}"
    return str(script), pid, buffer, lines


def record(traced, probe):
    """(depth, requested, the probe's own (line, function, file), the record's first three
    frames as (line, function, file)) of the workload block's `probe` event."""
    _, pid, buffer, lines = traced
    heads = [e[2:] for e in events(lines, probe) if e[:2] == [pid, buffer]]
    assert len(heads) == 1, f"{probe} events of block {buffer} in process {pid}: {heads}"
    depth, requested, line, function, file = heads[0]
    # "|"-separated: frames past the depth have empty names.
    frames = sorted((int(e[3]), tuple(e[4:])) for e in (line.split("|") for line in lines)
                    if e[:3] == ["frame_" + probe, pid, buffer])
    return int(depth), int(requested), (line, function, file), [f for _, f in frames]


def expected(traced, *tags):
    """(line, function, file) of the workload lines tagged `tags`."""
    script = traced[0]
    lines = tagged_lines(WORKLOAD, r"# STACK: (\w+)")
    names = {"inner": "inner", "outer": "outer", "module": "<module>", "drop": "drop",
             "dropper": "<module>"}
    return [(str(lines[tag]), names[tag], script) for tag in tags]


def test_no_block_was_allocated_without_a_stack_record_while_depth_was_asked(traced):
    _, pid, _, lines = traced
    assert not [e for e in events(lines, "nostack") if e == [pid]], \
        "pyalloc carried stack 0 with pystack16 attached"


def test_pyalloc_stack_record_holds_the_python_stack_innermost_first(traced):
    depth, requested, _, frames = record(traced, "pyalloc")
    assert (depth, requested) == (3, 16), f"depth {depth} of {requested} requested, expected 3 of 16"
    assert frames == expected(traced, "inner", "outer", "module"), frames


def test_pyalloc_own_location_is_the_record_innermost_frame(traced):
    _, _, own, _ = record(traced, "pyalloc")
    assert [own] == expected(traced, "inner"), own


def test_pyfree_stack_record_holds_the_python_stack_that_freed_the_block(traced):
    depth, requested, own, frames = record(traced, "pyfree")
    assert (depth, requested) == (2, 16), f"depth {depth} of {requested} requested, expected 2 of 16"
    assert frames[:2] == expected(traced, "drop", "dropper"), frames
    assert [own] == expected(traced, "drop"), own
