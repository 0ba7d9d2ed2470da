# SPDX-License-Identifier: MIT
"""The probe table is one contract: probes.h, README.md, docs/probes.md and the DTrace provider
file pymemtrace.d must list the same probes with the same arguments in the same order, and the
types of the provider file and of docs/probes.md must be those of probes.h's probe functions.
systemtap's `dtrace` (systemtap-sdt-dev) must accept the provider file with -h and -G, as the
DTrace platforms' tools would.

    python3 -m pytest -q -p no:cacheprovider tests/docs/test_probe_tables.py

PYMEMTRACE_SOURCE_ROOT names the source tree (tests/meson.build sets it); by default, the one
this file is in."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.environ.get("PYMEMTRACE_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROBES = ["alloc", "realloc", "free", "pyalloc", "pyrealloc", "pyfree", "pystack4", "pystack16",
          "pynative", "pybatch"]
PROVIDER_FILE = "include/pymemtrace/pymemtrace.d"

# One spelling per kind of argument: (bytes, signed) or "string".
KINDS = {"uintptr_t": (8, False), "size_t": (8, False), "int": (4, True), "const char *": "string",
         "uint64_t": (8, False), "int32_t": (4, True), "char *": "string",
         "u64": (8, False), "i32": (4, True)}


def argument_names(text):
    """'u64 ptr, u64 size, i32 domain' or 'ptr, size, domain' -> ['ptr', 'size', 'domain'];
    '-', '—' or '' (a request probe, which carries nothing) -> []"""
    if text.strip() in ("-", "—", "", "void"):
        return []
    return [re.split(r"[\s*]+", a.strip())[-1] for a in text.split(",")]


@pytest.fixture(scope="module")
def header_table():
    """{probe: [argument names]} from the table in probes.h' comment; None for a missing row."""
    with open(os.path.join(ROOT, "include/pymemtrace/probes.h")) as header:
        text = header.read()
    table = {}
    for name in PROBES:
        row = re.search(rf"^ \*\s+{name}\s+([a-z_, ]+?|-)\s{{2,}}", text, re.M)
        table[name] = argument_names(row.group(1)) if row else None
    return table


def markdown_table(path):
    table = {}
    with open(os.path.join(ROOT, path)) as document:
        for line in document:
            row = re.match(r"\|\s*`(\w+)`\s*\|\s*(?:`([^`]+)`|(—))\s*\|", line)
            if row and row.group(1) in PROBES:
                table[row.group(1)] = argument_names(row.group(2) or row.group(3))
    return table


def test_probes_h_has_a_row_for_every_probe(header_table):
    missing = [name for name, arguments in header_table.items() if arguments is None]
    assert not missing, f"probes.h: no row for {missing}"


@pytest.mark.parametrize("path", ["README.md", "docs/probes.md"])
def test_the_probe_table_lists_what_probes_h_lists(header_table, path):
    table = markdown_table(path)
    assert table == header_table, f"{path} differs from probes.h:\n  {table}\n  {header_table}"


def typed_arguments(text):
    """'uint64_t ptr, char *filename' -> [('ptr', (8, False)), ('filename', 'string')]"""
    arguments = []
    if not argument_names(text):
        return arguments
    for argument in text.split(","):
        match = re.fullmatch(r"\s*(.*?)\s*(\**)\s*(\w+)\s*", argument, re.S)
        type_name = " ".join(match.group(1).split()) + (" " + match.group(2) if match.group(2) else "")
        arguments.append((match.group(3), KINDS.get(type_name, type_name)))
    return arguments


@pytest.fixture(scope="module")
def probe_functions():
    """{probe: [(name, kind)]} from the prototypes of probes.h's pymemtrace_probe_NAME functions."""
    with open(os.path.join(ROOT, "include/pymemtrace/probes.h")) as header:
        text = header.read()
    return {name: typed_arguments(arguments) for name, arguments
            in re.findall(r"^void pymemtrace_probe_(\w+)\(([^)]*)\)", text, re.M)}


