#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The probe table is one contract: probes.h, README.md and docs/probes.md must list the same
probes with the same arguments in the same order. Usage: test_probe_tables.py SOURCE_ROOT"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
PROBES = ["alloc", "realloc", "free", "pyalloc", "pyrealloc", "pyfree"]


def argument_names(text):
    """'u64 ptr, u64 size, i32 domain' or 'ptr, size, domain' -> ['ptr', 'size', 'domain']"""
    return [re.split(r"[\s*]+", a.strip())[-1] for a in text.split(",")]


def header_table():
    text = open(os.path.join(ROOT, "include/pymemtrace/probes.h")).read()
    table = {}
    for name in PROBES:
        row = re.search(rf"^ \*\s+{name}\s+([a-z_, ]+?)\s{{2,}}", text, re.M)
        assert row, f"probes.h: no row for {name}"
        table[name] = argument_names(row.group(1))
    return table


def markdown_table(path):
    table = {}
    for line in open(os.path.join(ROOT, path)):
        row = re.match(r"\|\s*`(\w+)`\s*\|\s*`([^`]+)`\s*\|", line)
        if row and row.group(1) in PROBES:
            table[row.group(1)] = argument_names(row.group(2))
    return table


def main():
    reference = header_table()
    failures = 0
    for path in ["README.md", "docs/probes.md"]:
        table = markdown_table(path)
        if table != reference:
            failures += 1
            print(f"{path} differs from probes.h:\n  {table}\n  {reference}")
    print(f"{2 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
