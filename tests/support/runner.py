# SPDX-License-Identifier: MIT
"""toolkit/pymemtrace-trace as the toolkit tests run it: Debian's Python (built --with-dtrace),
the report in a file of its own (apart from the command's output), the build's cMemLeak on
PYTHONPATH."""
import os
import signal
import subprocess
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")
PYTHON = "/usr/bin/python3"
BUILD_SRC = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
LIB = os.path.join(BUILD_SRC, "pymemtrace")  # the built cMemLeak's directory, for --lib


def report_of(args, timeout=180):
    """The report of a run of the runner with `args`, which must succeed."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "report")
        result = subprocess.run([PYTHON, RUNNER, "-o", path, *args], capture_output=True,
                                text=True, timeout=timeout)
        report = open(path).read() if os.path.exists(path) else ""
    assert result.returncode == 0, result.stderr[-800:]
    return report


def pid_run(target, args, timeout=120):
    """(exit status, stdout, stderr) of the runner attached with `-p` to `target`, a Popen held
    on its stdin: released with a line once the runner says it traces it, then left to exit."""
    runner = subprocess.Popen([PYTHON, "-I", RUNNER, "-p", str(target.pid), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = ""
    try:
        for line in runner.stderr:
            said += line
            if "tracing PID" in line:
                break
        target.stdin.write("go\n")
        target.stdin.flush()
        target.wait(timeout=max(60, timeout))
        out, err = runner.communicate(timeout=timeout)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    return runner.returncode, out, said + err


def pid_report(target, args, timeout=120):
    """The report (stdout) of pid_run, which must succeed."""
    status, out, err = pid_run(target, args, timeout)
    assert status == 0, f"runner exited {status}:\n{err[-800:]}"
    return out


def wait_until(predicate, timeout=30.0):
    """Whether `predicate()` came true within `timeout` seconds (asked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def every_process_run(args, errors, workload, settle=0.3):
    """(exit status, stdout) of `pymemtrace-trace --all ARGS`, its stderr in the file `errors`:
    once it says it traces every process, `workload(processes)` starts what is to be traced
    (appending each Popen to `processes`) and returns when they have done what the report is
    to hold; `settle` seconds later a SIGINT stops the runner. Whatever still runs is killed."""
    processes = []
    with open(errors, "w") as err:
        runner = subprocess.Popen([PYTHON, "-I", RUNNER, "--all", *args], stdout=subprocess.PIPE,
                                  stderr=err, text=True)
    try:
        said = lambda: open(errors).read()  # noqa: E731
        assert wait_until(lambda: "tracing every process" in said()), said()
        workload(processes)
        time.sleep(settle)
        runner.send_signal(signal.SIGINT)
        out, _ = runner.communicate(timeout=120)
    finally:
        for process in (*processes, runner):
            if process.poll() is None:
                process.kill()
                process.wait()
    return runner.returncode, out
