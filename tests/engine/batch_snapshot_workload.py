# SPDX-License-Identifier: MIT
"""Snapshots in the middle of batches (--batch --interval-ms): each stage leaves events in the
rings (fewer than 64 since their last batch) and prints "idle", then waits for a line on stdin.
Stage 1: the main thread keeps 1,037 blocks (16 batches and 13 events left). Stage 2: it frees
520 of them (21 events left), a thread keeps 5 and stays alive, blocked (4 left: its first event
fired at once, a frame it had not sent), and a thread keeps 57 and exits."""
import sys
import threading

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


sys.stdin.readline()
kept(1037)
print("idle", flush=True)
sys.stdin.readline()
del held[:520]
done, release = threading.Semaphore(0), threading.Semaphore(0)
alive = threading.Thread(target=waiting, args=(5, done, release), daemon=True)
alive.start()
done.acquire()
gone = threading.Thread(target=exiting, args=(57,))
gone.start()
gone.join()
print("idle", flush=True)
sys.stdin.readline()
