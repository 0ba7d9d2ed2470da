# SPDX-License-Identifier: MIT
"""A workload for the reports by caller: a thin Python wrapper module (`wrapper.make`) that
allocates through cMemLeak, called from three different functions of a script. Written into a
directory; run as `python3 SCRIPT BUILD_SRC` (BUILD_SRC: where `pymemtrace.cMemLeak` is)."""
import os

from source_lines import line_of

WRAPPER = """\
from pymemtrace import cMemLeak


def make(size):
    return cMemLeak.CMalloc(size)  # the wrapper's allocation
"""

SCRIPT = """\
import os
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wrapper

kept = []


def alpha():
    for _ in range(3):
        kept.append(wrapper.make(1000))


def beta():
    for _ in range(2):
        kept.append(wrapper.make(2000))


def gamma():
    kept.append(wrapper.make(3000))


alpha()
beta()
gamma()
"""

CALLERS = {"alpha": 3 * 1000, "beta": 2 * 2000, "gamma": 3000}  # bytes each caller asks for
BLOCKS = 6


def write(directory, name="callers.py"):
    """Writes the wrapper and the script into `directory`; returns (script path, the wrapper's
    allocating line)."""
    with open(os.path.join(directory, "wrapper.py"), "w") as file:
        file.write(WRAPPER)
    script = os.path.join(directory, name)
    with open(script, "w") as file:
        file.write(SCRIPT)
    return script, line_of(WRAPPER, "the wrapper's allocation")
