# SPDX-License-Identifier: MIT
"""Installs as users make them, from a copy of the checkout (its tracked and new files, none of
its builds): `tools/install-deps.sh` (npm ci for the flame graph), `meson setup --prefix=...`
and `meson install` build only what users get (cMemLeak, no test, example or benchmark), and the
installed runner, run with no environment variable but PATH, finds its package and its flame
graph JavaScript and writes leaks, folded and html reports of a process that keeps two blocks of
the installed cMemLeak; its --help names the install's pkg-config directory. The route Debian
12's pip accepts, a venv with --system-site-packages and `pip install --no-build-isolation`,
gives a console script that does the same.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace): the runner
traces, as root.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))
from runner import PYTHON  # noqa: E402
from source_lines import line_of  # noqa: E402

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no PYTHONPATH, PKG_CONFIG_PATH, ...
# The target finds the installed cMemLeak through its first argument (a directory for sys.path).
KEEPER = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
kept = []
for _ in range(2):
    kept.append(cMemLeak.CMalloc(3333))  # KEPT
os._exit(0)  # no teardown: both blocks are still held at the end
"""


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n" \
                                   f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
    return result


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of the checkout's files as git knows them (committed or not), without builds."""
    copy = tmp_path_factory.mktemp("checkout")
    listed = run(["git", "-C", SOURCE, "ls-files", "-z", "--cached", "--others",
                  "--exclude-standard"]).stdout.split("\0")
    for name in filter(None, listed):
        if os.path.isfile(os.path.join(SOURCE, name)):
            os.makedirs(copy / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(SOURCE, name), copy / name)
    run(["bash", "tools/install-deps.sh"], cwd=copy)
    keeper = copy / "keeper.py"
    keeper.write_text(KEEPER)
    return copy


@pytest.fixture(scope="module")
def installed(checkout):
    """(prefix, the installed package's directory) of `meson install` to a fresh prefix."""
    prefix = checkout / "opt" / "x"
    run(["meson", "setup", f"--prefix={prefix}", "build-x"], cwd=checkout)
    run(["meson", "install", "-C", "build-x"], cwd=checkout)
    packages = glob.glob(str(prefix / "lib" / "python3*" / "*-packages" / "pymemtrace"))
    assert len(packages) == 1, f"installed pymemtrace packages: {packages}"
    return prefix, packages[0]


def installed_runner(prefix, package, *args):
    keeper = prefix.parent.parent / "keeper.py"  # prefix: <checkout>/opt/x
    return run([str(prefix / "bin" / "pymemtrace-trace"), "--lib", package, *args, "--",
                PYTHON, str(keeper), os.path.dirname(package)], env=CLEAN_ENV, timeout=180)


def kept_line(checkout):
    return line_of((checkout / "keeper.py").read_text(), "# KEPT")


def test_meson_install_builds_no_test_example_or_benchmark(checkout, installed):
    targets = json.loads(run(["meson", "introspect", "--targets", "build-x"], cwd=checkout).stdout)
    built = sorted(t["name"].split(".")[0] for t in targets if t["type"] != "custom")
    # What users get: cMemLeak, the allocator hooks (pymemtrace._hooks) and the engine.
    assert built == ["_hooks", "cMemLeak", "pymemtrace-engine"], f"targets built: {built}"


def test_the_installed_runners_leak_report_holds_the_kept_blocks(checkout, installed):
    report = installed_runner(*installed, "--report", "leaks", "--json").stdout
    kept = [(e["count"], e["bytes"]) for e in json.loads(report)
            if e["file"] == "keeper.py" and e["line"] == kept_line(checkout)]
    assert kept == [(2, 6666)], f"leaks report: {report}"


def test_the_installed_runner_finds_the_installed_engine(checkout, installed):
    """--engine libbpf fails unless the runner finds pymemtrace-engine in its prefix's bin."""
    report = installed_runner(*installed, "--report", "leaks", "--json", "--engine",
                              "libbpf").stdout
    kept = [(e["count"], e["bytes"]) for e in json.loads(report)
            if e["file"] == "keeper.py" and e["line"] == kept_line(checkout)]
    assert kept == [(2, 6666)], f"leaks report: {report}"


def test_the_installed_runners_folded_report_holds_the_kept_line(checkout, installed):
    report = installed_runner(*installed, "--report", "folded").stdout
    assert f"keeper.py:{kept_line(checkout)} <module> 6666" in report.splitlines(), report


def test_the_installed_runners_html_report_inlines_the_flame_graph(checkout, installed, tmp_path):
    page = tmp_path / "page.html"
    installed_runner(*installed, "--report", "html", "-o", str(page))
    text = page.read_text()
    assert "d3-flame-graph" in text or "flamegraph" in text, "no flame graph script in the page"
    assert f"keeper.py:{kept_line(checkout)}" in text, "the kept line is not in the page"


def test_the_installed_runners_help_names_the_installs_pkg_config_directory(installed):
    prefix, _ = installed
    help_text = run([str(prefix / "bin" / "pymemtrace-trace"), "--help"], env=CLEAN_ENV).stdout
    directory = glob.glob(str(prefix / "lib" / "**" / "pkgconfig" / "pymemtrace.pc"),
                          recursive=True)
    assert len(directory) == 1, directory
    assert f"PKG_CONFIG_PATH={os.path.dirname(directory[0])} pkg-config" in help_text, \
        help_text
    cflags = run(["pkg-config", "--cflags", "pymemtrace"],
                 env={**CLEAN_ENV, "PKG_CONFIG_PATH": os.path.dirname(directory[0])}).stdout
    assert f"-I{prefix}/include" in cflags, cflags


def test_a_venv_pip_install_gives_a_runner_that_reports_leaks_and_html(checkout, tmp_path):
    venv = tmp_path / "venv"
    run([PYTHON, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)])
    # Debian 12's own pip, run by the venv's Python: not externally managed there; no PyPI.
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-build-isolation",
         "--no-index", "--no-deps", str(checkout)], env=CLEAN_ENV, timeout=600)
    runner = str(venv / "bin" / "pymemtrace-trace")
    command = ["--", str(venv / "bin" / "python"), str(checkout / "keeper.py"), "/nonexistent"]
    report = run([runner, "--report", "leaks", "--json", *command], env=CLEAN_ENV, timeout=180)
    kept = [(e["count"], e["bytes"]) for e in json.loads(report.stdout)
            if e["line"] == kept_line(checkout)]
    assert kept == [(2, 6666)], f"leaks report: {report.stdout}"
    page = tmp_path / "page.html"
    run([runner, "--report", "html", "-o", str(page), *command], env=CLEAN_ENV, timeout=180)
    assert f"keeper.py:{kept_line(checkout)}" in page.read_text()
