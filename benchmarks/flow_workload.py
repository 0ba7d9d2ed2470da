# SPDX-License-Identifier: MIT
"""The flow benchmark's and tests' target: imports cMemLeak, prints its pid, waits for a line on
stdin, then makes N blocks of 64 bytes and frees each at once (2N events: pyalloc, pyfree) on T
threads (N each), as fast as it can; prints `TIME <seconds of the loops>` and ends."""
import os
import sys
import threading
import time

from pymemtrace import cMemLeak

N = int(sys.argv[1])
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 1


def churn():
    for _ in range(N):
        cMemLeak.CMalloc(64)  # ALLOC: churn


print(os.getpid(), flush=True)
sys.stdin.readline()
started = time.monotonic()
workers = [threading.Thread(target=churn) for _ in range(THREADS)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(f"TIME {time.monotonic() - started:.6f}", flush=True)
