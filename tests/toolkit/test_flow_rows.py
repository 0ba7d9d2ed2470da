# SPDX-License-Identifier: MIT
"""A flow row holds the target's names: whatever it says, it is shown escaped, on one row
(reports.Shortener.event_row, the one reader of the bpftrace flow's printfs; the engine's rows
come from the same Shortener.row). No root needed."""
import io
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))
from pymemtrace.trace import engine_flow, reports, scripts  # noqa: E402
from pymemtrace.trace.unseen_frees import UnseenFrees  # noqa: E402


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


def frames(*parts):
    """The engine's flow stream (src/engine/flow.hpp) of (type, payload) parts."""
    return b"".join(engine_flow.HEADER.pack(kind, len(payload)) + payload
                    for kind, payload in parts)


def names_frame(location, line, file, function):
    return (engine_flow.FRAME_NAMES,
            engine_flow.NAMES.pack(location, line, 0, len(file), len(function)) + file + function)


def events_frame(*events):
    """(kind, pid, location, ptr, old_ptr, size, domain) each."""
    return (engine_flow.FRAME_EVENTS, b"".join(
        engine_flow.EVENT.pack(0, ptr, old, size, location, pid, pid, kind, domain)
        for kind, pid, location, ptr, old, size, domain in events))


def read(stream, limit=1000, family=None):
    """What FlowReader writes of `stream`, and the reader (remembering `limit` live blocks; the
    calls of `family`'s allocator functions, a scripts.FAMILIES script's name)."""
    read_end, write_end = os.pipe()
    out = io.StringIO()
    reader = engine_flow.FlowReader(read_end, out, reports.Shortener(True, 128), False,
                                    UnseenFrees(limit), scripts.FAMILIES.get(family))
    os.write(write_end, stream)
    os.close(write_end)
    reader.join()
    os.close(read_end)
    return out.getvalue(), reader


def test_the_engines_frames_become_the_flows_rows_names_escaped_and_each_location_named_once():
    text, reader = read(frames(
        names_frame(7, 12, b"/d/ev\x1bil\n.py", b"f\xff\x07"),
        events_frame((0, 42, 7, 0xA0, 0, 100, 2), (1, 42, 7, 0xB0, 0xA0, 200, -1)),
        events_frame((2, 42, 7, 0xB0, 0, 0, 2), (0, 42, 0, 0xC0, 0, 5, 0))))
    assert text == (
        "dtrace:::BEGIN\n"
        "    42        ev\\x1bil\\n.py:12   -> f\\xff\\x07 malloc(100) pntr 0xa0 domain 2\n"
        "    42        ev\\x1bil\\n.py:12   -> f\\xff\\x07 realloc(0xa0, 200) pntr 0xb0\n"
        "    42        ev\\x1bil\\n.py:12   -> f\\xff\\x07 free(0xb0) domain 2\n"
        "    42                 :0    ->  malloc(5) pntr 0xc0 domain 0\n"
        "\ndtrace:::END\n")
    assert reader.rows == 4 and reader.read_error is None


MALLOC, CALLOC, REALLOC, FREE = 3, 4, 5, 6  # engine.h: --allocator's kinds


