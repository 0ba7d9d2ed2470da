# SPDX-License-Identifier: MIT
"""An unrelated process using the same library: prints its pid, then allocates and frees until
its stdin closes."""
import os
import sys
import threading

from pymemtrace import cMemLeak

done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
print(os.getpid(), flush=True)
while not done.is_set():
    cMemLeak.CMalloc(32)
