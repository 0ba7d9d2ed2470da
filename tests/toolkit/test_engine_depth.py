# SPDX-License-Identifier: MIT
"""pymemtrace-trace --depth N on its libbpf engine (issue 20), on real processes: a recursion whose
stacks differ only above the innermost two frames gets a row per stack, with the numbers, the
frames and the folded lines the bpftrace runner gives for the same workload. Run through
tests/support/run_pytest.py, as root."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402
from source_lines import line_of  # noqa: E402

# down(1) three times and down(2) five times: the innermost frames are the same (the LEAF line
# and a DOWN line), the third differs (the module's line, or DOWN again). It ends without
# freeing them, so that they are live at the end.
RECURSION = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
keep = []
def down(n):
    if n == 0:
        keep.append(cMemLeak.CMalloc(100))  # LEAF
    else:
        down(n - 1)  # DOWN
for _ in range(3):
    down(1)  # ONE
for _ in range(5):
    down(2)  # TWO
os._exit(0)
"""


@pytest.fixture(scope="module")
def recursion(tmp_path_factory):
    directory = tmp_path_factory.mktemp("depth")
    path = directory / "recursion.py"
    path.write_text(RECURSION)
    os.chmod(directory, 0o755)
    return str(path)


def traced(engine, recursion, *options):
    result = subprocess.run([PYTHON, "-I", RUNNER, "--engine", engine, "--depth", "4",
                             "--lib", LIB, *options, "--", PYTHON, recursion, BUILD_SRC],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (engine, result.stderr)
    return result.stdout


def rows(text):
    """(stack, domain, count, bytes) of each JSON entry, sorted."""
    return sorted((tuple((f["file"], f["line"], f["function"]) for f in e["stack"]),
                   e["domain"], e["count"], e["bytes"]) for e in json.loads(text))


@pytest.mark.parametrize("report", ["leaks", "summary"])
def test_stacks_that_differ_above_the_first_frame_are_rows_as_the_bpftrace_runner_gives(
        recursion, report):
    ours = rows(traced("libbpf", recursion, "--report", report, "--json"))
    theirs = rows(traced("bpftrace", recursion, "--report", report, "--json"))
    leaf, down = (("recursion.py", line_of(RECURSION, mark), "down") for mark in ("# LEAF",
                                                                                  "# DOWN"))
    one = ("recursion.py", line_of(RECURSION, "# ONE"), "<module>")
    two = ("recursion.py", line_of(RECURSION, "# TWO"), "<module>")
    assert [(stack, count, size) for stack, _domain, count, size in ours] == [
        ((leaf, down, down, two), 5, 500), ((leaf, down, one), 3, 300)], ours
    assert ours == theirs


def test_folded_stacks_are_the_bpftrace_runners(recursion):
    ours = traced("libbpf", recursion, "--report", "folded")
    theirs = traced("bpftrace", recursion, "--report", "folded")
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines()), (ours, theirs)
    assert len([line for line in ours.splitlines() if "recursion.py" in line]) == 2, ours


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
