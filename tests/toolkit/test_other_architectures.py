# SPDX-License-Identifier: MIT
"""An ELF file of another architecture (an aarch64 extension with pymemtrace probes, cross-built
here) in a directory the runner scans is passed over, said, and never given to bpftrace: it made
`pymemtrace-trace -- python3 -m ...` fail with "bpftrace could not attach" (a parse error on
aarch64's `8@x0`). `--lib` naming it is one clear error. Real bpftrace; run through
tests/support/run_pytest.py with PYTHONPATH=<builddir>/src."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from runner import BUILD_SRC, PYTHON, RUNNER  # noqa: E402
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from pymemtrace.trace import targets  # noqa: E402
from pymemtrace.trace.aliases import FileAliases  # noqa: E402

CROSS_CC = shutil.which("aarch64-linux-gnu-gcc")  # tools/install-deps.sh installs it
PROBED = "#include <sys/sdt.h>\nvoid note(void *p, unsigned long n) " \
         "{ DTRACE_PROBE2(pymemtrace, alloc, p, n); }\n"
WORK = "from pymemtrace import cMemLeak\n\nkept = cMemLeak.CMalloc(4321)\n"


@pytest.fixture
def cross_dir(tmp_path):
    """A directory holding an aarch64 extension with a pymemtrace probe, and work.py."""
    assert CROSS_CC, "aarch64-linux-gnu-gcc is missing: run tools/install-deps.sh"
    sdt_h = subprocess.run(["cc", "-x", "c", "-E", "-H", "-"], input="#include <sys/sdt.h>\n",
                           capture_output=True, text=True).stderr.splitlines()
    sdt_h = next(line[2:] for line in sdt_h if line.startswith(". "))
    include = tmp_path / "sdt-include"
    (include / "sys").mkdir(parents=True)
    for name in ("sdt.h", "sdt-config.h"):  # the host's generic header, not its include dir
        os.symlink(os.path.join(os.path.dirname(sdt_h), name), include / "sys" / name)
    (tmp_path / "probed.c").write_text(PROBED)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run([CROSS_CC, "-shared", "-fPIC", f"-idirafter{include}", "-o",
                    str(work / "foreign.cpython-311-aarch64-linux-gnu.so"),
                    str(tmp_path / "probed.c")], check=True)
    (work / "work.py").write_text(WORK)
    return work


def test_a_foreign_extension_in_the_working_directory_is_passed_over_and_said(cross_dir):
    aliases, passed = FileAliases(), []
    try:
        found = targets._aliases_of([str(cross_dir / "foreign.cpython-311-aarch64-linux-gnu.so")],
                                    aliases, passed)
    finally:
        aliases.close()
    assert found == [] and passed == [("built for aarch64, not this machine's x86-64",
                                       str(cross_dir / "foreign.cpython-311-aarch64-linux-gnu.so"))]


def test_python_m_with_a_foreign_extension_in_the_working_directory_is_traced(cross_dir):
    result = subprocess.run([PYTHON, RUNNER, "--", PYTHON, "-m", "work"], capture_output=True,
                            text=True, timeout=180, cwd=cross_dir,
                            env=dict(os.environ, PYTHONPATH=BUILD_SRC))
    assert result.returncode == 0, result.stderr[-1500:]
    assert "4321" in result.stdout and "work.py:3" in result.stdout, result.stdout


def test_lib_naming_a_foreign_extension_is_one_clear_error(cross_dir):
    foreign = str(cross_dir / "foreign.cpython-311-aarch64-linux-gnu.so")
    result = subprocess.run([PYTHON, RUNNER, "--lib", foreign, "--", "/bin/true"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "is built for aarch64, not this machine's x86-64" in result.stderr, result.stderr
