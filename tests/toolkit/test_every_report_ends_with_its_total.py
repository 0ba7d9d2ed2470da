# SPDX-License-Identifier: MIT
"""Every summary and leak report ends with its total, whatever it holds: --per-process with
nothing leaked printed no "Total" line (issue 21). From maps as bpftrace gives them; no root."""
import io
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from pymemtrace.trace import reports  # noqa: E402
from pymemtrace.trace.programs import Plan  # noqa: E402

PLANS = {"summary": Plan("pymemtrace_summary", [], "summary", -1),
         "leaks": Plan("pymemtrace_leaks", [], "leaks", -1)}
ENDED = {"@ended": {"4242": 0}}  # the process traced, which allocated nothing kept


@pytest.mark.parametrize("wanted", ["summary", "leaks"])
@pytest.mark.parametrize("per_process", [False, True])
def test_a_report_of_nothing_still_ends_with_a_zero_total(wanted, per_process):
    out = io.StringIO()
    reports.report(out, PLANS[wanted], wanted, False, dict(ENDED), None,
                   reports.Shortener(True, 128), reports.View(per_process=per_process))
    text = out.getvalue()
    assert re.search(r"^Total: 0 (blocks, 0 bytes still allocated|bytes in 0 allocations)",
                     text, re.M), text
