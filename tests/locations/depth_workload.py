# SPDX-License-Identifier: MIT
"""Allocations through locate_ext from known Python stacks, for the depth tests of
test_locations.py: each allocation prints, on the line that makes it, its size, its pointer and
the stack the py* probes' record must hold (file, function, line; innermost first; at most 16),
as `STACK|<json>`. Runs with Python 3.8+, with or without a tracer."""
import json
import sys

import locate_ext as ext

MEM = 2


def frames(skip=1):
    """The caller's stack as CPython's frame objects show it: co_qualname on 3.11+, co_name before."""
    stack, frame = [], sys._getframe(skip)
    while frame is not None and len(stack) < 16:
        code = frame.f_code
        stack.append([code.co_filename, getattr(code, "co_qualname", code.co_name), frame.f_lineno])
        frame = frame.f_back
    return stack


kept = []  # every block lives until the end: distinct pointers


def allocate(size):
    kept.append(ext.malloc(MEM, size)); print("STACK|" + json.dumps([size, kept[-1], frames()]))  # one line: one frame line


def caller_a():
    allocate(200)


def caller_b():
    allocate(300)


def deep(levels):
    if levels:
        return deep(levels - 1)
    allocate(400)


caller_a()
caller_a()
caller_b()
deep(20)
for block in kept:
    ext.free(MEM, block)
