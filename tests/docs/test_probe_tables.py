# SPDX-License-Identifier: MIT
"""The probe table is one contract: probes.h, README.md and docs/probes.md must list the same
probes with the same arguments in the same order.

    python3 -m pytest -q -p no:cacheprovider tests/docs/test_probe_tables.py

PYMEMTRACE_SOURCE_ROOT names the source tree (tests/meson.build sets it); by default, the one
this file is in."""
import os
import re

import pytest

ROOT = os.environ.get("PYMEMTRACE_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROBES = ["alloc", "realloc", "free", "pyalloc", "pyrealloc", "pyfree"]


def argument_names(text):
    """'u64 ptr, u64 size, i32 domain' or 'ptr, size, domain' -> ['ptr', 'size', 'domain']"""
    return [re.split(r"[\s*]+", a.strip())[-1] for a in text.split(",")]


@pytest.fixture(scope="module")
def header_table():
    """{probe: [argument names]} from the table in probes.h' comment; None for a missing row."""
    with open(os.path.join(ROOT, "include/pymemtrace/probes.h")) as header:
        text = header.read()
    table = {}
    for name in PROBES:
        row = re.search(rf"^ \*\s+{name}\s+([a-z_, ]+?)\s{{2,}}", text, re.M)
        table[name] = argument_names(row.group(1)) if row else None
    return table


def markdown_table(path):
    table = {}
    with open(os.path.join(ROOT, path)) as document:
        for line in document:
            row = re.match(r"\|\s*`(\w+)`\s*\|\s*`([^`]+)`\s*\|", line)
            if row and row.group(1) in PROBES:
                table[row.group(1)] = argument_names(row.group(2))
    return table


def test_probes_h_has_a_row_for_every_probe(header_table):
    missing = [name for name, arguments in header_table.items() if arguments is None]
    assert not missing, f"probes.h: no row for {missing}"


@pytest.mark.parametrize("path", ["README.md", "docs/probes.md"])
def test_the_probe_table_lists_what_probes_h_lists(header_table, path):
    table = markdown_table(path)
    assert table == header_table, f"{path} differs from probes.h:\n  {table}\n  {header_table}"
