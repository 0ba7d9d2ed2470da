# SPDX-License-Identifier: MIT
"""`--frames python-probes` (CPython's own probes) and the default (the py* probes) report the
same rows, domains and names for the same events: tests/redirect's workload, built through meson
with the redirect flags, traced both ways with real bpftrace. Reallocs were counted under their
C domain by python-probes and under `realloc` (-1) by the default (issue 21). A qualified name
(`Outer.method.<locals>.<lambda>`) is still the plain co_name under python-probes: listed in
docs/toolkit.md. Run through tests/support/run_pytest.py with PYTHONPATH=<builddir>/src."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from runner import PYTHON, RUNNER  # noqa: E402

MESON_BUILT = os.environ.get("PYMEMTRACE_REDIRECT_MESON", "")
WORKLOAD_DIR = os.path.join(ROOT, "tests", "redirect")


def summary_rows(frames):
    """{(line, function, domain name): (count, bytes)} of workload.py, traced with --frames."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "report.json")
        result = subprocess.run(
            [PYTHON, RUNNER, "--frames", frames, "--json", "-o", out, "--", PYTHON, "-c",
             "import workload; workload.main()"], capture_output=True, text=True, timeout=180,
            cwd=scratch, env=dict(os.environ, PYTHONPATH=f"{MESON_BUILT}:{WORKLOAD_DIR}"))
        assert result.returncode == 0, result.stderr[-800:]
        entries = json.load(open(out))
    return {(e["line"], e["function"], e["domain_name"]): (e["count"], e["bytes"])
            for e in entries if e["file"] == "workload.py"}


def test_python_probes_and_the_default_give_the_same_summary_rows_reallocs_included():
    default, python_probes = summary_rows("probes"), summary_rows("python-probes")
    assert any(domain == "realloc" for _line, _function, domain in default), default
    assert python_probes == default
