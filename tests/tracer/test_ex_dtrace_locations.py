# SPDX-License-Identifier: MIT
"""examples/ex_dtrace.py under real bpftrace: every block a scenario allocates fires
pymemtrace:pyalloc attributed to ex_dtrace.py, the line that creates the block and the function
it is in, with the pointer and size the script prints; each block is freed, except in `leak`,
whose blocks are never freed, not even at exit. Each scenario passes or fails on its own.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace) with
--cmemleak PATH --pythonpath DIR --ex-dtrace PATH (tests/tracer/meson.build passes them).
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "support"))
from source_lines import line_in_function  # noqa: E402
from tracing import BpftraceSession, events  # noqa: E402

# scenario: (function, allocating call, domain, size)
SCENARIOS = {
    "cmalloc": ("create_cmalloc_list", "cMemLeak.CMalloc(size)", 0, 1477),
    "pyrawmalloc": ("create_pyrawmalloc_list", "cMemLeak.PyRawMalloc(size)", 1, 128),
    "pymalloc": ("create_pymalloc_list", "cMemLeak.PyMalloc(size)", 2, 128),
    "pyobjectmalloc": ("create_pyobjectmalloc_list", "cMemLeak.PyObjectMalloc(size)", 3, 128),
    "leak": ("create_leaks", "cMemLeak.CMalloc(size)", 0, 1477),
}
COUNT = 5


def program(library):
    probe = f"usdt:{library}:pymemtrace"
    return f'''
{probe}:pyalloc {{ printf("pyalloc %d %lu %lu %d %d %s %s\\n", pid, arg0, arg1, arg2, arg5,
                         str(arg4), str(arg3)); }}
{probe}:free {{ printf("free %d %lu %d\\n", pid, arg0, arg1); }}
'''


@pytest.fixture(scope="module", params=list(SCENARIOS))
def scenario(request, cmemleak, pythonpath, ex_dtrace):
    """One scenario of ex_dtrace.py run under bpftrace: the blocks it printed, the events of its
    process, and where its blocks are made."""
    name = request.param
    function, call, domain, size = SCENARIOS[name]
    session = BpftraceSession(program(cmemleak),
                              env={**os.environ, "BPFTRACE_STRLEN": "128"}).start()
    try:
        run = subprocess.Popen([sys.executable, ex_dtrace, name, "--count", str(COUNT),
                                "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": pythonpath})
        out, err = run.communicate("\n", timeout=120)
        waiting = re.search(r"Waiting to start tracing PID: (\d+)", out)
        pid = int(waiting.group(1)) if waiting else None
        # bpftrace drops what is still in its buffers when stopped: wait for the events due.
        frees = 0 if name == "leak" else COUNT
        session.wait_for(lambda lines: sum(1 for e in events(lines, "pyalloc")
                                           if int(e[0]) == pid) >= COUNT
                         and sum(1 for e in events(lines, "free") if int(e[0]) == pid) >= frees,
                         timeout=10 if pid else 0)
    finally:
        lines = session.stop()
    assert run.returncode == 0, f"{name}: exit {run.returncode}\n{out}\n{err}"
    assert pid, f"{name}: no 'Waiting to start tracing PID' in its output:\n{out}"
    return {
        "name": name,
        "function": function,
        "domain": domain,
        "size": size,
        "line": line_in_function(pathlib.Path(ex_dtrace).read_text(), function, call),
        "created": sorted({int(m, 16) for m in re.findall(
            r"(?:Created|Leaked) \w+ size=\d+ buffer=0x([0-9a-f]+)", out)}),
        "pyallocs": [e for e in events(lines, "pyalloc") if int(e[0]) == pid],
        "frees": sorted(int(e[1]) for e in events(lines, "free") if int(e[0]) == pid),
    }


def test_every_block_fires_pyalloc_at_the_line_and_function_that_creates_it(scenario):
    expected = [str(scenario["size"]), str(scenario["domain"]), str(scenario["line"]),
                scenario["function"]]
    pyallocs = scenario["pyallocs"]
    wrong = [e for e in pyallocs if e[2:6] != expected or not e[6].endswith("ex_dtrace.py")]
    assert len(pyallocs) == COUNT and not wrong, \
        f"{scenario['name']}: {len(pyallocs)} pyalloc events, expected {COUNT} at " \
        f"ex_dtrace.py:{scenario['line']} in {scenario['function']}; not matching: {wrong}"


def test_pyalloc_carries_the_pointers_of_the_blocks_the_script_made(scenario):
    pointers = sorted(int(e[1]) for e in scenario["pyallocs"])
    assert pointers == scenario["created"] and len(scenario["created"]) == COUNT, \
        f"{scenario['name']}: pointers {pointers} != printed {scenario['created']} " \
        f"(expected {COUNT})"


def test_every_block_is_freed_except_those_leaked_on_purpose(scenario):
    expected = [] if scenario["name"] == "leak" else scenario["created"]
    assert scenario["frees"] == expected, \
        f"{scenario['name']}: frees {scenario['frees']}, expected {expected}"
