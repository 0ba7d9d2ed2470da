# SPDX-License-Identifier: MIT
"""Events left in the rings (--batch): after a line on stdin the main thread keeps 1,037 blocks
(16 batches and 13 events), two threads keep 5 each and stay alive, blocked; one thread keeps 50
and exits, then another (which may get the same thread-local ring) keeps 7 and exits. Prints
"idle" and waits for the engine's report."""
import sys
import threading

from batch_held_blocks import exiting, kept, waiting

sys.stdin.readline()
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
