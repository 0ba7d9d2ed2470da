# SPDX-License-Identifier: MIT
"""--native's parts that need no root: the bpftrace programs ask for the native caller and key
by it only when asked, each library's events carry its index, and the names that come back from
a library are the innermost frame outside pymemtrace's headers, escaped where shown."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))
from pymemtrace.trace import native, scripts, stacks  # noqa: E402

LIBRARIES = ["/proc/1/fd/3", "/proc/1/fd/4"]


@pytest.mark.parametrize("report", ["summary", "leaks"])
def test_the_native_program_asks_for_the_caller_and_keys_each_library_by_its_index(report):
    program = stacks.bpftrace_program(report, 1, LIBRARIES, machine="x86_64",
                                      native_caller=True)
    assert "usdt:/proc/1/fd/3:pymemtrace:pynative,usdt:/proc/1/fd/4:pymemtrace:pynative" in program
    for index, library in enumerate(LIBRARIES):
        clause = program.split(f"usdt:{library}:pymemtrace:pyalloc\n", 1)[1].split("\n}\n", 1)[0]
        assert f"*(uint64 *)($r + {stacks.NATIVE_AT})" in clause
        assert f"((uint64){index} << {native.LIBRARY_SHIFT})" in clause
        assert ("$sid, $nat, " if report == "summary" else "$sid, $nat)") in clause


@pytest.mark.parametrize("report", ["summary", "leaks"])
def test_without_native_no_program_asks_for_the_caller(report):
    texts = [stacks.bpftrace_program(report, depth, LIBRARIES, machine="x86_64")
             for depth in (2, 4, 16)]
    texts.append(scripts.bpftrace_script(f"pymemtrace_{report}", libraries=LIBRARIES,
                                         whole_paths=True))
    assert not any("pynative" in text or "$nat" in text for text in texts)
    with pytest.raises(ValueError):
        stacks.bpftrace_program(report, 1, LIBRARIES)  # depth 1 is the toolkit's, unless native


def test_the_record_field_is_after_sixteen_frames():
    assert stacks.NATIVE_AT == 8 + 40 * 16 == 648  # location.h, engine.h's ENGINE_NATIVE_AT


def test_a_key_splits_into_library_and_offset_and_zero_is_unknown():
    assert native.split((2 << 48) | 0x1234) == (2, 0x1234)
    assert native.split(-1 & ((1 << 64) - 1)) == (0xFFFF, (1 << 48) - 1)
    assert native.split(5 << 48) is None and native.split(0) is None


def test_the_caller_is_the_innermost_frame_outside_pymemtraces_headers():
    chain = [("pymemtrace_malloc", "/usr/include/pymemtrace/pymemtrace.h", 212),
             ("pymemtrace_detail_wrap_malloc", "/x/include/pymemtrace/redirect.h", 60),
             ("grow", "/src/ext/buffer.c", 42),
             ("outer", "/src/ext/buffer.c", 90)]
    assert native.caller(chain) == {"function": "grow", "file": "/src/ext/buffer.c", "line": 42}
    assert native.caller(chain[:2]) is None
    assert native.caller([("f", "/src/pymemtrace/pymemtrace.c", 3)])["function"] == "f"


def test_names_from_the_library_are_escaped_where_shown():
    hostile = {"library": "/lib/x\n.so", "offset": 0x11, "function": "f\x1b[2J\nrm",
               "file": "/src/a\nb.c", "line": 7}
    text = native.text(hostile)
    assert "\n" not in text and "\x1b" not in text and text.startswith("in f")
    unknown = dict(hostile, line=0, file="")
    assert native.text(unknown).endswith("+0x10, line unknown)")
    assert native.text(None) == "in ? (native caller unknown)"
    inside = dict(unknown, function="??", inlined=[{"function": "pymemtrace_mem_malloc",
                                                    "file": "/i/pymemtrace/python.h", "line": 1}])
    assert "built without inlining" in native.text(inside)
