# SPDX-License-Identifier: MIT
"""Where leaks live: the processes a traced command (or PID) forks and spawns are traced too
(multiprocessing's three start methods, a subprocess running Python again, children forked after
attaching with -p), reports merge them or keep each apart (--per-process), and a process that is
killed (SIGKILL, the memory cgroup's OOM killer) still gets its report, which says how it ended.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace), with
PYTHONPATH=<builddir>/src.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402,F401  (also makes pymemtrace.trace importable)
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402
from source_lines import line_of  # noqa: E402


# The parent keeps 2 blocks; a pool runs child(n) for n in 0..3, each keeping 3 blocks of 3000+n
# bytes; with a third argument, a Python subprocess keeps 5 blocks of 777 bytes.
FAMILY = """\
import multiprocessing, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
keep = []

def child(n):
    keep.extend(cMemLeak.CMalloc(3000 + n) for _ in range(3))  # CHILD
    return os.getpid()

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[2])
    keep.extend(cMemLeak.CMalloc(2000) for _ in range(2))  # PARENT
    with multiprocessing.Pool(2) as pool:
        pool.map(child, range(4))
    if len(sys.argv) > 3:
        code = "import sys; sys.path.insert(0, sys.argv[1]); from pymemtrace import cMemLeak; " \\
               "b = [cMemLeak.CMalloc(777) for _ in range(5)]  # SUBPROCESS"
        subprocess.run([sys.executable, "-c", code, sys.argv[1]], check=True)
