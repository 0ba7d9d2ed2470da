# SPDX-License-Identifier: MIT
"""Started after an --all runner: waits for the file GO, makes and frees COUNT blocks of 333
bytes, then says so (the file GO.PID) and ends (test_engine_every_report.py)."""
import os
import sys
import time

from pymemtrace import cMemLeak

go, count = sys.argv[1], int(sys.argv[2])
while not os.path.exists(go):
    time.sleep(0.05)
blocks = [cMemLeak.CMalloc(333) for _ in range(count)]  # ALLOC: made
del blocks[:]  # ALLOC: released
open(f"{go}.{os.getpid()}", "w").close()
