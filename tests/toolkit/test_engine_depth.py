# SPDX-License-Identifier: MIT
"""pymemtrace-trace --depth N on its libbpf engine (issue 20), on real processes: a recursion whose
stacks differ only above the innermost two frames gets a row per stack, with the numbers, the
frames and the folded lines the bpftrace runner gives for the same workload. Run through
tests/support/run_pytest.py, as root."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402
from source_lines import line_of  # noqa: E402

# down(1) three times and down(2) five times: the innermost frames are the same (the LEAF line
# and a DOWN line), the third differs (the module's line, or DOWN again). It ends without
# freeing them, so that they are live at the end.
RECURSION = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
keep = []
def down(n):
    if n == 0:
        keep.append(cMemLeak.CMalloc(100))  # LEAF
    else:
        down(n - 1)  # DOWN
for _ in range(3):
    down(1)  # ONE
for _ in range(5):
    down(2)  # TWO
os._exit(0)
"""


@pytest.fixture(scope="module")
def recursion(tmp_path_factory):
    directory = tmp_path_factory.mktemp("depth")
    path = directory / "recursion.py"
    path.write_text(RECURSION)
    os.chmod(directory, 0o755)
    return str(path)


def traced(engine, recursion, *options):
    result = subprocess.run([PYTHON, "-I", RUNNER, "--engine", engine, "--depth", "4",
                             "--lib", LIB, *options, "--", PYTHON, recursion, BUILD_SRC],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (engine, result.stderr)
    return result.stdout


def rows(text):
    """(stack, domain, count, bytes) of each JSON entry, sorted."""
    return sorted((tuple((f["file"], f["line"], f["function"]) for f in e["stack"]),
                   e["domain"], e["count"], e["bytes"]) for e in json.loads(text))


@pytest.mark.parametrize("report", ["leaks", "summary"])
def test_stacks_that_differ_above_the_first_frame_are_rows_as_the_bpftrace_runner_gives(
        recursion, report):
    ours = rows(traced("libbpf", recursion, "--report", report, "--json"))
    theirs = rows(traced("bpftrace", recursion, "--report", report, "--json"))
    leaf, down = (("recursion.py", line_of(RECURSION, mark), "down") for mark in ("# LEAF",
                                                                                  "# DOWN"))
    one = ("recursion.py", line_of(RECURSION, "# ONE"), "<module>")
    two = ("recursion.py", line_of(RECURSION, "# TWO"), "<module>")
    assert [(stack, count, size) for stack, _domain, count, size in ours] == [
        ((leaf, down, down, two), 5, 500), ((leaf, down, one), 3, 300)], ours
    assert ours == theirs


def test_folded_stacks_are_the_bpftrace_runners(recursion):
    ours = traced("libbpf", recursion, "--report", "folded")
    theirs = traced("bpftrace", recursion, "--report", "folded")
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines()), (ours, theirs)
    assert len([line for line in ours.splitlines() if "recursion.py" in line]) == 2, ours


# A new 16-frame stack for every allocation (test_hostile_rows' flood), for SECONDS, then it
# waits to be killed with the last 100 blocks live.
FLOOD = """\
import collections, sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
ring = collections.deque(maxlen=100)
def nest(depth, leaf):
    return leaf() if depth == 0 else nest(depth - 1, leaf)
def leaf():
    ring.append(cMemLeak.CMalloc(64))
print("flooding", flush=True)
end, number = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    number += 1
    name = f"leaf_{number}"
    nest(14, type(leaf)(leaf.__code__.replace(co_name=name, co_qualname=name), globals()))
print("events", number, flush=True)
time.sleep(600)
"""
REPORT_RSS_MB = 160  # 96 MB measured at the defaults; one JSON line of every stack took 615 MB


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.M)[1])
    except (OSError, TypeError):
        return 0


def test_the_runner_reads_a_flood_of_stacks_in_bounded_memory_and_says_which_it_cannot_name(
        tmp_path):
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    target = subprocess.Popen([PYTHON, str(script), BUILD_SRC, "10"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert target.stdout.readline() == "flooding\n"
        runner = subprocess.Popen([PYTHON, "-I", RUNNER, "--engine", "libbpf", "--depth", "16",
                                   "--report", "leaks", "--top", "0", "--lib", LIB, "-p",
                                   str(target.pid)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "tracing PID" in runner.stderr.readline()
        assert target.stdout.readline().startswith("events")
        runner.send_signal(signal.SIGINT)
        peak = 0
        while runner.poll() is None:  # the report: its stacks are read now
            peak = max(peak, rss_kb(runner.pid))
            time.sleep(0.02)
        out, err = runner.communicate(timeout=120)
    finally:
        target.kill()
        target.wait()
    assert peak // 1024 < REPORT_RSS_MB, f"the runner reached {peak // 1024} MB"
    assert runner.returncode == 3 and "INCOMPLETE:" in out, err[-1500:]
    unknown = len(re.findall(r"<stack [0-9a-f]{16}>", out))
    said = re.search(r"the names of (\d+) stacks in the report are unknown", err)
    assert unknown and said and int(said[1]) == unknown, (unknown, err[-1500:])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
