# SPDX-License-Identifier: MIT
"""When the command's Python is not what it seems, the runner says which it found and how to name
the right one (issue 22): `python3` first on PATH as a pyenv shim or another wrapper script (a
real bash script that execs Debian's Python, as pyenv's shims do), or a CPython other than the one
the --lib extension was built for (a copy of the built cMemLeak under another CPython's ABI tag:
the runner reads the tag from the name). A command that is what it seems gets no note. Each run
is a real trace.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace), with
PYTHONPATH=<builddir>/src.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from runner import LIB, PYTHON, RUNNER  # noqa: E402

WRAPPER = '#!/usr/bin/env bash\nexec /usr/bin/python3 "$@"\n'


def cmemleak():
    built = [name for name in os.listdir(LIB)
             if name.startswith("cMemLeak") and name.endswith(".so")]
    assert len(built) == 1, built
    return os.path.join(LIB, built[0])


def runner_stderr(args, path=None):
    system = "/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": f"{path}:{system}" if path else system}
    result = subprocess.run([PYTHON, RUNNER, *args], capture_output=True, text=True, env=env,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-800:]
    return result.stderr


def wrapper_in(directory):
    os.makedirs(directory)
    script = os.path.join(directory, "python3")
    with open(script, "w") as file:
        file.write(WRAPPER)
    os.chmod(script, 0o755)
    return script


def test_a_pyenv_shim_first_on_path_is_named_with_how_to_name_the_python(tmp_path):
    shim = wrapper_in(str(tmp_path / ".pyenv" / "shims"))
    err = runner_stderr(["--lib", cmemleak(), "--", "python3", "-c", "pass"],
                        os.path.dirname(shim))
    assert f"note: python3 is {shim}, a pyenv shim" in err, err
    assert '-- "$(pyenv which python3)"' in err, err


def test_a_wrapper_script_first_on_path_is_named_with_how_to_name_the_python(tmp_path):
    wrapper = wrapper_in(str(tmp_path / "bin"))
    err = runner_stderr(["--lib", cmemleak(), "--", "python3", "-c", "pass"],
                        os.path.dirname(wrapper))
    assert f"note: python3 is {wrapper}, a wrapper script" in err, err
    assert "-- /usr/bin/python3 ..." in err, err


def test_a_python_other_than_the_extensions_is_named_with_both_versions(tmp_path):
    version = subprocess.run([PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    other = "3.99"
    renamed = str(tmp_path / "cMemLeak.cpython-399-x86_64-linux-gnu.so")
    shutil.copy(cmemleak(), renamed)
    err = runner_stderr(["--lib", renamed, "--", PYTHON, "-c", "pass"])
    assert f"CPython {version}, but the --lib extensions are built for CPython {other}" in err, err


def test_a_command_that_is_what_it_seems_gets_no_note():
    err = runner_stderr(["--lib", cmemleak(), "--", PYTHON, "-c", "pass"])
    assert "note:" not in err, err
