# SPDX-License-Identifier: MIT
"""A traced process that has not imported cMemLeak forks a child that execs a new Python, which
imports it half a second later, allocates four blocks of 30 bytes and exits with status 6: the
child maps none of the traced libraries while its probes are being attached."""
import os
import sys

print(os.getpid(), flush=True)
sys.stdin.readline()
child = os.fork()
if child == 0:
    os.execv(sys.executable, [sys.executable, "-c",
                              "import os, time\ntime.sleep(0.5)\nfrom pymemtrace import cMemLeak\n"
                              "held = [cMemLeak.CMalloc(30) for _ in range(4)]\nos._exit(6)\n"])
os.waitpid(child, 0)
os._exit(0)
