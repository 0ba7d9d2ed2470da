# SPDX-License-Identifier: MIT
"""Names that are not UTF-8 in batches (--batch): two functions, each in a file whose name is not
UTF-8 and with a name that is not either (a lone surrogate, as surrogateescape decodes a byte).
Each of two lines on stdin runs a session: a line of this file that the other session does not
run allocates (a frame new to the thread, so its batch fires at once: the tracer learns the ring),
then each function keeps 3 blocks, events that stay in the ring in the second session (their
frames were sent in the first), then "idle"."""
import os
import sys

from pymemtrace import cMemLeak

directory = os.fsencode(sys.argv[1])
held = []


def load(file_name, function_name, blank_lines):
    """The function `function_name`, compiled from a file `file_name` (bytes) in `directory`,
    its allocating line after `blank_lines` empty ones."""
    path = os.path.join(directory, file_name)
    source = ("def f(n, held, CMalloc):\n" + "\n" * blank_lines
              + "    for _ in range(n):\n        held.append(CMalloc(10))\n")
    with open(path, "w") as file:
        file.write(source)
    namespace = {}
    exec(compile(source, os.fsdecode(path), "exec"), namespace)
    function = namespace["f"]
    function.__code__ = function.__code__.replace(co_name=function_name,
                                                  co_qualname=function_name)
    return function


first = load(b"first-\xff.py", "first_\udcfe", 0)
second = load(b"second-\xfe.py", "second_\udcfd", 1)
for session in (1, 2):
    sys.stdin.readline()
    if session == 1:
        held.append(cMemLeak.CMalloc(1))  # ALLOC: fresh1
    else:
        held.append(cMemLeak.CMalloc(2))  # ALLOC: fresh2
    first(3, held, cMemLeak.CMalloc)
    second(3, held, cMemLeak.CMalloc)
    print("idle", flush=True)
sys.stdin.readline()
