# SPDX-License-Identifier: MIT
"""Blocks made before tracing and freed while traced: makes OLD blocks, prints its pid, waits for
a line on stdin, frees them, then makes and frees NEW blocks; ends with exit status 0."""
import os
import sys

from pymemtrace import cMemLeak

OLD, NEW = int(sys.argv[1]), int(sys.argv[2])
old = [cMemLeak.CMalloc(777) for _ in range(OLD)]
print(os.getpid(), flush=True)
sys.stdin.readline()
del old[:]
new = [cMemLeak.CMalloc(555) for _ in range(NEW)]
del new[:]
sys.stdout.flush()
os._exit(0)
