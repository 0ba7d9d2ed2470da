# SPDX-License-Identifier: MIT
"""src/pymemtrace/trace/engine.py, the runner's way to run the engine, on a real process (root):
it yields the ready line, then the report of what the process did, and turns the engine's
one-line errors into errors.Failure."""
import os
import sys

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
