# SPDX-License-Identifier: MIT
"""What the --batch workloads hold, from three functions at three lines (tests/engine/
test_batch.py reads their lines by tag): `kept` on the calling thread, `waiting` on a thread that
stays alive, blocked, and `exiting` on a thread that ends."""
from pymemtrace import cMemLeak

held = []


def kept(n):
    for _ in range(n):
        held.append(cMemLeak.CMalloc(100))  # ALLOC: main


def waiting(n, done, release):
    for _ in range(n):
        held.append(cMemLeak.PyMalloc(40))  # ALLOC: waiting
    done.release()
    release.acquire()


def exiting(n):
    for _ in range(n):
        held.append(cMemLeak.PyRawMalloc(24))  # ALLOC: exiting
