# SPDX-License-Identifier: MIT
"""A traced process that forks children which allocate in a tight loop at once, before the engine
can have attached their probes: hits in that window are dropped. Once released (a line on stdin)
the parent allocates one block and forks 8 children in a row (the engine attaches them one after
the other, so the later ones wait longest); each allocates 5,000 blocks and exits with status 5
after a second (so that it is still there when the engine looks at it)."""
import os
import sys
import time

from pymemtrace import cMemLeak

CHILDREN = 8

print(os.getpid(), flush=True)
sys.stdin.readline()
held = [cMemLeak.CMalloc(10)]
children = []
for _ in range(CHILDREN):
    child = os.fork()
    if child == 0:
        mine = [cMemLeak.CMalloc(20) for _ in range(5000)]
        time.sleep(1)
        os._exit(5)
    children.append(child)
for child in children:
    os.waitpid(child, 0)
os._exit(0)
