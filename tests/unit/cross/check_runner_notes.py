# SPDX-License-Identifier: MIT
"""The runner's note reader (pymemtrace.trace.elf) on cross-built ELF files: each has the nine
probes once, and each probe's semaphore is the address of the symbol the headers define for it,
in pairs (alloc|pyalloc, ..., pystack4|pystack16, pynative|pybatch) inside the one 20-byte block. Symbols come from the target's nm.

    python3 check_runner_notes.py SOURCE_DIR NM FILE...
"""
import os
import subprocess
import sys

source_dir, nm, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, os.path.join(source_dir, "src"))
from pymemtrace.trace import elf  # noqa: E402

SEMAPHORE_ORDER = ["alloc", "pyalloc", "realloc", "pyrealloc", "free", "pyfree", "pystack4",
                   "pystack16", "pynative", "pybatch"]


def symbols(path):
    out = subprocess.run([nm, path], capture_output=True, text=True, check=True).stdout
    return {fields[2]: int(fields[0], 16) for fields in map(str.split, out.splitlines())
            if len(fields) == 3}


failures = []
for path in paths:
    failed_before = len(failures)
    found = [p for p in elf.probes(path) if p.provider == "pymemtrace"]
    names = sorted(p.name for p in found)
    if names != sorted(SEMAPHORE_ORDER):
        failures.append(f"{path}: probes {names}, expected each of {SEMAPHORE_ORDER} once")
        continue
    table = symbols(path)
    block = table.get("pymemtrace_semaphores")
    for probe in found:
        expected = table.get(f"pymemtrace_{probe.name}_semaphore")
        offset = 2 * SEMAPHORE_ORDER.index(probe.name)
        if probe.semaphore != expected or block is None or probe.semaphore != block + offset:
            failures.append(f"{path}: {probe.name} semaphore {probe.semaphore:#x}, symbol "
                            f"{expected and hex(expected)}, block {block and hex(block)} + {offset}")
    if len(failures) == failed_before:
        print(f"ok   {os.path.basename(path)}: ten probes, semaphores at their symbols")
for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures else 0)
