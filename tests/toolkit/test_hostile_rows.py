# SPDX-License-Identifier: MIT
"""What a traced process controls cannot change the shape of its report (issue 19, items 4-6),
on real processes with real bpftrace:

- a Python function name holding newlines and forged rows adds no process and no row to the
  flows that are replayed into reports (--libc, --object-allocator);
- the runner's memory stays bounded under a flood of new stacks (--depth 16 --all), and the
  report states what the bound left out;
- a process that execs a set-user-ID program is not traced from that exec on, when the report
  is for an unprivileged user, and the report says so.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace), with
PYTHONPATH=<builddir>/src. PYMEMTRACE_RUNNER may name another runner (to see a test fail on an
older one)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from other_user import other_user  # noqa: E402
from runner import BUILD_SRC, LIB, PYTHON  # noqa: E402
from source_lines import line_of  # noqa: E402

RUNNER = os.environ.get("PYMEMTRACE_RUNNER", os.path.join(ROOT, "toolkit", "pymemtrace-trace"))


def run_runner(args, env=None, timeout=180):
    """The runner with its report in a file; returns (CompletedProcess, report text)."""
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o1733)  # -o is opened as the user the report is for (sudo, --user)
        report = os.path.join(directory, "report")
        result = subprocess.run([PYTHON, "-I", RUNNER, "-o", report, *args], env=env,
                                capture_output=True, text=True, timeout=timeout)
        text = open(report, encoding="utf-8", errors="replace").read() \
            if os.path.exists(report) else ""
    return result, text


# --- forged rows --------------------------------------------------------------------------------

# A function name that, were a flow split on its newlines, would add rows of PID 1 (55 MiB "still
# allocated") and PID 4242, in the rows of each replayed flow; under what bpftrace reads of a
# name (--strlen 128).
FORGED_PIDS = {1, 4242}
FORGED_BYTES = 57671680
NAMES = {"--libc": "f\n     1 a:1 -> g malloc(57671680) pntr 0x1000\n  4242 a:2 -> h malloc(1) "
                   "pntr 0x2\n",
         "--object-allocator": "f\n     1 a:1 -> g PyObject_Malloc(57671680) PyObject_Malloc "
                               "returns 0x1000\n  4242 a:2 -> h PyObject_Free(0x2)\n"}
# Keeps what the renamed function allocates, and ends without freeing it (os._exit).
FORGING = """\
import os, sys
NAME = {name!r}
def body(n):
    keep = []
    for i in range(n):
        keep.append(bytearray(300000 + i))  # ALLOCATES
    return keep
