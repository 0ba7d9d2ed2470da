#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The allocation scenarios of pymemtrace's tracing examples, one chosen on the command line.

    python3 examples/ex_dtrace.py {cmalloc,pyrawmalloc,pymalloc,pyobjectmalloc,py_array,leak}
                                  [--size N] [--count N] [--wait] [--require-dtrace]

Each scenario creates `count` blocks, printing `Created ...`, then pops them from the front of
the list, printing `Pop'd ...`. The blocks of cMemLeak fire pymemtrace's probes, attributed to
the line of this file that creates them; `py_array` makes bytes objects, seen only by CPython's
own probes (on a Python built --with-dtrace) or by tracing the allocator itself. `leak` creates
CMalloc blocks and leaks them on purpose: they are never freed, not even at exit.

With --wait it prints its PID and waits for Enter, so that a tracer can attach with -p first.
"""
import argparse
import os
import sys
import sysconfig

try:
    from pymemtrace import cMemLeak
except ImportError as error:
    sys.exit(f"ex_dtrace.py: cannot import pymemtrace.cMemLeak ({error}).\n"
             "Build it, then run this script inside the build's environment:\n"
             "    meson setup build && meson compile -C build\n"
             "    meson devenv -C build python3 examples/ex_dtrace.py cmalloc")


def pop_all(blocks, label):
    """Removes the blocks lowest index first, each freed as it goes."""
    while blocks:
        block = blocks.pop(0)
        print(f"Pop'd {label} size={block.size:d} buffer=0x{block.buffer:x}")
        del block


def create_cmalloc_list(count=4, size=1477):
    """CMalloc blocks: malloc and free, domain 0."""
    blocks = []
    for _ in range(count):
        block = cMemLeak.CMalloc(size)
        print(f"Created CMalloc size={block.size:d} buffer=0x{block.buffer:x}")
        blocks.append(block)
    pop_all(blocks, "CMalloc")


def create_pyrawmalloc_list(count=4, size=128):
    """PyRawMalloc blocks: PyMem_RawMalloc and PyMem_RawFree, domain 1, never pymalloc."""
    blocks = []
    for _ in range(count):
        block = cMemLeak.PyRawMalloc(size)
        print(f"Created PyRawMalloc size={block.size:d} buffer=0x{block.buffer:x}")
        blocks.append(block)
    pop_all(blocks, "PyRawMalloc")


def create_pymalloc_list(count=4, size=128):
    """PyMalloc blocks: PyMem_Malloc and PyMem_Free, domain 2; pymalloc serves <= 512 bytes."""
    blocks = []
    for _ in range(count):
        block = cMemLeak.PyMalloc(size)
        print(f"Created PyMalloc size={block.size:d} buffer=0x{block.buffer:x}")
        blocks.append(block)
    pop_all(blocks, "PyMalloc")


def create_pyobjectmalloc_list(count=4, size=128):
    """PyObjectMalloc blocks: PyObject_Malloc and PyObject_Free, domain 3."""
    blocks = []
    for _ in range(count):
        block = cMemLeak.PyObjectMalloc(size)
        print(f"Created PyObjectMalloc size={block.size:d} buffer=0x{block.buffer:x}")
        blocks.append(block)
    pop_all(blocks, "PyObjectMalloc")


def create_py_array_list(count=4, size=27):
    """bytes objects made by CPython itself: no pymemtrace probe fires for them."""
    arrays = []
    for _ in range(count):
        array = cMemLeak.py_bytes_of_size(size)
        print(f"Created {type(array)} size={len(array):d} buffer=0x{id(array):x}")
        arrays.append(array)
    while arrays:
        array = arrays.pop(0)
        print(f"Pop'd {type(array)} size={len(array):d} buffer=0x{id(array):x}")
        del array


def create_leaks(count, size):
    """CMalloc blocks leaked on purpose: inc_refcnt(1) keeps each alive for ever."""
    for _ in range(count):
        block = cMemLeak.CMalloc(size)
        block.inc_refcnt(1)
        print(f"Leaked CMalloc size={block.size:d} buffer=0x{block.buffer:x}")


SCENARIOS = {
    # name: (function, default size)
    "cmalloc": (create_cmalloc_list, 1477),
    "pyrawmalloc": (create_pyrawmalloc_list, 128),
    "pymalloc": (create_pymalloc_list, 128),
    "pyobjectmalloc": (create_pyobjectmalloc_list, 128),
    "py_array": (create_py_array_list, 27),
    "leak": (create_leaks, 1477),
}


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=SCENARIOS, help="what to allocate")
    parser.add_argument("--size", type=non_negative,
                        help="bytes a block (defaults: cmalloc 1477, py_array 27, others 128, "
                             "leak 1477)")
    parser.add_argument("--count", type=non_negative, default=4, help="blocks (default 4)")
    parser.add_argument("--wait", action="store_true",
                        help="print the PID and wait for Enter before allocating")
    parser.add_argument("--require-dtrace", action="store_true",
                        help="exit 2 unless this Python was built --with-dtrace (needed only to "
                             "see CPython's own probes)")
    args = parser.parse_args(argv)

    if args.require_dtrace and sysconfig.get_config_var("WITH_DTRACE") != 1:
        print(f"ex_dtrace.py: {sys.executable} was not built --with-dtrace, so CPython's own "
              "probes are absent; use a Python built with it (Debian's /usr/bin/python3 is).",
              file=sys.stderr)
        return 2
    if args.wait:
        input(f"Waiting to start tracing PID: {os.getpid()} (<cr> to continue):")
    function, default_size = SCENARIOS[args.scenario]
    function(args.count, default_size if args.size is None else args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
