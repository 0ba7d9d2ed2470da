# SPDX-License-Identifier: MIT
"""pymemtrace-trace with its libbpf engine (issue 20), on real processes: the leak report at a
stop is the live set at one instant, and a process of another user that maps the same library is
neither traced nor slowed (its semaphores stay 0). bpftrace got the first wrong (frees recorded
during the drain while allocations were not: an empty report, exit 0) and set the semaphores of
every process mapping the library. Run through tests/support/run_pytest.py, as root."""
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
from other_user import other_user  # noqa: E402
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402

from pymemtrace.trace import elf, procfs  # noqa: E402

FIFO = os.path.join(ROOT, "tests", "engine", "fifo_workload.py")
CMEMLEAK = next(os.path.join(LIB, name) for name in os.listdir(LIB)
                if name.startswith("cMemLeak.") and name.endswith(".so"))
PY_PROBES = ("pyalloc", "pyrealloc", "pyfree")


def semaphores(pid):
    """The values, in process `pid`, of cMemLeak's py* semaphores."""
    addresses = procfs.runtime_addresses(pid, CMEMLEAK,
                                         elf.semaphore_addresses(CMEMLEAK, PY_PROBES))
    assert len(addresses) == 3, addresses
    seen = []
    procfs.wait_semaphores(pid, list(addresses.values()), lambda v: seen.append(v) or True, 1)
    return seen[0]


def fifo(blocks, command=()):
    """fifo_workload.py holding `blocks` live blocks, turning over until killed."""
    env = dict(os.environ, PYTHONPATH=BUILD_SRC)
    process = subprocess.Popen([*command, PYTHON, FIFO, str(blocks)], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    int(process.stdout.readline())
    return process


def held_at_ctrl_c(blocks, runner):
    """(blocks in the leak report, the runner's stderr) of `runner` (its argv up to the options)
    with -p on a FIFO of `blocks` turning over, stopped with SIGINT once every live block was made
    while traced; the run must succeed."""
    target = fifo(blocks)
    try:
        process = subprocess.Popen([*runner, "--report", "leaks", "--json", "-p", str(target.pid)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "tracing PID" in process.stderr.readline()
        target.stdin.write("mark\n")  # every block live after `turned` was made while traced
        target.stdin.flush()
        assert target.stdout.readline() == "turned\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        target.kill()
        target.wait()
    assert process.returncode == 0, err
    return sum(entry["count"] for entry in json.loads(out)), err


@pytest.mark.parametrize("run", range(3))
def test_a_leak_report_at_ctrl_c_holds_a_fast_fifo_of_50000_blocks(run):
    blocks, err = held_at_ctrl_c(50000, [PYTHON, RUNNER])
    assert 50000 <= blocks <= 50002, (blocks, err)  # in flight at the pause: the one being made


def test_another_users_process_mapping_the_library_is_not_traced_and_pays_nothing():
    with other_user() as user:
        bystander = fifo(10, ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                              "--clear-groups", "--"])
        target = fifo(10)
        try:
            runner = subprocess.Popen([PYTHON, RUNNER, "--report", "summary", "--json", "-p",
                                       str(target.pid)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert "tracing PID" in runner.stderr.readline()
            time.sleep(0.5)
            traced, untouched = semaphores(target.pid), semaphores(bystander.pid)
            runner.send_signal(signal.SIGINT)
            out, err = runner.communicate(timeout=60)
        finally:
            for process in (target, bystander):
                process.kill()
                process.wait()
    assert runner.returncode == 0, err
    assert all(traced) and not any(untouched), (traced, untouched)
    assert {entry["pids"][0] for entry in json.loads(out)} == {target.pid}, out


# The runner, in a Python whose bpftrace lookup finds none: what a host without bpftrace sees.
WITHOUT_BPFTRACE = """\
import sys
sys.path.insert(0, sys.argv[1])
from pymemtrace.trace import bpftrace_binary, cli
bpftrace_binary.SYSTEM_DIRECTORIES = ("/nonexistent",)
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_pid_report_made_by_the_engine_needs_no_bpftrace():
    """The engine makes -p leak reports: a host without bpftrace still gets them (the runner
    asked for bpftrace first, whatever made the report)."""
    blocks, err = held_at_ctrl_c(10, [PYTHON, "-I", "-c", WITHOUT_BPFTRACE,
                                      os.path.join(ROOT, "src")])
    assert 10 <= blocks <= 11, (blocks, err)  # the FIFO's 10, and the one being made at the instant


def children_of(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def test_a_runner_killed_at_once_takes_its_engine_with_it_and_the_probes_go():
    """SIGKILL to the runner leaves no engine attached to the target: the engine asks the kernel
    to kill it with its parent (--die-with, set by the engine itself since the runner spawns it
    without code of its own in the child: start-up, docs/engine.md)."""
    target = fifo(10)
    try:
        runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "-p", str(target.pid)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "tracing PID" in runner.stderr.readline()
        engines = children_of(runner.pid)
        assert len(engines) == 1 and all(semaphores(target.pid)), engines
        runner.kill()
        runner.communicate(timeout=60)
        deadline = time.monotonic() + 30  # the kernel's detach: RCU grace periods
        while os.path.exists(f"/proc/{engines[0]}") or any(semaphores(target.pid)):
            assert time.monotonic() < deadline, "the engine outlived its runner"
            time.sleep(0.1)
    finally:
        target.kill()
        target.wait()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
