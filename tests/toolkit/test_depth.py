# SPDX-License-Identifier: MIT
"""`--depth N`: summary and leaks by the innermost N Python frames, on real processes with real
bpftrace. A thin wrapper module allocates through cMemLeak for three callers
(tests/support/callers.py): at depth 1 every byte is at the wrapper (test_ranked_reports.py),
at depth 2 the bytes split exactly among the callers, in every form. Run through
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
from source_lines import line_of  # noqa: E402

LEAK_ALL = "for block in kept:\n    block.inc_refcnt(1)  # never freed: every block leaks\n"



def expected_stacks(script, wrapper_line):
    """{caller: [wrapper frame, caller frame]} as JSON stacks show them."""
    text = callers.SCRIPT
    return {name: [{"file": "wrapper.py", "line": wrapper_line, "function": "make"},
                   {"file": os.path.basename(script), "function": name,
                    "line": line_of(text, f"kept.append(wrapper.make({size}))")}]
            for name, size in (("alpha", 1000), ("beta", 2000), ("gamma", 3000))}


def by_caller(entries):
    return {e["stack"][1]["function"]: (e["stack"], e["count"], e["bytes"]) for e in entries}


def test_at_depth_2_the_wrappers_bytes_split_exactly_among_its_three_callers(tmp_path):
    script, line = callers.write(str(tmp_path))
    entries = json.loads(report_of(["--depth", "2", "--report", "summary", "--json", "--", PYTHON,
                              script, BUILD_SRC]))
    stacks_seen = by_caller(entries)
    counts = {"alpha": 3, "beta": 2, "gamma": 1}
    assert stacks_seen == {name: (stack, counts[name], callers.CALLERS[name])
                           for name, stack in expected_stacks(script, line).items()}, entries


def test_at_depth_2_folded_stacks_sum_to_the_summarys_total(tmp_path):
    script, line = callers.write(str(tmp_path))
    folded = report_of(["--depth", "2", "--report", "folded", "--", PYTHON, script, BUILD_SRC])
    rows = re.findall(r"^(.*) (\d+)$", folded, re.M)
    assert len(rows) == 3 and all(f"wrapper.py:{line} make" in stack for stack, _ in rows), folded
    assert sum(int(size) for _, size in rows) == sum(callers.CALLERS.values()), folded
    text = report_of(["--depth", "2", "--", PYTHON, script, BUILD_SRC])
    assert f"Total: {sum(callers.CALLERS.values())} bytes in {callers.BLOCKS} allocations, " \
           "3 locations" in text, text


def test_at_depth_2_leaks_split_among_the_callers(tmp_path):
    script, line = callers.write(str(tmp_path))
    with open(script, "a") as file:
        file.write(LEAK_ALL)
    entries = json.loads(report_of(["--depth", "2", "--report", "leaks", "--json", "--", PYTHON,
                              script, BUILD_SRC]))
    mine = [e for e in entries if len(e["stack"]) > 1 and e["stack"][0]["file"] == "wrapper.py"]
    counts = {"alpha": 3, "beta": 2, "gamma": 1}
    assert by_caller(mine) == {name: (stack, counts[name], callers.CALLERS[name])
                               for name, stack in expected_stacks(script, line).items()}, entries


def test_at_depth_3_a_stack_names_the_module_that_called_the_callers(tmp_path):
    script, _ = callers.write(str(tmp_path))
    entries = json.loads(report_of(["--depth", "3", "--json", "--", PYTHON, script, BUILD_SRC]))
    outer = {(e["stack"][1]["function"], e["stack"][2]["function"], e["stack"][2]["line"])
             for e in entries}
    calls = {text: number for number, text in enumerate(callers.SCRIPT.splitlines(), 1)}
    assert outer == {(name, "<module>", calls[f"{name}()"])
                     for name in ("alpha", "beta", "gamma")}, entries
