# SPDX-License-Identifier: MIT
"""A service that holds N live blocks and churns them until killed: each iteration frees a block
chosen at random and allocates one of a random size (64 to 4,095 bytes) in its place, so that
the allocator rarely gives a freed address straight back to the next block. Prints its PID once
the N blocks are made. After a line on stdin it makes each of the N blocks again, in order, and
prints `renewed` (every block then live was allocated after that line), churning on."""
import os
import random
import sys
import threading

from pymemtrace import cMemLeak

N = int(sys.argv[1])
blocks = [cMemLeak.CMalloc(64) for _ in range(N)]
size = random.Random(20).randrange
renew = threading.Event()
threading.Thread(target=lambda: sys.stdin.readline() and renew.set(), daemon=True).start()
print(os.getpid(), flush=True)
while True:
    for _ in range(1000):
        blocks[size(N)] = cMemLeak.CMalloc(size(64, 4096))  # CHURN
    if renew.is_set():
        renew.clear()
        for index in range(N):
            blocks[index] = cMemLeak.CMalloc(size(64, 4096))  # RENEW
        print("renewed", flush=True)
