# SPDX-License-Identifier: MIT
"""Snapshots in the middle of batches (--batch --interval-ms): each stage leaves events in the
rings (fewer than 64 since their last batch) and prints "idle", then waits for a line on stdin.
Stage 1: the main thread keeps 1,037 blocks (16 batches and 13 events left). Stage 2: it frees
520 of them (21 events left), a thread keeps 5 and stays alive, blocked (4 left: its first event
fired at once, a frame it had not sent), and a thread keeps 57 and exits."""
import sys
import threading

from batch_held_blocks import exiting, held, kept, waiting

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
