# SPDX-License-Identifier: MIT
"""A flow row holds the target's names: whatever it says, it is shown escaped, on one row
(reports.Shortener.event_row, the one reader of the bpftrace flow's printfs; the engine's rows
come from the same Shortener.row). No root needed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))
from pymemtrace.trace import reports  # noqa: E402


def test_a_bpftrace_row_with_a_negative_line_is_still_a_row_and_escaped():
    """bpftrace prints the line with %-4d: a target whose line table gives a negative line made a
    row the runner did not recognise, which it then wrote as it came, escape sequences and all."""
    printed = " 4242 /x/evil\x1b[2J.py:-5   -> f\x07 malloc(1) pntr 0x1 domain 0\n"
    row = reports.Shortener(True, 128).event_row(printed)
    assert row == "  4242      evil\\x1b[2J.py:-5   -> f\\x07 malloc(1) pntr 0x1 domain 0\n"


def test_the_engine_and_bpftrace_rows_of_one_event_are_the_same():
    shortener = reports.Shortener(True, 128)
    printed = "%6d %16s:%-4d -> %s malloc(%d) pntr 0x%x domain %d\n" % (
        77, "/dir/w\n.py", 12, "f\x1b", 100, 0xABC, 2)
    assert shortener.event_row(printed) == shortener.row(77, "/dir/w\n.py", 12,
                                                         "f\x1b malloc(100) pntr 0xabc domain 2")
