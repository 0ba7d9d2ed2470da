# SPDX-License-Identifier: MIT
"""What the runner keeps of a run's printfs (replay.FlowReplay, stacks.Stacks): a row is one
event whatever its names hold, and each table stops at its bound with the loss stated. No root:
rows as the scripts print them (their formats, scripts.py), fed as bpftrace hands them over."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))
from pymemtrace.trace import replay, stacks  # noqa: E402

HOSTILE = "f\n     1 a.py:1    -> g malloc(57671680) pntr 0x1000\n  4242 b.py:2    -> h"


def row(pid, function, event, file="w.py", line=7):
    """A row as `%6d %16s:%-4d -> %s EVENT\\n` prints it."""
    return f"{pid:6d} {file:>16}:{line:<4d} -> {function} {event}\n"


def test_a_row_whose_function_name_holds_rows_is_one_event_of_its_own_process():
    events = replay.parse_row(row(77, HOSTILE, "malloc(300001) pntr 0x7f00")[:-1])
    assert (events["pid"], events["function"], events["size"], events["ret"]) == \
        (77, HOSTILE, 300001, 0x7f00), events


def test_rows_that_are_not_events_are_the_scripts_own_or_counted_as_unreadable():
    replayed = replay.FlowReplay(limit=100)
    for text in ["dtrace:::BEGIN\n", "\nPython malloc byte distributions by engine caller:\n",
                 row(5, "CALL f", "(depth 3)"),
                 f"{5:6d} {'w.py':>16}:7    <- RTN  f (depth 3)\n"]:
        assert not replayed.add(text), text
    assert replayed.unparsed == 0 and replayed.losses() == []
    replayed.add(row(5, "f", "frobnicate(1)"))
    assert replayed.unparsed == 1 and replayed.losses() == ["1 event rows could not be read"]


def test_a_replay_keeps_at_most_its_limit_of_locations_and_live_blocks_and_says_what_it_refused():
    replayed = replay.FlowReplay(limit=2)
    for number in range(3):  # three locations, three live blocks
        replayed.add(row(5, f"f{number}", f"malloc(10) pntr 0x{number + 1:x}"))
    assert len(replayed.summary) == 2 and replayed.refused_locations == 1
    replayed.add(row(5, "f0", "malloc(10) pntr 0x10"))  # a known location, a third live block
    assert len(replayed.live) == 2 and replayed.refused_blocks == 1
    lost = replayed.losses()
    assert len(lost) == 2 and all("--max-entries 2" in what for what in lost), lost
    replayed.add(row(5, "f0", "free(0x1)"))
    assert [e["count"] for e in replayed.leak_entries()] == [1], replayed.leak_entries()


def stack_rows(pid, sid, names):
    """The printfs of a stack's names (stacks._names_once), innermost first."""
    for index, (file, function) in enumerate(names):
        yield f"{stacks.STACK_FILE} {pid} {sid} {index} {10 + index} {file}\n"
        yield f"{stacks.STACK_FUNCTION} {pid} {sid} {index} {function}\n"


def test_stacks_keep_each_name_once_and_at_most_their_limit_of_stacks():
    table = stacks.Stacks(limit=2)
    for sid in (1, 2, 3):
        for text in stack_rows(9, sid, [("a.py", "inner"), ("a.py", f"outer{sid}")]):
            assert table.add(text)
    assert len(table.frames) == 2 and table.refused == 4
    assert table.stack(9, 2) == (("a.py", 10, "inner"), ("a.py", 11, "outer2"))
    assert table.frames[9, 1][0] is table.frames[9, 2][0]  # one "a.py" for both
    assert table.stack(9, 3)[0][0].startswith("<stack "), table.stack(9, 3)
    maps = {"@stack_alloc": {"9,1,0,4": {"count": 1, "total": 10}}}
    assert table.losses(maps) == []  # the report names only stacks it kept
    maps["@stack_alloc"]["9,3,0,4"] = {"count": 1, "total": 10}
    lost = table.losses(maps)
    assert len(lost) == 1 and lost[0].startswith("the names of 1 stacks in the report"), lost


def test_a_stack_with_a_name_beyond_the_names_table_is_unknown_not_half_named():
    table = stacks.Stacks(limit=10)
    table.MAX_NAMES = 3
    for text in stack_rows(9, 1, [("a.py", "f"), ("b.py", "g")]):
        table.add(text)
    assert table.stack(9, 1)[0][0].startswith("<stack "), table.frames
    assert table.losses({"@stack_live": {"9,4096": [64, 0, 1]}}) != []
