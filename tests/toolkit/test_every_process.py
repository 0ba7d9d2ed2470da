# SPDX-License-Identifier: MIT
"""--all: every process that maps an instrumented library is traced, those started after tracing
began too, each reported under its own PID with its command line, escaped when shown.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace), with
PYTHONPATH=<builddir>/src.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402,F401  (also makes pymemtrace.trace importable)
from runner import BUILD_SRC, LIB, PYTHON, every_process_run, wait_until  # noqa: E402


# Waits for the file GO, keeps COUNT blocks of SIZE bytes, says so (GO.PID), then waits.
USER = """\
import os, sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.05)
keep = [cMemLeak.CMalloc(int(sys.argv[3])) for _ in range(int(sys.argv[4]))]
open(go + "." + str(os.getpid()), "w").close()
time.sleep(120)
"""


def test_two_independent_processes_are_reported_under_their_own_pids(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    script = tmp_path / "user.py"
    script.write_text(USER)
    go = str(tmp_path / "go")
    # One process runs before tracing starts; the other starts after; neither is related to the
    # runner or to the other. The second's last argument is hostile in a terminal.
    before = subprocess.Popen([PYTHON, str(script), BUILD_SRC, go, "111", "3"])
    started = [before]

    def workload(processes):
        started.append(subprocess.Popen([PYTHON, str(script), BUILD_SRC, go, "222", "4",
                                         "\x1b]0;x\x07"]))
        processes.append(started[-1])
        time.sleep(0.5)  # its import done
        open(go, "w").close()
        assert wait_until(lambda: all(os.path.exists(f"{go}.{p.pid}") for p in started))
    errors = tmp_path / "runner.err"
    try:
        status, out = every_process_run(["--lib", LIB, "--report", "leaks", "--json"], errors,
                                        workload)
    finally:
        if before.poll() is None:
            before.kill()
            before.wait()
    assert status == 0, errors.read_text()
    after = started[1]
    entries = json.loads(out)
    by_pid = {}
    for e in entries:
        by_pid.setdefault(e["pid"], []).append((e["count"], e["bytes"]))
    assert by_pid.get(before.pid) == [(3, 333)], entries
    assert by_pid.get(after.pid) == [(4, 888)], entries
    commands = {e["pid"]: e["command"] for e in entries}
    assert commands[after.pid].endswith(" 222 4 \x1b]0;x\x07"), commands


def test_text_sections_name_each_pid_and_its_escaped_command_line(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    script = tmp_path / "user.py"
    script.write_text(USER)
    go = str(tmp_path / "go")
    errors = tmp_path / "runner.err"
    users = []

    def workload(processes):
        users.append(subprocess.Popen([PYTHON, str(script), BUILD_SRC, go, "50", "2",
                                       "a\nb\x1b[2J"]))
        processes.append(users[0])
        time.sleep(0.5)
        open(go, "w").close()
        assert wait_until(lambda: os.path.exists(f"{go}.{users[0].pid}"))
    status, out = every_process_run(["--lib", LIB, "--report", "leaks"], errors, workload)
    assert status == 0, errors.read_text()
    user = users[0]
    section = [line for line in out.splitlines() if line.startswith(f"== PID {user.pid}: ")]
    assert len(section) == 1 and section[0].endswith(" 50 2 a\\nb\\x1b[2J (still running)"), out
    assert "\x1b" not in out, out
