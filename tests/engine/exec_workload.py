# SPDX-License-Identifier: MIT
"""A traced process that execs: once released it replaces itself with a new Python, which imports
cMemLeak, allocates three blocks of 5 bytes and exits with status 4."""
import os
import sys

sys.stdin.readline()
os.execv(sys.executable, [sys.executable, "-c",
                          "import os\nfrom pymemtrace import cMemLeak\n"
                          "held = [cMemLeak.CMalloc(5) for _ in range(3)]\nos._exit(4)\n"])
