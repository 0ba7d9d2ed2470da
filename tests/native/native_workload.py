# SPDX-License-Identifier: MIT
"""--native's workload: each route of nativeext allocates three blocks that stay allocated.
With --held it waits for a line on stdin first (for -p)."""
import sys

import nativeext


def main():
    for _ in range(3):
        nativeext.explicit(1000)  # explicit
        nativeext.wrapped(2000)  # wrapped
        nativeext.cxx(3000)  # cxx
        nativeext.released(4000)  # released


if "--held" in sys.argv:
    sys.stdin.readline()
main()
