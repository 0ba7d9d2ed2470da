# SPDX-License-Identifier: MIT
"""Events left in the rings (--batch): after a line on stdin the main thread keeps 1,037 blocks
(16 batches and 13 events), two threads keep 5 each and stay alive, blocked; one thread keeps 50
and exits, then another (which may get the same thread-local ring) keeps 7 and exits. Prints
"idle" and waits for the engine's report."""
import sys
import threading

from pymemtrace import cMemLeak

sys.stdin.readline()
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


kept(1037)
done, release = threading.Semaphore(0), threading.Semaphore(0)
alive = [threading.Thread(target=waiting, args=(5, done, release), daemon=True) for _ in range(2)]
for thread in alive:
    thread.start()
    done.acquire()
for n in (50, 7):
    gone = threading.Thread(target=exiting, args=(n,))
    gone.start()
    gone.join()
print("idle", flush=True)
sys.stdin.readline()
