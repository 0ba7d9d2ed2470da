# SPDX-License-Identifier: MIT
"""Root runs the system's bpftrace, never the one a PATH names: a PATH carried through sudo may
lead to another user's directory, whose `bpftrace` would then run as root. Looked for in the
system directories (bpftrace_binary.SYSTEM_DIRECTORIES), each and the binary root's and writable
by root only, else one clear error. A second, unprivileged account owns the fake; real bpftrace
runs. Run through tests/support/run_pytest.py with PYTHONPATH=<builddir>/src."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from other_user import other_user  # noqa: E402
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from pymemtrace.trace import bpftrace_binary  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402

FAKE = "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran-as-$(id -u)\"\nexit 1\n"


@pytest.fixture(scope="module")
def user():
    with other_user() as account:
        yield account


@pytest.fixture
def fake_dir(user):
    """The other user's directory holding a `bpftrace` that records who ran it."""
    directory = os.path.join(user.home, "bin")
    user.run(["mkdir", "-p", directory], check=True)
    fake = os.path.join(directory, "bpftrace")
    user.run(["sh", "-c", f"cat > {fake} && chmod 755 {fake}"], input=FAKE, text=True,
             check=True)
    return directory


def test_a_bpftrace_on_a_path_of_another_users_directory_is_never_run(fake_dir):
    cmemleak = [os.path.join(LIB, name) for name in sorted(os.listdir(LIB))
                if name.startswith("cMemLeak") and name.endswith(".so")][0]
    result = subprocess.run(
        [PYTHON, RUNNER, "--lib", cmemleak, "--", PYTHON, "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); from pymemtrace import cMemLeak; "
         "kept = cMemLeak.CMalloc(999)", BUILD_SRC],
        capture_output=True, text=True, timeout=180,
        env=dict(os.environ, PATH=f"{fake_dir}:/usr/sbin:/usr/bin:/sbin:/bin"))
    assert os.listdir(fake_dir) == ["bpftrace"], "the other user's bpftrace ran"
    assert result.returncode == 0 and "999" in result.stdout, result.stderr[-800:]


def test_a_bpftrace_in_a_directory_another_user_owns_is_one_clear_error(fake_dir, user):
    with pytest.raises(Failure, match=f"{fake_dir}/bpftrace is not run as root: it belongs to uid "
                                      f"{user.uid}") as failure:
        bpftrace_binary.find((fake_dir, "/usr/bin"))
    assert "apt-get install bpftrace" in failure.value.fix
    assert os.listdir(fake_dir) == ["bpftrace"]


def test_no_bpftrace_in_the_system_directories_says_where_it_looked(tmp_path):
    with pytest.raises(Failure, match=f"bpftrace is not installed \\(looked for in {tmp_path}; "
                                      "PATH is not used\\)"):
        bpftrace_binary.find((str(tmp_path),))


def test_the_system_bpftrace_is_found_in_a_system_directory():
    assert os.path.dirname(bpftrace_binary.path()) in bpftrace_binary.SYSTEM_DIRECTORIES