def test_the_allocator_calls_become_the_rows_of_their_functions_as_the_scripts_print_them():
    """calloc's count travels in old_ptr, realloc's block given too; a free of a block the flow
    did not show allocated is counted, not shown (unseen_frees), as every flow's."""
    calls = frames(names_frame(7, 12, b"/d/w.py", b"f"), events_frame(
        (MALLOC, 42, 7, 0xA0, 0, 100, 3), (CALLOC, 42, 7, 0xB0, 4, 8, 3),
        (REALLOC, 42, 7, 0xC0, 0xA0, 300, 3), (REALLOC, 42, 7, 0, 0xC0, 0, 3),
        (FREE, 42, 7, 0xB0, 0, 0, 3), (FREE, 42, 7, 0xD0, 0, 0, 3)))
    text, reader = read(calls, family="py_object_D_WITH_PYMALLOC")
    row = "    42             w.py:12   -> f "
    assert text == (
        "dtrace:::BEGIN\n"
        f"{row}PyObject_Malloc(100) PyObject_Malloc returns 0xa0\n"
        f"{row}PyObject_Calloc(4, 8) PyObject_Calloc returns 0xb0\n"
        f"{row}PyObject_Realloc(0xa0, 300) PyObject_Realloc returns 0xc0\n"
        f"{row}PyObject_Realloc(0xc0, 0) PyObject_Realloc returns 0x0\n"
        f"{row}PyObject_Free(0xb0)\n"
        "\ndtrace:::END\n")
    assert reader.rows == 6 and reader.unseen.hidden == 1
    text, _reader = read(calls, family="py_object_U_WITH_PYMALLOC")  # --without-pymalloc builds
    assert f"{row}PyMem_RawRealloc(0xa0, 300) PyMem_RawRealloc returns 0xc0\n" in text, text
    text, _reader = read(calls, family="py_flow_malloc_free")
    assert f"{row}calloc(4, 8) pntr 0xb0\n" in text and f"{row}free(0xb0)\n" in text, text
    assert text.endswith("\ndtrace:::END\nPython malloc byte distributions by engine caller:\n"
                         "\nPython malloc byte distributions by Python file and function:\n")


def test_a_flow_the_runner_cannot_read_is_stated_and_still_drained():
    stream = frames(events_frame((0, 42, 0, 0xA0, 0, 1, 0)),
                    (engine_flow.FRAME_EVENTS, b"x" * 13), events_frame((0, 42, 0, 0xB0, 0, 1, 0)))
    text, reader = read(stream + b"\0" * (1 << 20))
    assert reader.read_error is not None and reader.rows == 1, reader.rows
    assert text.count(" malloc(1) pntr 0xa0 ") == 1 and text.endswith("\ndtrace:::END\n"), text


def test_a_free_of_a_block_the_flow_never_showed_allocated_is_counted_not_shown():
    # 0xA0 shown allocated then freed; 0xD0 freed, never allocated here; 0xA0 moved to 0xB0,
    # whose free is shown, and a second free of 0xA0 (gone) is not; a failed realloc of 0xC0
    # keeps it; pid 43 frees pid 42's 0xC0 (a forked child's copy): not shown.
    text, reader = read(frames(events_frame(
        (0, 42, 0, 0xA0, 0, 8, 0), (2, 42, 0, 0xD0, 0, 0, 0), (1, 42, 0, 0xB0, 0xA0, 16, -1),
        (2, 42, 0, 0xA0, 0, 0, 0), (2, 42, 0, 0xB0, 0, 0, 0), (0, 42, 0, 0xC0, 0, 8, 0),
        (1, 42, 0, 0, 0xC0, 1 << 40, -1), (2, 43, 0, 0xC0, 0, 0, 0), (2, 42, 0, 0xC0, 0, 0, 0),
        (2, 42, 0, 0, 0, 0, 0))))
    frees = [line.split("-> ")[1] for line in text.splitlines() if "free(" in line]
    assert frees == [" free(0xb0) domain 0", " free(0xc0) domain 0", " free(0x0) domain 0"], text
    assert reader.unseen.hidden == 3 and reader.rows == 10
    assert reader.unseen.said() == [
        "3 frees of blocks this flow did not show allocated (allocated before tracing began, by "
        "code that is not traced, or before a fork) are not shown"]


def test_once_the_flow_remembers_its_limit_of_blocks_every_free_is_shown_and_said():
    text, reader = read(frames(events_frame(
        (0, 42, 0, 0xA0, 0, 8, 0), (0, 42, 0, 0xB0, 0, 8, 0), (0, 42, 0, 0xC0, 0, 8, 0),
        (2, 42, 0, 0xD0, 0, 0, 0))), limit=2)
    assert "free(0xd0)" in text and reader.unseen.hidden == 0
    assert reader.unseen.said() == ["once 2 blocks were live, every free is shown, whether or "
                                    "not its block was shown allocated; raise --max-entries"]


