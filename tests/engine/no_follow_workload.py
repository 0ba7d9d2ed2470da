# SPDX-License-Identifier: MIT
"""A process that holds blocks before and after a fork, and a child that holds its own and ends
(for --no-follow: test_engine_every_report.py); both end holding them. Prints the child's PID."""
import os

from pymemtrace import cMemLeak

held = [cMemLeak.CMalloc(1111) for _ in range(3)]  # ALLOC: parent
child = os.fork()
if child == 0:
    mine = [cMemLeak.CMalloc(2000) for _ in range(5)]  # ALLOC: child
    os._exit(0)
print(child, flush=True)
os.waitpid(child, 0)
held += [cMemLeak.CMalloc(1111) for _ in range(2)]  # ALLOC: after
os._exit(0)  # the blocks stay live to the end: the leak report's
