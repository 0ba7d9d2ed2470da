# SPDX-License-Identifier: MIT
"""python3 -m pymemtrace --cflags | --libs | --includes: the flags that trace an unmodified
extension (as `pkg-config --cflags --libs pymemtrace-redirect`, without pkg-config)."""
import argparse
import sys

from . import get_include, redirect_cflags, redirect_ldflags


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m pymemtrace", description=__doc__)
    parser.add_argument("--cflags", action="store_true",
                        help="compiler flags: the include directory and -include redirect.h")
    parser.add_argument("--libs", "--ldflags", action="store_true", dest="libs",
                        help="linker flags: the C heap and C++ operator new/delete wrapped "
                             "(-Wl,--wrap=...)")
    parser.add_argument("--includes", action="store_true",
                        help="only -I with the include directory (for hand-written wrappers)")
    args = parser.parse_args(argv)
    if not (args.cflags or args.libs or args.includes):
        parser.error("give --cflags, --libs or --includes")
    flags = []
    if args.includes and not args.cflags:
        flags.append("-I" + get_include())
    if args.cflags:
        flags += redirect_cflags()
    if args.libs:
        flags += redirect_ldflags()
    print(" ".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
