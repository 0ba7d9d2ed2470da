# SPDX-License-Identifier: MIT
"""A traced process forks after the engine attached: the child waits for a second line on stdin
(sent once the engine says it attached the child), allocates, and exits with status 3."""
import os
import sys

from pymemtrace import cMemLeak

print(os.getpid(), flush=True)
sys.stdin.readline()
held = []
for _ in range(3):
    held.append(cMemLeak.CMalloc(1111))  # ALLOC: parent
child = os.fork()
if child == 0:
    sys.stdin.readline()
    mine = []
    for _ in range(5):
        mine.append(cMemLeak.CMalloc(2000))  # ALLOC: child
    os._exit(3)
os.waitpid(child, 0)
for _ in range(2):
    held.append(cMemLeak.CMalloc(1111))  # ALLOC: after
os._exit(0)
