# SPDX-License-Identifier: MIT
"""CPython-made objects: capi_ext (built plain) builds lists, dicts and strings through the C
API. Without pymemtrace._hooks no report can see them; with them installed, the leak report of
each line matches what tracemalloc holds for that line in the same run, block for block.
Root and bpftrace: run through tests/support/run_pytest.py."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from runner import PYTHON, RUNNER  # noqa: E402
from source_lines import line_in_function  # noqa: E402

WORKLOAD = os.path.join(HERE, "capi_workload.py")
SOURCE = open(WORKLOAD).read()
PYTHONPATH = os.pathsep.join([os.environ["PYMEMTRACE_REDIRECT_CAPI"],
                              os.path.join(os.environ["PYMEMTRACE_BUILD"], "src")])
LINES = [line_in_function(SOURCE, "build_all", call)
         for call in ("capi_ext.rows(", "capi_ext.index(", "capi_ext.text(")]


def traced(*options, python=(PYTHON,)):
    """({line: [count, bytes]} of build_all in the leak report, tracemalloc's {line: [count,
    bytes]}), from one traced run of `python` WORKLOAD."""
    with tempfile.TemporaryDirectory() as scratch:
        report, held = os.path.join(scratch, "leaks.json"), os.path.join(scratch, "held.json")
        result = subprocess.run([PYTHON, RUNNER, "--report", "leaks", "--json", "-o", report,
                                 "--", *python, WORKLOAD, held, *options],
                                capture_output=True, text=True, timeout=180, cwd=scratch,
                                env=dict(os.environ, PYTHONPATH=PYTHONPATH))
        assert result.returncode == 0, result.stderr[-800:]
        seen = {}
        for e in json.load(open(report)):
            if e["file"] == "capi_workload.py" and e["function"] == "build_all":
                count, size = seen.get(e["line"], [0, 0])
                seen[e["line"]] = [count + e["count"], size + e["bytes"]]
        tracemalloc = {int(line): held for line, held in json.load(open(held)).items()}
    return seen, {line: tracemalloc[line] for line in LINES}


def test_without_the_hooks_no_report_sees_what_cpython_builds_for_an_extension():
    seen, tracemalloc = traced()
    assert seen == {}, seen
    assert all(count > 0 for count, _ in tracemalloc.values()), tracemalloc


def test_with_the_hooks_each_line_holds_what_tracemalloc_says_it_holds():
    seen, tracemalloc = traced("--hooks")
    assert seen == tracemalloc


def test_python_m_pymemtrace_hooked_installs_them_for_an_unedited_script():
    seen, tracemalloc = traced(python=(PYTHON, "-m", "pymemtrace.hooked"))
    assert seen == tracemalloc


def test_python_m_pymemtrace_hooked_without_a_script_says_what_to_give():
    result = subprocess.run([PYTHON, "-m", "pymemtrace.hooked"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "give the script to run" in result.stderr, result.stderr
