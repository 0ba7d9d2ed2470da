# SPDX-License-Identifier: MIT
"""The C++ heap of an unmodified pybind11 extension built with the redirect flags alone, as C++17
and as C++20: every operator new/delete its code calls is traced in domain 4, so the leak report
of cxx_workload.py (ended by os._exit) is exact, std::string buffers that libstdc++ makes and
grows give no false leak, and churn is balanced. Root and bpftrace: run through
tests/support/run_pytest.py."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from runner import PYTHON, RUNNER  # noqa: E402
from source_lines import line_of  # noqa: E402

WORKLOAD = os.path.join(HERE, "cxx_workload.py")
SOURCE = open(WORKLOAD).read()
BUILD = os.environ.get("PYMEMTRACE_REDIRECT_PYBEXT", "")  # C++17, meson's default here
BUILD_CXX20 = os.environ.get("PYMEMTRACE_REDIRECT_PYBEXT20", "")


def sizes():
    """sizeof(Grid), sizeof(std::vector<double>), pybind11's per-instance registry node."""
    out = subprocess.run(
        [PYTHON, "-c", "import pybext as m; print(m.GRID_SIZE, m.VECTOR_SIZE, m.INSTANCE_NODE_SIZE)"],
        capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=BUILD)).stdout
    return [int(word) for word in out.split()]


def report(kind, build=BUILD):
    """{(line, domain name): (count, bytes)} of main() in the runner's JSON report."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "report.json")
        result = subprocess.run([PYTHON, RUNNER, "--report", kind, "--json", "-o", out, "--",
                                 PYTHON, WORKLOAD], capture_output=True, text=True, timeout=180,
                                cwd=scratch, env=dict(os.environ, PYTHONPATH=build))
        assert result.returncode == 0, result.stderr[-800:]
        entries = json.load(open(out))
    return {(e["line"], e["domain_name"]): (e["count"], e["bytes"]) for e in entries
            if e["file"] == "cxx_workload.py" and e["function"] == "main"}


def at(marker):
    return line_of(SOURCE, "# " + marker)


pytestmark = pytest.mark.skipif(not BUILD, reason="pybind11-dev is not installed")


def expected_leaks():
    grid, vector, node = sizes()
    return {
        (at("keep grid"), "C++"): (2, grid + 1000 * 8),
        (at("keep another grid"), "C++"): (2, grid + 500 * 8),
        (at("leak vector"), "C++"): (2, vector + 300 * 8),
        # the Python object is CPython's; pybind11 new-s the Grid and registers the instance
        (at("python grid"), "C++"): (3, grid + 2000 * 8 + node),
        # aligned new (64 B), aligned new[] of 2, nothrow new[] of 10 ints
        (at("other forms"), "C++"): (3, 64 + 2 * 64 + 10 * 4),
    }


def test_the_leaks_of_a_pybind11_extension_are_its_new_ed_blocks_exactly():
    # No row for churn, the dropped Grid, nor the strings libstdc++ made, grew and keeps.
    assert report("leaks") == expected_leaks()


def test_every_new_and_delete_of_a_churning_loop_is_seen_and_strings_are_libstdcxx_s():
    seen = report("summary")
    calls, call_bytes = seen[(at("call overhead"), "C++")]  # pybind11's argument vectors
    grid = sizes()[0]
    # 200 x (new Grid, its vector's storage, new int[50]), each deleted
    assert seen[(at("churn"), "C++")] == (calls + 600, call_bytes + 200 * (grid + 400 + 200))
    # std::string's buffers come from libstdc++'s out-of-line members: not the extension's
    assert seen[(at("keep name"), "C++")] == (calls, call_bytes)


def test_in_cxx20_std_string_is_the_extensions_and_its_kept_buffer_is_reported():
    """C++20 drops std::string's extern template: the module instantiates it, so the kept name's
    buffer (capacity 100 + 400, and its NUL) is a C++ block of the module, at its line."""
    expected = dict(expected_leaks())
    expected[(at("keep name"), "C++")] = (1, 100 + 400 + 1)
    assert report("leaks", BUILD_CXX20) == expected
