# SPDX-License-Identifier: MIT
"""Two engines one after the other on one process (--batch): after each line on stdin it keeps
blocks (1,037, then 200, from another line) and prints "idle"; the rings announced to the first
engine still hold its last events when the second attaches."""
import sys

from pymemtrace import cMemLeak

held = []
sys.stdin.readline()
for _ in range(1037):
    held.append(cMemLeak.CMalloc(100))  # ALLOC: first
print("idle", flush=True)
sys.stdin.readline()
for _ in range(200):
    held.append(cMemLeak.CMalloc(100))  # ALLOC: second
print("idle", flush=True)
sys.stdin.readline()