# --python-call-stack's rows, as the scripts print them (scripts.CALL_LINE, RETURN_LINE).
CALL = "%6d %16s:%-4d -> CALL %s (depth %d)\n"
RETURN = "%6d %16s:%-4d <- RTN  %s (depth %d)\n"


def test_a_bpftrace_return_row_is_shortened_and_escaped_as_a_call_row_is():
    """The runner read only `->` rows: a return row went out as bpftrace printed it, the whole
    path and the target's escape sequences with it."""
    shortener = reports.Shortener(True, 128)
    assert shortener.event_row(RETURN % (77, "/d/ev\x1bil.py", 12, "f\n\x07", 3)) == (
        "    77 " + " " * 8 + "ev\\x1bil.py:12   <- RTN  f\\n\\x07 (depth 3)\n")
    assert shortener.event_row(CALL % (77, "/d/ev\x1bil.py", 10, "f\n\x07", 3)) == (
        "    77 " + " " * 8 + "ev\\x1bil.py:10   -> CALL f\\n\\x07 (depth 3)\n")


def test_the_engines_calls_and_returns_become_the_bpftrace_runners_rows():
    """The call and return kinds (engine.h's EVENT_CALL, EVENT_RTN), the depth in the record's
    size; a location's names once, shared by rows of every depth; a `%` in a name stays a `%`."""
    call, rtn = sorted(engine_flow.CALL_KINDS)
    shortener = reports.Shortener(True, 128)
    text, reader = read(frames(
        names_frame(5, 10, b"/d/ev\x1bil.py", b"f%d\n"),
        names_frame(6, 12, b"/d/ev\x1bil.py", b"f%d\n"),
        events_frame((call, 42, 5, 0, 0, 1, 0), (call, 42, 5, 0, 0, 2, 0),
                     (0, 42, 5, 0xA0, 0, 100, 2), (rtn, 42, 6, 0, 0, 2, 0),
                     (rtn, 42, 6, 0, 0, 1, 0), (rtn, 42, 0, 0, 0, 0, 0))))
    printed = [CALL % (42, "/d/ev\x1bil.py", 10, "f%d\n", 1),
               CALL % (42, "/d/ev\x1bil.py", 10, "f%d\n", 2),
               "%6d %16s:%-4d -> %s malloc(%d) pntr 0x%x domain %d\n" % (
                   42, "/d/ev\x1bil.py", 10, "f%d\n", 100, 0xA0, 2),
               RETURN % (42, "/d/ev\x1bil.py", 12, "f%d\n", 2),
               RETURN % (42, "/d/ev\x1bil.py", 12, "f%d\n", 1),
               RETURN % (42, "", 0, "", 0)]
    assert text == ("dtrace:::BEGIN\n" + "".join(map(shortener.event_row, printed))
                    + "\ndtrace:::END\n")
    assert "    42 " + " " * 8 + "ev\\x1bil.py:12   <- RTN  f%d\\n (depth 2)\n" in text
    assert reader.rows == 6 and reader.read_error is None


def test_the_readers_call_and_return_kinds_are_the_engines():
    """engine.h's enum engine_event_kind numbers EVENT_CALL and EVENT_RTN; the reader keys them
    by number (other kinds may come before them)."""
    header = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src",
                               "engine", "engine.h")).read()
    numbers = {name: int(number) for name, number in
               re.findall(r"\bEVENT_(CALL|RTN) = (\d+)", header)}
    assert {name: kind for kind, (name, _arrow, _word) in engine_flow.CALL_KINDS.items()} == {
        "call": numbers["CALL"], "rtn": numbers["RTN"]}
