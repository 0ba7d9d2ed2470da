# SPDX-License-Identifier: MIT
"""A process that maps libraries when told to, after the engine attached: prints its pid, then
obeys one line of stdin at a time and answers each with a line:
  import        imports cMemLeak                      -> imported
  load          loads cMemLeak from the path argv[1]  -> imported
  plain         imports an extension without probes   -> imported
  alloc N       holds N more blocks of 100 bytes      -> allocated
  import_alloc N  imports cMemLeak and at once holds N blocks -> allocated"""
import importlib.machinery
import importlib.util
import os
import sys

held = []
cMemLeak = None


def hold(n):
    for _ in range(n):
        held.append(cMemLeak.CMalloc(100))  # ALLOC: held


def load(path):
    loader = importlib.machinery.ExtensionFileLoader("cMemLeak", path)
    spec = importlib.util.spec_from_file_location("cMemLeak", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


print(os.getpid(), flush=True)
for line in sys.stdin:
    word, *rest = line.split()
    if word == "import":
        from pymemtrace import cMemLeak
    elif word == "load":
        cMemLeak = load(sys.argv[1])
    elif word == "plain":
        import _lzma  # noqa: F401  (lib-dynload: an extension without pymemtrace probes)
    elif word == "import_alloc":
        from pymemtrace import cMemLeak
        hold(int(rest[0]))
    elif word == "alloc":
        hold(int(rest[0]))
    print("allocated" if word.endswith("alloc") else "imported", flush=True)
