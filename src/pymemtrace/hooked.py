# SPDX-License-Identifier: MIT
"""python3 -m pymemtrace.hooked SCRIPT [ARG...]: runs SCRIPT as __main__ with pymemtrace._hooks
installed, so that a trace also sees what CPython allocates for the extensions (objects from
tp_alloc, strings, lists, dicts) at the script's lines, with no edit to the script:

    sudo pymemtrace-trace --report leaks -- python3 -m pymemtrace.hooked script.py
"""
import runpy
import sys


def main(argv):
    if not argv or argv[0].startswith("-"):
        print("usage: python3 -m pymemtrace.hooked SCRIPT [ARG...]: give the script to run",
              file=sys.stderr)
        return 2
    from . import _hooks
    _hooks.install()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