def provider_probes(text):
    """{probe: [(name, kind)]} of the `probe NAME(...);` lines of a D provider definition."""
    return {name: typed_arguments(arguments)
            for name, arguments in re.findall(r"\bprobe\s+(\w+)\s*\(([^)]*)\)\s*;", text)}


@pytest.fixture(scope="module")
def provider_file():
    with open(os.path.join(ROOT, PROVIDER_FILE)) as definition:
        return provider_probes(definition.read())


def test_probe_functions_are_the_probes_of_the_table(header_table, probe_functions):
    names = {probe: [name for name, _ in arguments] for probe, arguments in probe_functions.items()}
    assert names == header_table, f"probes.h's probe functions: {names}"


def test_the_provider_file_lists_what_probes_h_lists(header_table, provider_file):
    assert list(provider_file) == PROBES, f"{PROVIDER_FILE} probes, in order: {list(provider_file)}"
    names = {probe: [name for name, _ in arguments] for probe, arguments in provider_file.items()}
    assert names == header_table, f"{PROVIDER_FILE} differs from probes.h:\n  {names}"


def test_the_provider_file_has_the_types_of_the_probe_functions(probe_functions, provider_file):
    assert provider_file == probe_functions, (
        f"{PROVIDER_FILE}:\n  {provider_file}\nprobes.h's probe functions:\n  {probe_functions}")


def test_docs_probes_md_has_the_types_of_the_probe_functions(probe_functions):
    typed = {}
    with open(os.path.join(ROOT, "docs/probes.md")) as document:
        for line in document:
            row = re.match(r"\|\s*`(\w+)`\s*\|\s*(?:`([^`]+)`|(—))\s*\|", line)
            if row and row.group(1) in PROBES:
                typed[row.group(1)] = typed_arguments(row.group(2) or row.group(3))
    assert typed == probe_functions, f"docs/probes.md:\n  {typed}\nprobes.h:\n  {probe_functions}"


@pytest.fixture(scope="module")
def systemtap_dtrace():
    dtrace = shutil.which("dtrace")
    assert dtrace, "systemtap's dtrace is missing: apt-get install systemtap-sdt-dev"
    return dtrace


def test_systemtap_dtrace_h_makes_a_header_with_every_probe(systemtap_dtrace, provider_file,
                                                             tmp_path):
    header = tmp_path / "pymemtrace_provider.h"
    subprocess.run([systemtap_dtrace, "-h", "-s", os.path.join(ROOT, PROVIDER_FILE),
                    "-o", str(header)], check=True)
    # The generated header restates each probe's signature in a comment: what dtrace understood.
    understood = {name.lower(): typed_arguments(arguments) for name, arguments
                  in re.findall(r"/\* PYMEMTRACE_(\w+) \((.*)\) \*/", header.read_text())}
    assert understood == provider_file
    # Every macro takes its probe's arguments: a translation unit that fires each one compiles.
    calls = "".join(f"  if (PYMEMTRACE_{name.upper()}_ENABLED()) PYMEMTRACE_{name.upper()}("
                    + ", ".join('""' if kind == "string" else "1" for _, kind in arguments) + ");\n"
                    for name, arguments in provider_file.items())
    source = tmp_path / "fires_every_probe.c"
    source.write_text(f'#include "pymemtrace_provider.h"\nvoid fire(void)\n{{\n{calls}}}\n')
    subprocess.run(["cc", "-Wall", "-Werror", "-c", str(source), "-o", str(tmp_path / "fire.o")],
                   check=True, cwd=tmp_path)


def test_systemtap_dtrace_g_makes_an_object_with_every_semaphore(systemtap_dtrace, tmp_path):
    provider_object = tmp_path / "pymemtrace_provider.o"
    subprocess.run([systemtap_dtrace, "-G", "-s", os.path.join(ROOT, PROVIDER_FILE),
                    "-o", str(provider_object)], check=True, cwd=tmp_path)
    symbols = subprocess.run(["nm", str(provider_object)], capture_output=True, text=True,
                             check=True).stdout.split()
    missing = [name for name in PROBES if f"pymemtrace_{name}_semaphore" not in symbols]
    assert not missing, f"no semaphore for {missing} in the -G object: {symbols}"
