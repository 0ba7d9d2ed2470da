# SPDX-License-Identifier: MIT
"""toolkit/pymemtrace-trace as the toolkit tests run it: Debian's Python (built --with-dtrace),
the report in a file of its own (apart from the command's output), the build's cMemLeak on
PYTHONPATH."""
import os
import subprocess
import tempfile

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
