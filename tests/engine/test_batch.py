# SPDX-License-Identifier: MIT
"""pymemtrace-engine --batch (issue 23) on real processes: the py* events go to per-thread rings
in the target and are read in batches; each test leaves events in the rings where only a part of
the design can find them, and checks that the report holds every event exactly once.

    python3 tests/support/run_pytest.py tests/engine/test_batch.py --engine ... --cmemleak ...
        --pythonpath ... --batch-signal-program build/tests/engine/batch_signal_program
"""
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from source_lines import tagged_lines  # noqa: E402

from engine_run import EngineRun, entries, start_python, workload  # noqa: E402


def tags(name):
    with open(workload(name)) as source:
        return tagged_lines(source.read())


def no_loss(report):
    return report["complete"] is True and not any(report["loss"].values())


def idle_run(engine, cmemleak, pythonpath, name):
    """Runs workload `name` under `engine --batch`, released once the engine is ready; once it
    prints "idle" (its events made, some still in its rings) stops the engine with SIGINT.
    Returns (pid, report, the engine's exit status, its stderr)."""
    target = start_python([workload(name)], pythonpath)
    run = EngineRun(engine, [target.pid], [cmemleak], ["--batch"])
    try:
        ready = run.wait_for("ready")
        assert ready["probes"] == 4  # pyalloc, pyrealloc, pyfree, pybatch
        target.stdin.write("go\n")
        target.stdin.flush()
        assert target.stdout.readline() == "idle\n"
        run.signal(signal.SIGINT)
        report, returncode, _ = run.report()
        assert target.poll() is None  # stopped in the middle, not at its end
    finally:
        run.close()
        target.kill()
        target.wait()
    return target.pid, report, returncode, run.stderr


def test_a_stop_counts_the_events_still_in_the_rings_of_live_and_exited_threads_once(
        engine, cmemleak, pythonpath):
    name = "batch_pending_workload.py"
    pid, report, returncode, stderr = idle_run(engine, cmemleak, pythonpath, name)
    assert returncode == 0, stderr
    file, line = workload("batch_held_blocks.py"), tags("batch_held_blocks.py")
    expected = {
        (file, "kept", line["main"], 0): (1037, 103700),
        (file, "waiting", line["waiting"], 2): (10, 400),
        (file, "exiting", line["exiting"], 1): (57, 1368),
    }
    assert entries(report, "summary", pid) == expected
    assert entries(report, "leaks", pid) == expected
    counters = report["counters"]
    assert counters["pyalloc"] == 1104 and counters["pyfree"] == 0
    # Most were read in batches; what the rings held at the stop was read from the target.
    assert 0 < counters["batches"] < 1104
    assert no_loss(report), report["loss"]


def test_a_block_freed_by_another_thread_before_its_allocation_was_read_is_not_live(
        engine, cmemleak, pythonpath):
    name = "batch_cross_thread_workload.py"
    pid, report, returncode, stderr = idle_run(engine, cmemleak, pythonpath, name)
    assert returncode == 0, stderr
    file, line = workload(name), tags(name)
    assert entries(report, "summary", pid) == {
        (file, "maker", line["maker"], 0): (10, 640),
        (file, "<module>", line["filler"], 0): (200, 6400),
    }
    assert entries(report, "leaks", pid) == {}
    counters = report["counters"]
    # The maker's first event went at once (a new frame); its other nine were still in its ring
    # when the main thread's frees of them were read.
    assert counters["batch_freed_first"] == 9
    assert counters["unmatched_free"] == 0 and counters["pyfree"] == 210
    assert no_loss(report), report["loss"]