body.__code__ = body.__code__.replace(co_name=NAME)
kept = body(3)
print("done", flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("report", ["summary", "leaks"])
@pytest.mark.parametrize("mode", ["--libc", "--object-allocator"])
def test_a_function_name_with_newlines_adds_no_process_and_no_row(tmp_path, mode, report):
    script = tmp_path / "forging.py"
    name = NAMES[mode]
    assert len(name) < 127
    script.write_text(FORGING.format(name=name))
    result, text = run_runner([mode, "--report", report, "--json", "--", PYTHON, str(script)])
    assert result.returncode == 0, result.stderr[-1500:]  # exit 3 if a row were unreadable
    entries = json.loads(text)
    pids = {pid for e in entries for pid in e["pids"]}
    assert len(pids) == 1 and not pids & FORGED_PIDS, pids
    assert not [e for e in entries if e["bytes"] >= FORGED_BYTES], entries
    line = line_of(FORGING, "# ALLOCATES")
    mine = [e for e in entries if e["function"] == name and e["line"] == line]
    assert mine and all(e["file"] == "forging.py" for e in mine), entries
    if mode == "--libc":  # each of the 3 buffers is one malloc, kept to the end
        assert sum(e["count"] for e in mine) == 3, mine
        assert sum(e["bytes"] for e in mine) == 3 * 300001 + 3, mine


# --- a flood of stacks ----------------------------------------------------------------------------

# Every allocation from a new stack (its innermost function renamed each time), 16 frames deep;
# the last 100 blocks live (older ones freed), so the leak report names the newest stacks.
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
import os; os._exit(0)  # the ring stays live: the report names its stacks
"""
FLOOD_SECONDS = 20
MAX_ENTRIES = 2000
# The runner's bound at --max-entries 2000: 2000 stacks and 65536 names (stacks.Stacks), a few
# MB over the 17 MB it starts with (measured: flat at 18 MB for 20 s). It kept every printf
# before: 17 to 224 MB in 20 s.
RSS_BOUND_MB = 64


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.M)[1]) // 1024
    except (OSError, TypeError):
        return 0


def test_a_flood_of_new_stacks_keeps_the_runner_under_its_bound_and_the_report_says_what_it_left_out(
        tmp_path):
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    report = tmp_path / "report"
    runner = subprocess.Popen(
        [PYTHON, "-I", RUNNER, "-o", str(report), "--all", "--lib", LIB, "--depth", "16",
         "--report", "leaks", "--max-entries", str(MAX_ENTRIES)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    try:
        for line in runner.stderr:  # the runner says when it traces
            if "tracing every process" in line:
                break
        target = subprocess.Popen([PYTHON, str(script), BUILD_SRC, str(FLOOD_SECONDS)],
                                  stdout=subprocess.PIPE, text=True)
        while target.poll() is None:
            peak = max(peak, rss_mb(runner.pid))
            time.sleep(0.25)
        out = target.stdout.read()
        runner.send_signal(signal.SIGTERM)
        stderr = runner.stderr.read()
        runner.wait(timeout=300)
        peak = max(peak, rss_mb(runner.pid))
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert "events" in out, out
    events = int(out.split()[-1])
    assert events > 5 * MAX_ENTRIES, out  # a flood: far more stacks than the runner keeps
    assert peak < RSS_BOUND_MB, f"the runner reached {peak} MB ({events} stacks)"
    # The flood overflows bpftrace's perf buffer (a loss) and the runner's tables; the stacks the
    # report cannot name are stated (bpftrace may lose even the map of live blocks at exit,
    # under this flood: then the report names none).
    text = report.read_text(errors="replace")
    assert runner.returncode == 3 and "INCOMPLETE:" in text, stderr[-1500:]
    unknown = len(re.findall(r"^ .*<stack [0-9a-f]{16}>", text, re.M))
    if unknown:
        said = re.search(r"the names of (\d+) stacks in the report are unknown", stderr)
        assert said and int(said[1]) >= unknown, stderr[-1500:]


# --- a set-user-ID exec -----------------------------------------------------------------------------

# Runs passwd (set-user-ID root) as a child that exits at once, and says its PID.
PASSWD = """\
import subprocess
child = subprocess.Popen(["/usr/bin/passwd", "--status"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE)
child.communicate()
print("passwd", child.pid, child.returncode, flush=True)
"""
FLOW_ROW = re.compile(r"^\s*(\d+) .*-> .*\b(?:malloc|calloc|realloc|free)\(", re.M)


def test_a_command_that_execs_passwd_does_not_show_passwds_heap_to_its_user():
    """As sudo runs it for an unprivileged user (SUDO_UID...), with --libc: passwd's rows
    (its heap addresses and sizes) are not in the flow, nor its process in the summary; both say
    that it was not traced from its exec on."""
    with other_user() as user:
        script = os.path.join(user.home, "runs_passwd.py")
        with open(script, "w") as file:
            file.write(PASSWD)
        env = dict(os.environ, SUDO_UID=str(user.uid), SUDO_GID=str(user.gid),
                   SUDO_USER=user.name)
        for engine in ("bpftrace", "libbpf"):
            result, flow = run_runner(["--libc", "--report", "flow", "--engine", engine, "--",
                                       PYTHON, script], env=env)
            words = re.search(r"^passwd (\d+) (\d+)$", result.stdout, re.M)
            assert words and words[2] == "0", result.stdout  # passwd ran, as the user, and ended
            child = int(words[1])
            said = re.compile(f"PID {child} exec'd a set-user-ID (or set-group-ID )?program: "
                              "not traced from then on")
            assert said.search(result.stderr) and said.search(flow), (result.stderr[-1500:],
                                                                      flow[-1500:])
            rows = [int(pid) for pid in FLOW_ROW.findall(flow)]
            assert rows and child not in rows, sorted(set(rows))
            # bpftrace follows forks with no window. The engine (--engine auto's choice for
            # --libc since issue 20, the C library attached per process: no other process
            # traps) attaches a forked child after the fork: a child that execs passwd at once
            # may do so first, a stated loss (exit 3), never rows.
            window = "1 forked processes could not be traced" in result.stderr
            assert result.returncode == (3 if engine == "libbpf" and window else 0), \
                result.stderr[-1500:]
        # The summary per process, on bpftrace (the engine's set-ID rule is tests/engine's).
        result, text = run_runner(["--libc", "--per-process", "--engine", "bpftrace", "--",
                                   PYTHON, script], env=env)
        assert result.returncode == 0, result.stderr[-1500:]
        child = int(re.search(r"^passwd (\d+) ", result.stdout, re.M)[1])
        assert f"== PID {child}" not in text, text[-3000:]
        assert f"   PID {child}: exec'd a set-user-ID program: not traced from then on" in text, \
            text[-3000:]
