# SPDX-License-Identifier: MIT
"""Another user's program that allocates through the same library as a traced command: imports
cMemLeak, says `mapped`, waits for a line, then makes and frees 20,000 blocks, keeps 7, prints
what it did (the same text every run) and exits 0."""
import sys

from pymemtrace import cMemLeak

print("mapped", flush=True)
sys.stdin.readline()
made = 0
for size in range(20000):
    cMemLeak.CMalloc(16 + size % 64)
    made += 1
kept = [cMemLeak.CMalloc(48) for _ in range(7)]
print(f"made and freed {made} blocks, kept {len(kept)}", flush=True)
