# SPDX-License-Identifier: MIT
"""A traced process that execs another program: it prints its PID, waits for a line on stdin,
allocates three blocks of 11 bytes through cMemLeak (kept), then replaces itself with
sys.argv[1:] (a set-ID program in the tests)."""
import os
import sys

from pymemtrace import cMemLeak

print(os.getpid(), flush=True)
sys.stdin.readline()
held = [cMemLeak.CMalloc(11) for _ in range(3)]  # ALLOC: kept
os.execv(sys.argv[1], sys.argv[1:])
