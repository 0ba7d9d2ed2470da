# SPDX-License-Identifier: MIT
"""pymemtrace-trace's --interval and --all on its libbpf engine (issue 20), on real processes.
Snapshots are taken at one instant with recording on: a process churning while it holds 50,000
blocks has 50,000 in every snapshot (bpftrace aborted or lied; a snapshot that paused recording,
as the final report does, kept the blocks freed during each pause: 51,405 then 53,032...). The
engine's snapshots are written as the bpftrace runner's are. --all's report at a stop is the live
set at one instant. Run through tests/support/run_pytest.py, as root."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "src"))
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402

CHURN = os.path.join(ROOT, "tests", "engine", "churn_workload.py")
FIFO = os.path.join(ROOT, "tests", "engine", "fifo_workload.py")


def workload(script, blocks):
    process = subprocess.Popen([PYTHON, script, str(blocks)],
                               env=dict(os.environ, PYTHONPATH=BUILD_SRC),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    int(process.stdout.readline())
    return process


def tell(process, expect):
    """A line to the workload, then its answer `expect`."""
    process.stdin.write("go\n")
    process.stdin.flush()
    assert process.stdout.readline() == expect + "\n"


def test_every_snapshot_of_a_process_churning_50000_blocks_holds_50000():
    target = workload(CHURN, 50000)
    try:
        runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--interval", "1",
                                   "--json", "-p", str(target.pid)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "tracing PID" in runner.stderr.readline()
        tell(target, "renewed")  # every block live from now on was made while traced
        renewed = time.time()
        snapshots = []
        while len([s for s in snapshots if s["time"] > renewed]) < 4:
            snapshots.append(json.loads(runner.stdout.readline()))
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
    finally:
        target.kill()
        target.wait()
    assert runner.returncode == 0, err
    lines = snapshots + [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines[-2:]] == ["report", "peak"], lines[-2:]
    numbers = [s["snapshot"] for s in lines[:-2]]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    times = [s["time"] for s in lines[:-2]]
    assert times == sorted(times) and len(set(times)) == len(times), times
    after = [s["blocks"] for s in snapshots if s["time"] > renewed]
    assert all(49000 <= blocks <= 51000 for blocks in after), after
    for snapshot in lines[:-2]:
        assert snapshot["blocks"] == sum(e["count"] for e in snapshot["entries"]), snapshot


# As test_reports_over_time's: a cache of 5 blocks of 500 bytes, then a leak that grows.
GROWING = """\
import sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
cache = [cMemLeak.CMalloc(500) for _ in range(5)]  # CACHE
leak = []
end = time.time() + float(sys.argv[2])
while time.time() < end:
    leak.append(cMemLeak.CMalloc(1000))  # LEAK
    time.sleep(0.1)
"""


def snapshots_of(engine, path):
    result = subprocess.run([PYTHON, "-I", RUNNER, "--engine", engine, "--report", "leaks",
                             "--interval", "1", "--json", "--lib", LIB, "--", PYTHON, path,
                             BUILD_SRC, "3.5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (engine, result.stderr)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_engines_snapshots_are_written_as_the_bpftrace_runners(tmp_path):
    path = tmp_path / "growing.py"
    path.write_text(GROWING)
    os.chmod(tmp_path, 0o755)
    ours, theirs = snapshots_of("libbpf", str(path)), snapshots_of("bpftrace", str(path))
    for lines in (ours, theirs):
        assert [line["type"] for line in lines[-2:]] == ["report", "peak"], lines
        assert len(lines) - 2 >= 2, lines
    for which in (0, 1, -2, -1):  # two snapshots, the report, the peak: the same fields
        assert sorted(ours[which]) == sorted(theirs[which]), (ours[which], theirs[which])
    # The cache is the same 5 blocks in the snapshots of both; the leak grows in both.
    for lines in (ours, theirs):
        running = [line for line in lines[:-2] if line["entries"]]  # not after the exit
        caches = [[(e["bytes"], e["count"], e["growth"]) for e in line["entries"]
                   if e["file"] == "growing.py" and e["line"] == 4] for line in running]
        assert len(caches) >= 2 and all(cache == [(2500, 5, 0)] for cache in caches), caches
        leaks = [sum(e["bytes"] for e in line["entries"] if e["line"] == 8) for line in running]
        assert leaks == sorted(leaks) and leaks[-1] >= 10000, leaks
    assert sorted(ours[0]["entries"][0]) == sorted(theirs[0]["entries"][0]), (ours, theirs)


def test_a_leak_report_of_every_process_at_ctrl_c_holds_a_fast_fifo_of_50000_blocks():
    runner = subprocess.Popen([PYTHON, RUNNER, "--all", "--lib", LIB, "--report", "leaks",
                               "--json", "--per-process"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "tracing every process" in runner.stderr.readline()
        target = workload(FIFO, 50000)
        try:
            tell(target, "turned")  # every block live then was made while traced
            runner.send_signal(signal.SIGINT)
            out, err = runner.communicate(timeout=60)
        finally:
            target.kill()
            target.wait()
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 0, err
    entries = [e for e in json.loads(out) if e["pid"] == target.pid]
    blocks = sum(e["count"] for e in entries)
    assert 50000 <= blocks <= 50002, (blocks, err)  # in flight at the pause: the one being made
    assert all("fifo_workload.py" in e["command"] for e in entries), entries


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
