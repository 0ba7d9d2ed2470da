# SPDX-License-Identifier: MIT
"""Blocks kept and blocks freed through locate_ext, once released (a line on stdin), for the
runner's `-p` leak report in test_locations.py: the report must hold the kept blocks at the
line tagged LEAK and nothing of the line tagged FREED. Runs with Python 3.8+."""
import os
import sys

import locate_ext as ext

MEM = 2


def keep_some():
    kept = []
    for _ in range(3):  # a loop, not a comprehension: one function name on every version
        kept.append(ext.malloc(MEM, 4321))  # LEAK
    return kept


def free_some():
    for _ in range(5):
        ext.free(MEM, ext.malloc(MEM, 1234))  # FREED


print("READY", flush=True)
sys.stdin.readline()  # released once the runner traces this process
kept = keep_some()
free_some()
sys.stdout.flush()
os._exit(0)  # no teardown: the kept blocks are still held when the process ends
