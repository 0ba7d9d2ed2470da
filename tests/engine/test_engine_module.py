# SPDX-License-Identifier: MIT
"""src/pymemtrace/trace/engine.py, the runner's way to run the engine, on a real process (root):
it yields the ready line, then the report of what the process did, and turns the engine's
one-line errors into errors.Failure."""
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402,F401  (the runner's package from the source tree)
from source_lines import tagged_lines  # noqa: E402

from engine_run import start_python, workload  # noqa: E402

from pymemtrace.trace.engine import EngineRun  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402


def test_the_runner_gets_ready_then_the_report_of_a_held_command(engine, cmemleak, pythonpath):
    target = start_python([workload("held_workload.py")], pythonpath)
    try:
        with EngineRun([target.pid], [cmemleak], engine=engine) as run:
            assert run.ready()["probes"] == 3
            target.stdin.write("go\n")
            target.stdin.flush()
            report = run.report()
        assert run.returncode == 0
    finally:
        target.kill()
        target.wait()
    with open(workload("held_workload.py")) as source:
        kept = tagged_lines(source.read())["kept"]
    leaks = {(e["function"], e["line"]): (e["count"], e["bytes"]) for e in report["leaks"]}
    assert leaks[("kept", kept)] == (10, 1000)
    assert report["processes"][0]["ended"] == {"exit": 7}


def test_an_engine_error_is_a_failure_with_its_fix(engine, cmemleak):
    with pytest.raises(Failure) as failure:
        with EngineRun([999999999], [cmemleak], engine=engine) as run:
            run.ready()
    assert str(failure.value) == "no process 999999999"
    assert failure.value.fix == "give the PID of a running process"


def test_an_engine_started_before_its_targets_reports_a_held_command_the_same(engine, cmemleak,
                                                                             pythonpath):
    """targets_later (--targets-fd): the runner starts the engine, then finds its targets and
    forks the command, which holds the engine's stdin until it execs; the `end` line, not the
    end of the pipe, lets the engine go on (read to the end of the pipe, the targets waited for
    the holder to end, 30 s, and the engine failed: seen)."""
    with EngineRun([], [], engine=engine, targets_later=True) as run:
        holder = os.fork()  # as the runner's held command: a copy of the engine's stdin
        if holder == 0:
            time.sleep(30)
            os._exit(0)
        target = start_python([workload("held_workload.py")], pythonpath)
        try:
            run.name_targets([target.pid], [cmemleak])
            assert run.ready()["probes"] == 3
            target.stdin.write("go\n")
            target.stdin.flush()
            report = run.report()
        finally:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)
            target.kill()
            target.wait()
    assert run.returncode == 0
    with open(workload("held_workload.py")) as source:
        kept = tagged_lines(source.read())["kept"]
    leaks = {(e["function"], e["line"]): (e["count"], e["bytes"]) for e in report["leaks"]}
    assert leaks[("kept", kept)] == (10, 1000)
    assert report["processes"] == [{"pid": target.pid, "parent": 0, "ended": {"exit": 7}}]


@pytest.mark.parametrize("case", ["no process", "not a pid"])
def test_targets_named_later_that_are_wrong_are_a_failure_with_its_fix(engine, cmemleak, case):
    pid = {"no process": 999999999, "not a pid": 0}[case]
    with pytest.raises(Failure) as failure:
        with EngineRun([], [], engine=engine, targets_later=True) as run:
            run.name_targets([pid], [cmemleak])
            run.ready()
    expected = {"no process": ("no process 999999999", "give the PID of a running process"),
                "not a pid": ("--targets-fd: 'pid 0' is not a process ID",
                              "give a positive number")}[case]
    assert (str(failure.value), failure.value.fix) == expected
