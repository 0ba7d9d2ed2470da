# SPDX-License-Identifier: MIT
"""pymemtrace-engine --by-path (docs/engine.md, "Commands: libraries attached by path"): the
--lib libraries attached by path before `ready`, only the traced processes' events kept. Real
processes under Debian's /usr/bin/python3 with the built cMemLeak, real BPF, as root."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402,F401  (the runner's modules, from the source tree)
from source_lines import tagged_lines  # noqa: E402

from engine_run import (EngineRun, bystander_beside_target, entries, held_command,  # noqa: E402
                        semaphores, workload)


def test_children_that_allocate_at_once_after_fork_are_reported_whole_with_no_window(
        engine, cmemleak, pythonpath):
    # The workload prints its PID first, then waits for the release.
    pid, _ready, report, returncode, stderr = held_command(
        engine, [workload("fork_at_once_workload.py")], pythonpath, [cmemleak],
        extra=["--by-path"])
    # Per PID, every child here lost its first events (window "dropped", exit 3): by path the
    # breakpoints and semaphores were in the child's copy of the library from its fork.
    assert returncode == 0, stderr
    children = [p for p in report["processes"] if p["parent"] == pid]
    assert len(children) == 8
    assert all(c["window"] == "exact" and c["ended"] == {"exit": 5} for c in children)
    file = workload("fork_at_once_workload.py")
    with open(file) as source:
        line = 1 + source.read().splitlines().index(
            "        mine = [cMemLeak.CMalloc(20) for _ in range(5000)]")
    for child in children:
        assert entries(report, "leaks", child["pid"]) == {(file, "<listcomp>", line, 0):
                                                          (5000, 100000)}
    assert report["attached_by_path"] == [cmemleak]
    assert report["complete"] is True and not any(report["loss"].values())


def test_a_library_attached_by_path_is_not_attached_again_per_pid_when_the_command_maps_it(
        engine, cmemleak, pythonpath, tmp_path):
    # Named twice (a link), mapped after `ready`: one attach, each event counted once.
    alias = tmp_path / "alias.so"
    alias.symlink_to(cmemleak)
    pid, _ready, report, returncode, stderr = held_command(
        engine, [workload("held_workload.py")], pythonpath, [str(alias), cmemleak],
        extra=["--by-path"])
    assert returncode == 0, stderr
    with open(workload("held_workload.py")) as source:
        line = tagged_lines(source.read())
    assert report["counters"]["pyalloc"] == 37 and report["counters"]["pyfree"] == 20
    assert entries(report, "leaks", pid)[
        (workload("held_workload.py"), "kept", line["kept"], 0)] == (10, 1000)
    assert report["late_libraries"] == [] and report["attached_by_path"] == [str(alias)]


def test_another_users_process_mapping_the_library_pays_the_trap_but_is_not_reported(
        engine, cmemleak, pythonpath):
    with bystander_beside_target(pythonpath) as (bystander, bystander_pid, target_pid):
        run = EngineRun(engine, [target_pid], [cmemleak], ["--by-path"])
        try:
            run.wait_for("ready")
            # The cost of by path, as the bpftrace runner has it: the kernel set the other
            # process's semaphores too; its events trap, and BPF drops them.
            assert set(semaphores(bystander_pid, cmemleak).values()) == {1}
            time.sleep(0.2)
            run.signal(signal.SIGINT)
            report, returncode, _ = run.report()
        finally:
            run.close()
        assert returncode == 0, run.stderr
        assert {entry["pid"] for entry in report["summary"]} == {target_pid}
        assert {entry["pid"] for entry in report["leaks"]} == {target_pid}
        assert bystander.poll() is None
        # Detached: nobody pays any more.
        assert set(semaphores(bystander_pid, cmemleak).values()) == {0}
        assert set(semaphores(target_pid, cmemleak).values()) == {0}
    assert bystander.returncode == 0


def test_by_path_with_all_is_refused_in_one_line(engine, cmemleak):
    done = subprocess.run([engine, "--all", "--by-path", "--lib", cmemleak],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "leave out --by-path" in done.stderr
