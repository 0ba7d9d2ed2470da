# SPDX-License-Identifier: MIT
"""The engine benchmark's target: imports cMemLeak, prints its pid, then obeys lines on stdin:
`alloc N` allocates N blocks of 16 bytes and keeps them (prints `held`), `exit` ends at once."""
import os
import sys

from pymemtrace import cMemLeak

held = []
print(os.getpid(), flush=True)
for line in sys.stdin:
    words = line.split()
    if words[0] == "alloc":
        for _ in range(int(words[1])):
            held.append(cMemLeak.CMalloc(16))
        print("held", flush=True)
    elif words[0] == "exit":
        os._exit(0)
