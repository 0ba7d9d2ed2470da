# SPDX-License-Identifier: MIT
"""An unmodified extension, built through each route, traced by the installed
bin/pymemtrace-trace with no --lib: the summary and leak reports of workload.py are exact.
Root and bpftrace: run through tests/support/run_pytest.py (exit 77 otherwise)."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import routes  # noqa: E402
from source_lines import line_of  # noqa: E402

WORKLOAD = os.path.join(HERE, "workload.py")
SOURCE = open(WORKLOAD).read()


def size_of(directory, name):
    """redirected.BLOCK_SIZE or OLD_SIZE: sizeof() of an object type, from the build."""
    out = subprocess.run([routes.PYTHON, "-c", f"import redirected; print(redirected.{name})"],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=directory)).stdout
    return int(out)


# cxx_keep's first call: `new std::vector<Held>` (24 B) and its first push_back (one 16-byte Held).
CXX_HELD = 24 + 16


def expected_summary(directory):
    """{(line, domain name): (count, bytes)}: what each line of workload.py allocates (a realloc
    is a row of its own, "realloc": pyrealloc carries no domain), the same on both engines."""
    rows = {"keep C heap": [("C heap", 1, 1001)], "keep PyMem_Raw domain": [("PyMem_Raw", 1, 1002)],
            "keep PyMem domain": [("PyMem", 1, 1003)], "keep PyObject": [("PyObject", 1, 1004)],
            "grow C heap": [("C heap", 1, 500), ("realloc", 1, 1000)],
            "grow PyMem": [("PyMem", 1, 600), ("realloc", 1, 1200)],
            "squares": [("PyMem", 1, 80), ("realloc", 1, 160)],
            "block": [("PyObject", 1, size_of(directory, "BLOCK_SIZE")), ("C heap", 1, 300)],
            # PyObject_New + PyObject_Del in tp_dealloc, tp_free left to CPython's default
            "old keep": [("PyObject", 3, 3 * size_of(directory, "OLD_SIZE"))],
            "old churn": [("PyObject", 50, 50 * size_of(directory, "OLD_SIZE"))],
            "cxx keep": [("C heap", 1, 77), ("PyMem", 1, 77), ("C++", 2, CXX_HELD)]}
    if routes.cython():
        rows.update({"cython buffer": [("C heap", 1, 400)], "cython keep": [("PyMem", 1, 501)]})
    return {(line_of(SOURCE, "# " + marker), domain): (count, size)
            for marker, found in rows.items() for domain, count, size in found}


def expected_leaks(directory):
    rows = {"keep C heap": [("C heap", 1, 1001)], "keep PyMem_Raw domain": [("PyMem_Raw", 1, 1002)],
            "keep PyMem domain": [("PyMem", 1, 1003)], "keep PyObject": [("PyObject", 1, 1004)],
            "cxx keep": [("C heap", 1, 77), ("PyMem", 1, 77), ("C++", 2, CXX_HELD)],
            "old keep": [("PyObject", 3, 3 * size_of(directory, "OLD_SIZE"))]}
    if routes.cython():
        rows["cython keep"] = [("PyMem", 1, 501)]
    return {(line_of(SOURCE, "# " + marker), domain): (count, size)
            for marker, found in rows.items() for domain, count, size in found}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    prefix = routes.install_prefix(str(tmp_path_factory.mktemp("destdir")))
    builds = routes.meson_builds()
    del builds["plain"]
    builds["cc -include"] = routes.build_with_include(str(tmp_path_factory.mktemp("include")))
    builds["pkg-config + pip"] = routes.build_with_pip(prefix, str(tmp_path_factory.mktemp("pip")))
    return prefix, builds


def trace(prefix, directory, report, engine="auto"):
    """The installed runner's JSON report of workload.py, run with the build on PYTHONPATH."""
    runner = os.path.join(prefix, "bin", "pymemtrace-trace")
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "report.json")
        result = subprocess.run(
            [runner, "--report", report, "--json", "-o", out, "--engine", engine, "--",
             routes.PYTHON, WORKLOAD],
            capture_output=True, text=True, timeout=180, cwd=scratch,
            env=dict(os.environ, PYTHONPATH=directory))
        assert result.returncode == 0, result.stderr
        entries = json.load(open(out))
    return {(e["line"], e["domain_name"]): (e["count"], e["bytes"]) for e in entries
            if e["file"] == "workload.py" and e["function"] == "main"}


ROUTES = ["meson dep", "cc -include", "pkg-config + pip"]


@pytest.mark.parametrize("engine", ["libbpf", "bpftrace"])
@pytest.mark.parametrize("route", ROUTES)
def test_the_summary_of_an_unmodified_extension_is_exact_with_no_lib(installed, route, engine):
    prefix, builds = installed
    seen = trace(prefix, builds[route], "summary", engine)
    assert seen == expected_summary(builds[route]), seen


@pytest.mark.parametrize("route", ROUTES)
def test_the_leaks_of_an_unmodified_extension_are_exact_with_no_lib(installed, route):
    prefix, builds = installed
    seen = trace(prefix, builds[route], "leaks")
    assert seen == expected_leaks(builds[route]), seen


def test_old_style_objects_are_balanced_in_the_flow(installed):
    """PyObject_New + PyObject_Del in tp_dealloc, tp_free left to the default (regex's Match):
    every object made is seen made and seen freed (the flow used to show the frees alone)."""
    prefix, builds = installed
    runner = os.path.join(prefix, "bin", "pymemtrace-trace")
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "flow.txt")
        result = subprocess.run([runner, "--report", "flow", "-o", out, "--", routes.PYTHON,
                                 WORKLOAD], capture_output=True, text=True, timeout=180,
                                cwd=scratch, env=dict(os.environ, PYTHONPATH=builds["meson dep"]))
        assert result.returncode == 0, result.stderr
        flow = open(out).read().splitlines()
    at = f"workload.py:{line_of(SOURCE, '# old churn')} "
    events = [line.split("-> main ", 1)[1] for line in flow if at in line]
    made = [e for e in events if e.startswith("malloc(")]
    freed = [e for e in events if e.startswith("free(")]
    assert len(made) == len(freed) == 50 and len(events) == 100, events


def test_a_command_that_loads_nothing_instrumented_fails_with_a_fix_for_its_author(installed):
    prefix, builds = installed
    runner = os.path.join(prefix, "bin", "pymemtrace-trace")
    plain = routes.meson_builds()["plain"]
    with tempfile.TemporaryDirectory() as scratch:  # its cwd, on its sys.path, holds nothing
        result = subprocess.run([runner, "--", routes.PYTHON, "-c", "import redirected"],
                                capture_output=True, text=True, timeout=120, cwd=scratch,
                                env=dict(os.environ, PYTHONPATH=plain))
    assert result.returncode == 2, result.stderr
    assert "pkg-config --cflags pymemtrace-redirect" in result.stderr, result.stderr
