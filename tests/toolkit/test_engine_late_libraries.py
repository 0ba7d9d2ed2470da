# SPDX-License-Identifier: MIT
"""pymemtrace-trace on its engine with libraries nobody named (issue 20): a command that gets
its extension through `env PYTHONPATH=... bash -c "python3 ..."`, and a -p target that imports
one only after the runner attached, are traced with no --lib; the library's window before its
attach is stated (exit 3). Before, the runner refused both (no library found) or, given the
library of another build, reported the command's blocks as a stated miss. Run through
tests/support/run_pytest.py, as root."""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "src"))
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402

from pymemtrace.trace import elf, procfs  # noqa: E402

PY_PROBES = ("pyalloc", "pyrealloc", "pyfree")
# Imports cMemLeak, waits for a line, then holds 7 blocks and ends without freeing them.
COMMAND = ("from pymemtrace import cMemLeak; import os, sys; print('imported', flush=True); "
           "sys.stdin.readline(); b = [cMemLeak.CMalloc(100) for _ in range(7)]; os._exit(0)")


def package_copy(directory):
    """A copy of the built package (another file than the build's cMemLeak, which a runner
    started from the source tree may attach to on its own): the directory to put on
    PYTHONPATH, and the copy's cMemLeak."""
    package = os.path.join(directory, "pymemtrace")
    os.mkdir(package)
    shutil.copy(os.path.join(LIB, "__init__.py"), package)
    name = next(n for n in os.listdir(LIB) if n.startswith("cMemLeak.") and n.endswith(".so"))
    shutil.copy(os.path.join(LIB, name), package)
    return directory, os.path.join(package, name)


def wait_armed(pid, library, timeout=30):
    """Until `library`'s py* semaphores are set in process `pid` (the engine attached there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        addresses = procfs.runtime_addresses(pid, library,
                                             elf.semaphore_addresses(library, PY_PROBES))
        if len(addresses) == 3 and procfs.wait_semaphores(
                pid, list(addresses.values()), lambda values: all(values), 0.1):
            return
        time.sleep(0.05)
    raise AssertionError(f"the semaphores of {library} were not set in PID {pid}")


def test_env_pythonpath_bash_c_python_from_root_is_traced_with_no_lib(tmp_path):
    pythonpath, library = package_copy(str(tmp_path))
    command = ["env", f"PYTHONPATH={pythonpath}", "bash", "-c", f'{PYTHON} -c "{COMMAND}"']
    runner = subprocess.Popen([PYTHON, RUNNER, "--engine", "libbpf", "--report", "leaks",
                               "--json", "--", *command], cwd="/", stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline() == "imported\n"
        # env and bash exec: the runner's child is the Python that imported cMemLeak (its other
        # child is the engine, started first: docs/engine.md, "Start-up").
        children = open(f"/proc/{runner.pid}/task/{runner.pid}/children").read().split()
        child = next(int(pid) for pid in children
                     if open(f"/proc/{pid}/comm").read().strip() != "pymemtrace-engi")
        wait_armed(child, library)
        out, err = runner.communicate("go\n", timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    rows = json.loads(out)
    assert [(r["file"], r["function"], r["count"], r["bytes"]) for r in rows] == [
        ("<string>", "<listcomp>", 7, 700)]
    assert runner.returncode == 3, err
    assert f": {library} in PID {child}, " in err and "--lib" in err


def test_env_pythonpath_python_from_root_is_traced_whole_with_no_lib(tmp_path):
    # Behind env, the runner looks under the PYTHONPATH env gives the command's Python: the
    # library is attached before the command runs, no window. Before, env was not followed
    # (not a Python: nothing looked for), and the copy was attached only once mapped: exit 3.
    pythonpath, library = package_copy(str(tmp_path))
    done = subprocess.run([PYTHON, RUNNER, "--report", "leaks", "--json", "--", "env",
                           f"PYTHONPATH={pythonpath}", PYTHON, "-c", COMMAND], cwd="/",
                          input="go\n", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported\n"), done.stdout
    rows = json.loads(done.stdout[len("imported\n"):])
    assert [(r["file"], r["function"], r["count"], r["bytes"]) for r in rows] == [
        ("<string>", "<listcomp>", 7, 700)]
    assert "mapped before" not in done.stderr, done.stderr


def test_a_pid_that_imports_its_extension_after_the_attach_is_traced_with_no_lib():
    env = dict(os.environ, PYTHONPATH=BUILD_SRC)
    target = subprocess.Popen([PYTHON, "-c", "import sys; sys.stdin.readline(); " + COMMAND],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--json", "-p",
                               str(target.pid)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in runner.stderr:
            assert "error" not in line, line + runner.stderr.read()
            if "tracing PID" in line:
                break
        target.stdin.write("import\n")
        target.stdin.flush()
        assert target.stdout.readline() == "imported\n"
        cmemleak = os.path.join(LIB, next(n for n in os.listdir(LIB)
                                          if n.startswith("cMemLeak.") and n.endswith(".so")))
        wait_armed(target.pid, cmemleak)
        target.stdin.write("go\n")
        target.stdin.flush()
        target.wait(timeout=60)
        out, err = runner.communicate(timeout=120)
    finally:
        for process in (runner, target):
            if process.poll() is None:
                process.kill()
                process.wait()
    rows = json.loads(out)
    assert [(r["function"], r["count"], r["bytes"]) for r in rows] == [("<listcomp>", 7, 700)]
    assert runner.returncode == 3, err
    assert "mapped before their probes could be attached" in err
