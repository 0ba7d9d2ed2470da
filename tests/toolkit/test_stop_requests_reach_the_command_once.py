# SPDX-License-Identifier: MIT
"""In command mode one stop request is one graceful stop of the command, however many of the
runner's processes it reaches (issue 20): the runner passes SIGINT, SIGTERM and SIGHUP on to
the command only when the command did not get the same request itself. systemd's default
KillMode=control-group signals the unit's main process (the runner), then every other process
of its cgroup (the tracer, the command), microseconds to milliseconds apart; a `kill` of the
runner alone reaches the command only as the copy the runner passes on.

Real runner, real tracer, real signals. Run through tests/support/run_pytest.py (exit 77 when
not root or without bpftrace), with PYTHONPATH=<builddir>/src.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from test_never_harm import BUILD_SRC, CMEMLEAK, PYTHON, RUNNER, semaphores
from pymemtrace.trace import procfs

# Counts the stop signal named by argv[2]; at the first one its shutdown allocates, then it
# waits a second for late copies, says how many came and exits 0.
COUNTS_STOPS = """\
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
number = getattr(signal, sys.argv[2])
kept, stops = [], []
signal.signal(number, lambda n, frame: stops.append(n))
print("pid", os.getpid(), flush=True)
while not stops:
    time.sleep(0.01)
kept.append(cMemLeak.CMalloc(4321))  # allocated by the shutdown: must be in the report
time.sleep(1.0)  # copies of the request arriving late are counted too
print("stops", len(stops), flush=True)
os._exit(0)
"""


def descendants(pid):
    """The processes under `pid` (its tracer, the command), by parent PID from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass  # gone meanwhile
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = sorted(child for child, of in parents.items() if of == parent)
        found += children
        frontier += children
    return found


def start_runner(engine, name):
    """The runner tracing COUNTS_STOPS for signal `name`, once its probes are armed; (runner,
    the command's PID)."""
    runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--engine", engine, "--lib",
                               CMEMLEAK, "--", PYTHON, "-c", COUNTS_STOPS, BUILD_SRC, name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(runner.stdout.readline().split()[1])
    assert procfs.wait_semaphores(pid, semaphores(pid), any, 60), "never armed"
    return runner, pid


def finished(runner):
    """(exit status, standard output, standard error) of the runner, once the command ended."""
    try:
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    return runner.returncode, out, err


def assert_one_graceful_stop(status, out, err):
    assert "stops 1\n" in out, (out, err)
    assert status == 0, err
    assert re.search(r"^\s+4321 .*C heap", out, re.M), out  # the shutdown's block
    assert "exited with status 0" in out, out


# systemd's order is the main process first, then the cgroup's others; a supervisor may go the
# other way. The gap between two kills: none, or a loaded machine's few milliseconds.
@pytest.mark.parametrize("name, order, gap", [
    ("SIGTERM", "runner first", 0), ("SIGTERM", "runner first", 0.005),
    ("SIGTERM", "command first", 0), ("SIGTERM", "command first", 0.005),
    ("SIGINT", "runner first", 0.001), ("SIGHUP", "command first", 0.001)])
def test_a_stop_request_to_every_process_of_the_unit_reaches_the_command_once(name, order, gap):
    runner, pid = start_runner("libbpf", name)
    everyone = [runner.pid] + descendants(runner.pid)
    assert pid in everyone, everyone
    if order == "command first":
        everyone = [pid] + [p for p in everyone if p != pid]
    for number, each in enumerate(everyone):  # as systemd's loop over cgroup.procs
        if number and gap:
            time.sleep(gap)
        os.kill(each, getattr(signal, name))
    assert_one_graceful_stop(*finished(runner))


@pytest.mark.parametrize("engine, name", [("libbpf", "SIGTERM"), ("libbpf", "SIGINT"),
                                          ("libbpf", "SIGHUP"), ("bpftrace", "SIGTERM")])
def test_a_stop_request_to_the_runner_alone_reaches_the_command_once(engine, name):
    runner, _pid = start_runner(engine, name)
    os.kill(runner.pid, getattr(signal, name))
    assert_one_graceful_stop(*finished(runner))


# Not SIGINT: bpftrace ends on it, the runner's way of stopping it (docs/development.md, "Stops").
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_with_bpftrace_a_stop_request_to_every_process_of_the_unit_reaches_the_command_once(name):
    """bpftrace's program of a command reports the stop signals too; bpftrace itself does not end
    on the unit's SIGTERM or SIGHUP (the runner stops it once the command has ended)."""
    runner, pid = start_runner("bpftrace", name)
    everyone = [runner.pid] + descendants(runner.pid)
    assert pid in everyone, everyone
    for each in everyone:
        os.kill(each, getattr(signal, name))
        time.sleep(0.005)  # two copies pending at once would be one: let each be delivered
    assert_one_graceful_stop(*finished(runner))


# Sends its parent, the runner, the stop signal named by argv[2] once armed (a line on stdin),
# counts the copies it gets back in the next second, allocates and exits 0.
SIGNALS_ITS_PARENT = """\
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
number = getattr(signal, sys.argv[2])
stops = []
signal.signal(number, lambda n, frame: stops.append(n))
print("pid", os.getpid(), flush=True)
sys.stdin.readline()
os.kill(os.getppid(), number)
time.sleep(1.0)
kept = cMemLeak.CMalloc(4321)
print("stops", len(stops), flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("engine", ["libbpf", "bpftrace"])
def test_a_stop_request_the_command_sends_the_runner_is_not_sent_back_to_it(engine):
    # As sudo: the command asked; sent back, its own signal stopped it (before: "stops 1").
    runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--engine", engine, "--lib",
                               CMEMLEAK, "--", PYTHON, "-c", SIGNALS_ITS_PARENT, BUILD_SRC,
                               "SIGTERM"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    pid = int(runner.stdout.readline().split()[1])
    assert procfs.wait_semaphores(pid, semaphores(pid), any, 60), "never armed"
    runner.stdin.write("go\n")
    runner.stdin.flush()
    status, out, err = finished(runner)
    assert "stops 0\n" in out, (out, err)
    assert status == 0, err
    assert re.search(r"^\s+4321 .*C heap", out, re.M), out
