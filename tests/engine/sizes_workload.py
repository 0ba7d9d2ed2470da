# SPDX-License-Identifier: MIT
"""Blocks of known sizes, held to the end: at one line called through three frames, and at the
same line called from the module (for --histograms: test_engine_every_report.py). SIZES: size ->
how many, at the three-frame stack; 17 once from the module."""
from pymemtrace import cMemLeak

SIZES = {1: 2, 3: 1, 7: 3, 8: 1, 1000: 4, 1024: 2, 70000: 1}
held = []


def inner(size):
    held.append(cMemLeak.CMalloc(size))  # ALLOC: made


def middle(size):
    inner(size)


def outer(size):
    middle(size)


if __name__ == "__main__":
    for size, times in SIZES.items():
        for _ in range(times):
            outer(size)
    inner(17)
