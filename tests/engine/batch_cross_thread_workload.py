# SPDX-License-Identifier: MIT
"""A block allocated by one thread and freed by another (--batch): a thread allocates 10 blocks
and stays alive with them in its ring; the main thread frees them, then allocates and frees 200
blocks of its own, so that its frees are read (a full batch) before the thread's allocations (at
the report). Prints "idle" and waits for the engine's report."""
import sys
import threading

from pymemtrace import cMemLeak

sys.stdin.readline()
handed, release = [], threading.Semaphore(0)
made = threading.Semaphore(0)


def maker():
    for _ in range(10):
        handed.append(cMemLeak.CMalloc(64))  # ALLOC: maker
    made.release()
    release.acquire()


thread = threading.Thread(target=maker, daemon=True)
thread.start()
made.acquire()
while handed:
    handed.pop()  # freed here, by the main thread
for _ in range(200):
    cMemLeak.CMalloc(32)  # ALLOC: filler
print("idle", flush=True)
sys.stdin.readline()
release.release()