def test_signal_handlers_and_threads_without_the_gil_lose_and_double_nothing(
        engine, batch_signal_program):
    blocks = 50_000
    program = subprocess.Popen([batch_signal_program, str(blocks)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    pid = int(program.stdout.readline())
    run = EngineRun(engine, [pid], [batch_signal_program], ["--batch"])
    try:
        run.wait_for("ready")
        program.stdin.write("go\n")
        program.stdin.flush()
        done, handler_pairs = program.stdout.readline().split()
        assert done == "done" and int(handler_pairs) > 0
        run.signal(signal.SIGINT)
        report, returncode, _ = run.report()
    finally:
        run.close()
        program.kill()
        program.wait()
    assert returncode == 0, run.stderr
    # No Python here: every event has no location ("", line 0).
    assert entries(report, "summary", pid) == {
        ("", "", 0, 0): (4 * blocks, sum(16 + (i & 7) for i in range(blocks)) * 4),
        ("", "", 0, 17): (int(handler_pairs), 8 * int(handler_pairs)),
    }
    assert entries(report, "leaks", pid) == {}
    counters = report["counters"]
    assert counters["pyfree"] == counters["pyalloc"] == 4 * blocks + int(handler_pairs)
    assert counters["unmatched_free"] == 0
    assert no_loss(report), report["loss"]


def test_frees_fire_no_batch_of_their_own(engine, cmemleak, pythonpath):
    # A batched free carries no location (the engine matches it by pointer): 200 frees, each in
    # a frame never seen, fired 200 batches early when each free looked its frame up.
    name = "batch_free_frames_workload.py"
    pid, report, returncode, stderr = idle_run(engine, cmemleak, pythonpath, name)
    assert returncode == 0, stderr
    assert entries(report, "leaks", pid) == {
        (workload(name), "<listcomp>", tags(name)["kept"], 0): (440, 44000)}
    # 840 events: 13 full batches, the first frame's own, the ring's announcement.
    assert report["counters"]["batches"] <= 20, report["counters"]
    assert no_loss(report), report


def two_engines_in_turn(engine, cmemleak, pythonpath, argv):
    """Runs argv (a workload that makes its events after each line on stdin, then prints "idle")
    under two `engine --batch` in turn, each stopped with SIGINT once the workload is idle.
    Returns (the target, the two reports)."""
    target = start_python(argv, pythonpath)
    reports = []
    try:
        for _ in range(2):
            run = EngineRun(engine, [target.pid], [cmemleak], ["--batch"])
            try:
                run.wait_for("ready")
                target.stdin.write("go\n")
                target.stdin.flush()
                assert target.stdout.readline() == "idle\n"
                run.signal(signal.SIGINT)
                report, returncode, _ = run.report()
                assert returncode == 0, run.stderr
                reports.append(report)
            finally:
                run.close()
    finally:
        target.kill()
        target.wait()
    return target, reports


def test_a_second_engine_reports_only_the_events_made_while_it_traced(
        engine, cmemleak, pythonpath):
    name = "batch_sessions_workload.py"
    target, reports = two_engines_in_turn(engine, cmemleak, pythonpath, [workload(name)])
    file, line = workload(name), tags(name)
    assert entries(reports[0], "leaks", target.pid) == {(file, "<module>", line["first"], 0):
                                                        (1037, 103700)}
    # The rings the first engine knew still hold its events (and were announced to it alone).
    assert entries(reports[1], "leaks", target.pid) == {(file, "<module>", line["second"], 0):
                                                        (200, 20000)}
    assert no_loss(reports[1]), reports[1]["loss"]


def snapshots_after(run, instant_ns, count):
    """The next `count` snapshot lines taken after `instant_ns` (CLOCK_MONOTONIC)."""
    taken = []
    while len(taken) < count:
        snapshot = run.wait_for("snapshot")
        if snapshot["time_ns"] > instant_ns:
            taken.append(snapshot)
    return taken


def test_every_snapshot_counts_the_events_still_in_the_rings_once(engine, cmemleak, pythonpath):
    name = "batch_snapshot_workload.py"
    file, line = workload("batch_held_blocks.py"), tags("batch_held_blocks.py")
    stages = [
        {(file, "kept", line["main"], 0): (1037, 103700)},
        {(file, "kept", line["main"], 0): (517, 51700),
         (file, "waiting", line["waiting"], 2): (5, 200),
         (file, "exiting", line["exiting"], 1): (57, 1368)},
    ]
    target = start_python([workload(name)], pythonpath)
    run = EngineRun(engine, [target.pid], [cmemleak], ["--batch", "--interval-ms", "40"])
    try:
        assert run.wait_for("ready")["probes"] == 4
        for expected in stages:
            target.stdin.write("go\n")
            target.stdin.flush()
            assert target.stdout.readline() == "idle\n"
            # Three snapshots while the target holds its blocks, events still in its rings.
            for snapshot in snapshots_after(run, time.monotonic_ns(), 3):
                assert entries(snapshot, "leaks", target.pid) == expected, snapshot
                assert snapshot["live_blocks"] == sum(n for n, _ in expected.values())
                assert snapshot["refused"] == 0
        run.signal(signal.SIGINT)
        report, returncode, _ = run.report()
        assert target.poll() is None
    finally:
        run.close()
        target.kill()
        target.wait()
    assert returncode == 0, run.stderr
    assert entries(report, "leaks", target.pid) == stages[-1]
    assert report["counters"]["pyalloc"] == 1099 and report["counters"]["pyfree"] == 520
    assert no_loss(report), report["loss"]


def test_names_that_are_not_utf8_are_named_right_when_their_batch_is_read_late(
        engine, cmemleak, pythonpath, tmp_path):
    # Under a second engine the thread does not send the frames again (it sent them to the
    # first): their events wait in the ring with the names' pointers, read at the report, after
    # the other function's lookups.
    name = "batch_names_workload.py"
    target, reports = two_engines_in_turn(engine, cmemleak, pythonpath,
                                          [workload(name), str(tmp_path)])
    first = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"first-\xff.py"))
    second = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"second-\xfe.py"))
    line = tags(name)
    for session, report in enumerate(reports, 1):
        assert entries(report, "leaks", target.pid) == {
            (workload(name), "<module>", line[f"fresh{session}"], 0): (1, session),
            (first, "first_\udcfe", 3, 0): (3, 30),
            (second, "second_\udcfd", 4, 0): (3, 30),
        }
