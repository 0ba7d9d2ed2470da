# SPDX-License-Identifier: MIT
"""processes: reports of several processes, merged by location or one per process, and how each
process ended (wait statuses as the scripts keep them in @ended). No root needed."""
import io
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))
from pymemtrace.trace import processes, reports  # noqa: E402
from pymemtrace.trace.programs import Plan  # noqa: E402

SUMMARY = Plan("pymemtrace_summary", [], "summary", -1)
# The parent (100) and a child (101) allocating at the same line, the child at another too.
MAPS = {"@alloc": {"100,/app/a.py,f,3,0,6": {"count": 2, "total": 200},
                   "101,/app/a.py,f,3,0,6": {"count": 5, "total": 500},
                   "101,/app/b.py,g,9,2,4": {"count": 1, "total": 30}},
        "@ended": {"101": signal.SIGKILL, "100": 3 << 8}}


def render(**view):
    out = io.StringIO()
    reports.report(out, SUMMARY, "summary", False, MAPS, [], reports.Shortener(True, 128),
                   reports.View(**view))
    return out.getvalue()


def test_wait_statuses_read_as_an_exit_status_or_a_signal():
    assert processes.how_ended(0) == "exited with status 0"
    assert processes.how_ended(3 << 8) == "exited with status 3"
    assert processes.how_ended(signal.SIGKILL) == "killed by signal 9 (SIGKILL)"
    assert processes.how_ended(signal.SIGSEGV | 0x80) == \
        "killed by signal 11 (SIGSEGV), core dumped"


def test_a_location_of_several_processes_is_one_entry_naming_them():
    entries = json.loads(render(form="json"))
    assert [(e["file"], e["count"], e["bytes"], e["pids"]) for e in entries] == [
        ("a.py", 7, 700, [100, 101]), ("b.py", 1, 30, [101])], entries


def test_per_process_entries_carry_their_pid():
    entries = json.loads(render(form="json", per_process=True))
    assert sorted((e["pid"], e["file"], e["count"]) for e in entries) == [
        (100, "a.py", 2), (101, "a.py", 5), (101, "b.py", 1)], entries


def test_per_process_text_has_a_section_per_process_saying_how_it_ended():
    text = render(per_process=True)
    assert text.index("== PID 101 (killed by signal 9 (SIGKILL))") < \
        text.index("== PID 100 (exited with status 3)"), text  # the largest first
    assert "   PID 100: exited with status 3\n   PID 101: killed by signal 9 (SIGKILL)" in text


def test_a_process_that_did_not_end_is_said_to_still_run():
    maps = dict(MAPS, **{"@ended": {}})
    out = io.StringIO()
    reports.report(out, SUMMARY, "summary", False, maps, [], reports.Shortener(True, 128))
    assert "PID 100: still running when tracing stopped" in out.getvalue()
