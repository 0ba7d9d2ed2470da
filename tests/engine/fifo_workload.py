# SPDX-License-Identifier: MIT
"""A service that holds a FIFO of N live blocks turning over as fast as it can (one allocation
and one free an iteration), until killed. After a line on stdin it prints `turned` once it has
turned the FIFO over twice since (every block then live was allocated after that line)."""
import collections
import os
import sys
import threading

from pymemtrace import cMemLeak

N = int(sys.argv[1])
fifo = collections.deque(cMemLeak.CMalloc(64) for _ in range(N))
iterations = 0
marked = None


def mark():
    global marked
    sys.stdin.readline()
    marked = iterations


threading.Thread(target=mark, daemon=True).start()
print(os.getpid(), flush=True)
while True:
    fifo.append(cMemLeak.CMalloc(64))  # ALLOC: fifo
    fifo.popleft()
    iterations += 1
    if marked is not None and iterations - marked == 2 * N:
        print("turned", flush=True)
