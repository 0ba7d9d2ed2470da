# SPDX-License-Identifier: MIT
"""The reports people act on, on real processes with real bpftrace: the biggest locations first
and cut to --top, domains in words, and folded stacks that add up to the summary. Run through
tests/support/run_pytest.py with PYTHONPATH=<builddir>/src."""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import callers  # noqa: E402
from runner import BUILD_SRC, PYTHON, report_of  # noqa: E402

TYPES = [("CMalloc", "C heap"), ("PyRawMalloc", "PyMem_Raw"), ("PyMalloc", "PyMem"),
         ("PyObjectMalloc", "PyObject")]

# 25 locations: line n + 3 allocates 100 * n bytes, of the domain TYPES[n % 4].
MANY = "\n".join(["import sys", "sys.path.insert(0, sys.argv[1])", "from pymemtrace import cMemLeak"]
                 + [f"b{n} = cMemLeak.{TYPES[n % 4][0]}({100 * n})" for n in range(1, 26)]) + "\n"



def test_the_summary_of_25_locations_opens_with_the_top_20_largest_first(tmp_path):
    script = tmp_path / "many.py"
    script.write_text(MANY)
    text = report_of(["--", PYTHON, str(script), BUILD_SRC])
    assert text.startswith("Allocations by Python location, largest first (top 20 of 25):"), text
    rows = re.findall(r"^\s+(\d+)\s+[\d.]+%\s+1\s+(\S+(?: \S+)?)\s+many\.py:(\d+)\s+<module>$",
                      text, re.M)
    assert [(int(b), d, int(line)) for b, d, line in rows] == [
        (100 * n, TYPES[n % 4][1], n + 3) for n in range(25, 5, -1)], text
    left = sum(100 * n for n in range(1, 6))
    assert f"(5 more locations, {left} bytes in 5 allocations; --top 0 shows all)" in text, text
    assert f"Total: {sum(100 * n for n in range(1, 26))} bytes in 25 allocations" in text, text
    assert "Distribution" not in text, "histograms come only with --histograms"
    entries = json.loads(report_of(["--report", "summary", "--json", "--", PYTHON, str(script),
                              BUILD_SRC]))
    assert sorted(e["line"] for e in entries if e["file"] == "many.py") == list(range(4, 29))
    assert {(e["domain"], e["domain_name"]) for e in entries} == {
        (0, "C heap"), (1, "PyMem_Raw"), (2, "PyMem"), (3, "PyObject")}


def test_at_depth_1_every_byte_of_three_callers_is_at_the_wrapper_and_folded_sums_to_it(
        tmp_path):
    script, line = callers.write(str(tmp_path))
    entries = json.loads(report_of(["--report", "summary", "--json", "--", PYTHON, script,
                              BUILD_SRC]))
    total = sum(callers.CALLERS.values())
    assert [(e["file"], e["line"], e["function"], e["count"], e["bytes"]) for e in entries] == \
        [("wrapper.py", line, "make", callers.BLOCKS, total)], entries
    folded = report_of(["--report", "folded", "--", PYTHON, script, BUILD_SRC])
    assert folded == f"wrapper.py:{line} make {total}\n", folded
