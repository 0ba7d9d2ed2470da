# SPDX-License-Identifier: MIT
"""A command held until the engine is ready: it imports cMemLeak only after the line on stdin
(the library is not mapped while the engine attaches), makes known allocations on tagged lines,
one thread among them, and ends with exit status 7 and its blocks still held."""
import os
import sys
import threading

sys.stdin.readline()
from pymemtrace import cMemLeak  # noqa: E402


def kept(n):
    blocks = []
    for _ in range(n):
        blocks.append(cMemLeak.CMalloc(100))  # ALLOC: kept
    return blocks


def churned(n):
    for _ in range(n):
        cMemLeak.PyMalloc(50)  # ALLOC: churned


def raw(n):
    blocks = []
    for _ in range(n):
        blocks.append(cMemLeak.PyRawMalloc(24))  # ALLOC: raw
    return blocks


def in_thread(into):
    for _ in range(4):
        into.append(cMemLeak.PyObjectMalloc(300))  # ALLOC: thread


held = kept(10)
churned(20)
held += raw(3)
worker = threading.Thread(target=in_thread, args=(held,))
worker.start()
worker.join()
sys.stdout.flush()
os._exit(7)  # no teardown: what is held is what leaks
