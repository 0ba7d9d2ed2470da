# SPDX-License-Identifier: MIT
"""Frees in frames that allocate nothing (--batch): after a line on stdin, 640 blocks made at one
line, then each freed in its own function (200 functions, each a frame the batches have not
named), the rest kept. Prints "idle" and waits for the engine's report."""
import sys

from pymemtrace import cMemLeak

FREERS = []
for number in range(200):
    scope = {}
    exec(f"def free_{number}(block):\n    del block[:]\n", scope)  # a frame of its own
    FREERS.append(scope[f"free_{number}"])

sys.stdin.readline()
held = [[cMemLeak.CMalloc(100)] for _ in range(640)]  # ALLOC: kept
for free, block in zip(FREERS, held):
    free(block)
print("idle", flush=True)
sys.stdin.readline()
