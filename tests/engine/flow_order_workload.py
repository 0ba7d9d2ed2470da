# SPDX-License-Identifier: MIT
"""A flow's known events: prints its pid, waits for a line on stdin, then the main thread and a
second thread each allocate N blocks of sizes BASE..BASE+N-1 (main 1000.., thread 5000..) and
free them oldest first, each on tagged lines; ends with exit status 0."""
import os
import sys
import threading

print(os.getpid(), flush=True)
sys.stdin.readline()
from pymemtrace import cMemLeak  # noqa: E402

N = int(sys.argv[1])


def made(base):
    blocks = []
    for size in range(base, base + N):
        blocks.append(cMemLeak.CMalloc(size))  # ALLOC: made
    return blocks


def released(blocks):
    while blocks:
        blocks.pop(0)  # ALLOC: released


def in_thread():
    released(made(5000))


worker = threading.Thread(target=in_thread)
worker.start()
released(made(1000))
worker.join()
sys.stdout.flush()
os._exit(0)
