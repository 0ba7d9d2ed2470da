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