"""
CHILD_BYTES = 3 * sum(3000 + n for n in range(4))


def run_runner(args, timeout=180):
    """The runner with its report in a file; returns (CompletedProcess, report text)."""
    with tempfile.TemporaryDirectory() as directory:
        report = os.path.join(directory, "report")
        result = subprocess.run([PYTHON, "-I", RUNNER, "-o", report, *args],
                                capture_output=True, text=True, timeout=timeout)
        text = open(report).read() if os.path.exists(report) else ""
    return result, text


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    path = tmp_path_factory.mktemp("family") / "family.py"
    path.write_text(FAMILY)
    os.chmod(path.parent, 0o755)
    return str(path)


def at(entries, marker, text=FAMILY):
    """The JSON entries of the line tagged `marker`."""
    return [e for e in entries if e["line"] == line_of(text, marker)]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_the_workers_of_every_start_method_are_traced(family, method):
    result, report = run_runner(["--lib", LIB, "--json", "--", PYTHON, family, BUILD_SRC, method])
    assert result.returncode == 0, result.stderr
    entries = json.loads(report)
    parent, children = at(entries, "# PARENT"), at(entries, "# CHILD")
    assert [(e["count"], e["bytes"]) for e in parent] == [(2, 4000)], entries
    assert [(e["count"], e["bytes"]) for e in children] == [(12, CHILD_BYTES)], entries
    # One entry for all processes: it names the workers that allocated, not the parent.
    assert parent[0]["pids"] != children[0]["pids"], entries


def test_a_python_subprocess_is_traced(family):
    result, report = run_runner(["--lib", LIB, "--json", "--", PYTHON, family, BUILD_SRC, "fork",
                                 "subprocess"])
    assert result.returncode == 0, result.stderr
    entries = [e for e in json.loads(report) if e["file"] == "<string>"]  # python -c CODE
    assert [(e["count"], e["bytes"]) for e in entries] == [(5, 5 * 777)], report


def test_no_follow_traces_the_command_alone(family):
    result, report = run_runner(["--lib", LIB, "--json", "--no-follow", "--", PYTHON, family,
                                 BUILD_SRC, "fork", "subprocess"])
    assert result.returncode == 0, result.stderr
    entries = json.loads(report)
    assert [(e["count"], e["bytes"]) for e in at(entries, "# PARENT")] == [(2, 4000)], entries
    assert len(entries) == 1, entries


def test_per_process_reports_split_by_pid_and_say_how_each_ended(family):
    result, report = run_runner(["--lib", LIB, "--report", "leaks", "--json", "--per-process",
                                 "--", PYTHON, family, BUILD_SRC, "fork"])
    assert result.returncode == 0, result.stderr
    children = at(json.loads(report), "# CHILD")
    # The workers end with their blocks still allocated (the parent frees its own at exit).
    assert sum(e["count"] for e in children) == 12 and all("pid" in e for e in children), report
    result, text = run_runner(["--lib", LIB, "--report", "leaks", "--per-process", "--", PYTHON,
                               family, BUILD_SRC, "fork"])
    assert result.returncode == 0, result.stderr
    # The workers exit, or Pool's exit ends them with SIGTERM: each section says which.
    sections = [line for line in text.splitlines() if line.startswith("== PID ")]
    assert sections and all("(exited with status 0)" in line or
                            "(killed by signal 15 (SIGTERM))" in line for line in sections), text
    assert "Processes traced:" in text, text


KILLED = """\
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
blocks = [cMemLeak.CMalloc(4096) for _ in range(7)]  # HELD
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_command_killed_by_sigkill_gets_its_leak_report_and_how_it_ended(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    os.chmod(tmp_path, 0o755)
    result, report = run_runner(["--lib", LIB, "--report", "leaks", "--", PYTHON, str(script),
                                 BUILD_SRC])
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    held = [line for line in report.splitlines() if f"killed.py:{line_of(KILLED, '# HELD')}" in line]
    assert len(held) == 1 and " 7 " in held[0] and "28672" in held[0], report
    assert "killed by signal 9 (SIGKILL)" in report, report


GROWS = """\
import ctypes, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
blocks = []
while True:
    block = cMemLeak.CMalloc(1 << 20)  # GROWS
    ctypes.memset(block.buffer, 1, 1 << 20)
    blocks.append(block)
    print(len(blocks), flush=True)
"""
MEMORY_CGROUP = "/sys/fs/cgroup/memory"  # cgroup v1 here; v2 would be memory.max


def test_a_command_the_oom_killer_ends_gets_its_leak_report(tmp_path):
    """A memory cgroup of 64 MiB: the kernel's OOM killer ends the command that keeps growing;
    the report holds every block it had (those it printed, and at most the one it was filling)."""
    if not os.path.isdir(MEMORY_CGROUP):
        pytest.skip(f"no cgroup v1 memory controller at {MEMORY_CGROUP} on this machine")
    cgroup = os.path.join(MEMORY_CGROUP, f"pymemtrace-test-{os.getpid()}")
    os.mkdir(cgroup)
    try:
        with open(os.path.join(cgroup, "memory.limit_in_bytes"), "w") as limit:
            limit.write(str(64 << 20))
        try:
            with open(os.path.join(cgroup, "memory.swappiness"), "w") as swap:
                swap.write("0")
        except OSError:
            pass
        script = tmp_path / "grows.py"
        script.write_text(GROWS)
        os.chmod(tmp_path, 0o755)
        report = tmp_path / "report"
        # The shell joins the cgroup, then becomes the Python the runner traces (same PID).
        result = subprocess.run(
            [PYTHON, "-I", RUNNER, "--lib", LIB, "--report", "leaks", "--user", "root", "-o",
             str(report), "--", "sh", "-c",
             f'echo $$ > {cgroup}/cgroup.procs && exec {PYTHON} "$0" "$1"', str(script),
             BUILD_SRC], capture_output=True, text=True, timeout=180)
    finally:
        deadline = time.monotonic() + 10
        while os.path.isdir(cgroup) and time.monotonic() < deadline:
            try:
                os.rmdir(cgroup)
            except OSError:
                time.sleep(0.2)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    printed = int(result.stdout.split()[-1])
    text = report.read_text()
    row = [line for line in text.splitlines() if f"grows.py:{line_of(GROWS, '# GROWS')}" in line]
    assert len(row) == 1, text
    count = int(row[0].split()[2])
    assert printed <= count <= printed + 1 and printed > 10, (printed, text)
    assert "killed by signal 9 (SIGKILL)" in text, text


GATED = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
sys.stdin.readline()  # released once the runner traces this process
child = os.fork()
if child == 0:
    blocks = [cMemLeak.CMalloc(5555) for _ in range(4)]  # FORKED
    os._exit(0)
os.waitpid(child, 0)
"""


def test_pid_mode_follows_children_forked_after_attaching(tmp_path):
    """With bpftrace, which follows forks with no window (the libbpf engine attaches a child
    once it sees the fork and states the window as a loss: tests/engine)."""
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    target = subprocess.Popen([PYTHON, str(script), BUILD_SRC], stdin=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # imported cMemLeak: the runner finds it in the target's maps
        runner = subprocess.Popen([PYTHON, "-I", RUNNER, "-p", str(target.pid), "--engine",
                                   "bpftrace", "--report", "leaks", "--json"],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        for line in runner.stderr:
            if "tracing PID" in line:
                break
        target.stdin.write("go\n")
        target.stdin.flush()
        target.wait(timeout=30)
        out, err = runner.communicate(timeout=60)
    finally:
        if target.poll() is None:
            target.kill()
    assert runner.returncode == 0, err
    forked = at(json.loads(out), "# FORKED", GATED)
    assert [(e["count"], e["bytes"]) for e in forked] == [(4, 4 * 5555)], out
    assert forked[0]["pids"] != [target.pid], out
