# SPDX-License-Identifier: MIT
"""--native names the C or C++ code that called the allocator, beside the Python line, for the
three routes of nativeext (a wrapper inlined in a C function, the redirect flags' __wrap_malloc,
a C++ operator new through cxxheap.h), in every report form; without debug info it gives the
symbol and says the line is unknown; without --native the report is the one it always was.
Root and bpftrace: run through tests/support/run_pytest.py."""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from runner import PYTHON, RUNNER, pid_report  # noqa: E402
from source_lines import line_of  # noqa: E402

WORKLOAD = os.path.join(HERE, "native_workload.py")
BUILD = os.environ["PYMEMTRACE_NATIVEEXT"]
NODEBUG = os.environ["PYMEMTRACE_NATIVEEXT_NODEBUG"]
C_SOURCE = open(os.path.join(HERE, "nativeext.c")).read()
CXX_SOURCE = open(os.path.join(HERE, "nativeext_cxx.cpp")).read()
PY_SOURCE = open(WORKLOAD).read()


def run(*options, build=BUILD):
    """The runner's report of the workload (a string), with `options`."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "report")
        result = subprocess.run([PYTHON, RUNNER, *options, "-o", out, "--", PYTHON, WORKLOAD],
                                capture_output=True, text=True, timeout=180, cwd=scratch,
                                env=dict(os.environ, PYTHONPATH=build))
        assert result.returncode == 0, result.stderr[-800:]
        return open(out).read()


# route: (Python line marker, C function, source file, its line)
ROUTES = {
    "explicit": ("explicit_block", "nativeext.c", line_of(C_SOURCE, "/* explicit wrapper */")),
    "wrapped": ("wrapped_block", "nativeext.c", line_of(C_SOURCE, "/* wrapped malloc */")),
    "cxx": ("nativeext_cxx_block", "nativeext_cxx.cpp", line_of(CXX_SOURCE, "// operator new")),
    # without the GIL: the Python line that released it, and the C caller all the same
    "released": ("released_block", "nativeext.c", line_of(C_SOURCE, "/* malloc without the GIL */")),
}


def by_line(entries):
    """{line: entry} of the workload's entries: one each (one route a line, one native caller)."""
    lines = [e["line"] for e in entries if e["file"] == "native_workload.py"]
    assert len(lines) == len(set(lines)) == len(ROUTES), entries
    return {e["line"]: e for e in entries if e["file"] == "native_workload.py"}


def test_json_names_the_c_function_file_and_line_of_each_route():
    for kind in ("leaks", "summary"):
        entries = by_line(json.loads(run("--report", kind, "--native", "--json")))
        for marker, (function, source, line) in ROUTES.items():
            native = entries[line_of(PY_SOURCE, "# " + marker)]["native"]
            assert native is not None, (kind, marker, "no native caller")
            assert (native["function"], os.path.basename(native["file"]), native["line"]) == (
                function, source, line), (kind, marker, native)
            assert native["library"].endswith(".so")


def test_the_text_report_shows_the_c_caller_after_the_python_function():
    text = run("--report", "leaks", "--native")
    for marker, (function, source, line) in ROUTES.items():
        py_line = line_of(PY_SOURCE, "# " + marker)
        assert re.search(rf"native_workload\.py:{py_line}\s+main  in {function} "
                         rf"\({re.escape(source)}:{line}\)", text), text


def test_folded_and_html_put_the_c_caller_below_the_python_frames():
    folded = run("--report", "leaks", "--native", "--format", "folded")
    for marker, (function, source, line) in ROUTES.items():
        py_line = line_of(PY_SOURCE, "# " + marker)
        assert re.search(rf"native_workload\.py:{py_line} main;\S*{re.escape(source)}:{line} "
                         rf"{function} \d+$", folded, re.M), folded
    page = run("--report", "leaks", "--native", "--format", "html")
    assert all(f"{source}:{line} {function}" in page for function, source, line
               in ROUTES.values())


def test_a_library_without_debug_info_gives_the_symbol_and_says_the_line_is_unknown():
    text = run("--report", "leaks", "--native", build=NODEBUG)
    for marker, (function, _source, _line) in ROUTES.items():
        py_line = line_of(PY_SOURCE, "# " + marker)
        # gcc may name the cold part of a function function.cold
        assert re.search(rf"native_workload\.py:{py_line}\s+main  in {function}(\.cold)? "
                         r"\(nativeext\.\S+\.so\+0x[0-9a-f]+, line unknown\)", text), text


def test_without_native_the_report_has_no_native_caller():
    text = run("--report", "leaks")
    assert " in " not in text.split("Total:")[0] and "native_workload.py" in text
    entries = json.loads(run("--report", "leaks", "--json"))
    assert entries and not any("native" in e for e in entries)


def test_both_engines_name_the_c_caller_of_a_running_process():
    """-p: pymemtrace-engine (libbpf) and bpftrace alike; the process has ended when the report
    is written, and its library is still named."""
    for engine in ("libbpf", "bpftrace"):
        target = subprocess.Popen([PYTHON, WORKLOAD, "--held"], stdin=subprocess.PIPE, text=True,
                                  env=dict(os.environ, PYTHONPATH=BUILD))
        try:
            out = pid_report(target, ["--engine", engine, "--report", "leaks", "--native",
                                      "--json"])
        finally:
            if target.poll() is None:
                target.kill()
                target.wait()
        entries = by_line(json.loads(out))
        for marker, (function, source, line) in ROUTES.items():
            native = entries[line_of(PY_SOURCE, "# " + marker)]["native"]
            assert native is not None, (engine, marker, "no native caller")
            assert (native["function"], os.path.basename(native["file"]), native["line"]) == (
                function, source, line), (engine, marker, native)
