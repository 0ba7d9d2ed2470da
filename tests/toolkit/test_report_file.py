# SPDX-License-Identifier: MIT
"""-o as a hostile local user would try it (issue 19, items 2 and 7): a second account owns the
directories and plants links to a block device, a root-owned FIFO and a root-only directory, or
races a rename loop; the report never lands there. The report file belongs to the user it is for
(sudo, --user), is opened with that user's rights, and a killed run leaves no temporary.

Run through tests/support/run_pytest.py (root, bpftrace), PYTHONPATH=<builddir>/src. Every run
is the cheapest that writes a report: `--lib cMemLeak -- python3 -c pass`.
"""
import glob
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402
from other_user import other_user  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402
from pymemtrace.trace.output import ReportFile  # noqa: E402
from runner import BUILD_SRC, PYTHON, RUNNER  # noqa: E402

RUNNER = os.environ.get("PYMEMTRACE_RUNNER", RUNNER)  # another runner, to show a test fails there

CMEMLEAK = glob.glob(os.path.join(BUILD_SRC, "pymemtrace", "cMemLeak*.so"))[0]
SHORT_RUN = ["--lib", CMEMLEAK, "--", PYTHON, "-c", "pass"]


@pytest.fixture(scope="module", autouse=True)
def tracer_ready():
    tracing.mount_tracefs()


@pytest.fixture
def mallory():
    """The other user, whose home (readable by all) is where the links are planted."""
    with other_user() as user:
        yield user


@pytest.fixture
def root_only(tmp_path):
    """A directory only root may enter, as /root is."""
    directory = tmp_path / "root-only"
    directory.mkdir(mode=0o700)
    return str(directory)


def root_env(sudo=None):
    """The environment of root's own run, or of a run through sudo by `sudo` (an OtherUser)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SUDO_")}
    if sudo:
        env.update(SUDO_UID=str(sudo.uid), SUDO_GID=str(sudo.gid), SUDO_USER=sudo.name)
    return env


def run_with_report(path, sudo=None, args=()):
    return subprocess.run([PYTHON, "-I", RUNNER, "-o", path, *args, *SHORT_RUN],
                          capture_output=True, text=True, timeout=180, env=root_env(sudo))


def planted_link(user, target, name):
    """`name` in the user's home: a symbolic link to `target` that the user made."""
    user.run(["ln", "-s", target, name], check=True)
    return os.path.join(user.home, name)


# --- links another user planted -------------------------------------------------------------

def test_a_link_to_a_block_device_in_another_users_directory_never_writes_the_device(
        mallory, tmp_path):
    disk = tmp_path / "disk"
    disk.write_bytes(b"\xaa" * (1 << 20))
    device = subprocess.run(["losetup", "-f", "--show", str(disk)], capture_output=True,
                            text=True, check=True).stdout.strip()
    try:
        result = run_with_report(planted_link(mallory, device, "report"))
        with open(device, "rb") as contents:
            first = contents.read(4096)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    assert first == b"\xaa" * 4096, f"the device was written: {first[:80]!r}"
    assert result.returncode == 2 and "symbolic link" in result.stderr, result.stderr


def test_a_link_to_a_root_owned_fifo_never_receives_the_report(mallory, root_only):
    fifo = os.path.join(root_only, "fifo")
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader waits: a writer gets through
    try:
        result = run_with_report(planted_link(mallory, fifo, "report"))
        received = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert received == b"", f"the FIFO received: {received[:200]!r}"
    assert result.returncode == 2 and "symbolic link" in result.stderr, result.stderr


def test_a_link_on_a_directory_of_the_path_never_puts_the_report_in_a_root_only_directory(
        mallory, root_only):
    link = planted_link(mallory, root_only, "out")
    result = run_with_report(os.path.join(link, "report"))
    assert os.listdir(root_only) == []
    assert result.returncode == 2 and "symbolic link" in result.stderr, result.stderr


def test_links_of_root_and_of_the_reports_user_are_followed(mallory, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to("real")  # root's, in root's directory: as /var/run -> /run
    result = run_with_report(str(tmp_path / "via" / "report"))
    assert result.returncode == 0 and os.listdir(tmp_path / "real") == ["report"], result.stderr
    mallory.run(["mkdir", "reports"], check=True)
    link = planted_link(mallory, "reports", "latest")  # the sudo user's own link, in their home
    result = run_with_report(os.path.join(link, "report"), sudo=mallory)
    assert result.returncode == 0, result.stderr
    assert os.listdir(os.path.join(mallory.home, "reports")) == ["report"]


ODD_PATHS = [  # (what -o names, links made first in the test's directory, the error's words)
    ("loop", {"loop": "loop2", "loop2": "loop"}, "Too many levels of symbolic links"),
    ("loop/report", {"loop": "loop2", "loop2": "loop"}, "Too many levels of symbolic links"),
    ("root", {"root": "/"}, "a link to a directory"),
    ("up", {"up": ".."}, "a link to a directory"),
    ("dangling", {"dangling": "nowhere"}, "a symbolic link to a file (or to nothing)"),
    ("missing/report", {}, "No such file or directory"),
    ("sub/..", {}, "is a directory"),
    ("/proc/self/fd/{regular}", {}, "a symbolic link to a file"),  # the kernel's link
]


@pytest.mark.parametrize("named, links, error", ODD_PATHS, ids=[p[0] for p in ODD_PATHS])
def test_odd_paths_are_one_clear_error(tmp_path, monkeypatch, named, links, error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for link, target in links.items():
        os.symlink(target, link)
    with open(tmp_path / "regular", "w") as regular:
        with pytest.raises(Failure, match=re.escape(error)):
            ReportFile(named.format(regular=regular.fileno()))
    assert sorted(os.listdir(tmp_path)) == sorted(["sub", "regular", *links])


# Swaps ~/x between a real directory and a link to a root-only directory (renameat2's
# RENAME_EXCHANGE of x and y), as fast as it can, for at most a minute.
SWAPPER = """\
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.mkdir("y")
os.symlink(sys.argv[1], "x")
print("swapping", flush=True)
end = time.monotonic() + 60
while time.monotonic() < end:
    libc.renameat2(-100, b"x", -100, b"y", 2)  # AT_FDCWD, RENAME_EXCHANGE
"""


def test_a_rename_loop_never_leaves_a_report_in_a_root_only_directory(mallory, root_only):
    swapper = mallory.popen([PYTHON, "-c", SWAPPER, root_only], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert swapper.stdout.readline() == "swapping\n"
        outcomes = [run_with_report(os.path.join(mallory.home, "x", "report")).returncode
                    for _ in range(8)]
        assert swapper.poll() is None, "the swap loop ended before the runs did"
    finally:
        swapper.kill()
        swapper.wait()
    assert os.listdir(root_only) == [], outcomes
    assert set(outcomes) <= {0, 2}, outcomes


# --- whose file it is -----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sudo", "--user"])
def test_the_report_file_belongs_to_the_user_it_is_for(mallory, how):
    report = os.path.join(mallory.home, "report")
    if how == "sudo":
        result = run_with_report(report, sudo=mallory)
    else:
        result = run_with_report(report, args=["--user", mallory.name])
    assert result.returncode == 0, result.stderr
    owner = os.stat(report)
    assert (owner.st_uid, owner.st_gid) == (mallory.uid, mallory.gid)
    assert "Allocations by Python location" in open(report).read()


def test_a_sudo_user_cannot_put_a_report_where_they_could_not_write(mallory, root_only):
    result = run_with_report(os.path.join(root_only, "report"), sudo=mallory)
    assert result.returncode == 2 and "Permission denied" in result.stderr, result.stderr
    assert os.listdir(root_only) == []


def test_a_file_another_user_created_is_replaced_by_one_root_owns(mallory):
    shared = tempfile.mkdtemp(prefix="pmt-sticky-")  # as /tmp is
    os.chmod(shared, 0o1777)
    try:
        report = os.path.join(shared, "report")
        mallory.run(["sh", "-c", f"umask 0; echo planted > {report}"], check=True)
        result = run_with_report(report)
        assert result.returncode == 0, result.stderr
        info = os.stat(report)
        assert info.st_uid == 0 and not info.st_mode & 0o022, (info.st_uid, oct(info.st_mode))
        rewrite = mallory.run(["sh", "-c", f"echo forged > {report}"], capture_output=True)
        assert rewrite.returncode != 0 and "Allocations" in open(report).read()
    finally:
        shutil.rmtree(shared)


def test_a_sudo_user_is_told_before_tracing_that_another_users_file_in_tmp_is_not_theirs(
        mallory):
    shared = tempfile.mkdtemp(prefix="pmt-sticky-")  # as /tmp is
    os.chmod(shared, 0o1777)
    try:
        report = os.path.join(shared, "report")
        mallory.run(["sh", "-c", f"echo planted > {report}"], check=True)
        with other_user() as reader:
            result = run_with_report(report, sudo=reader)
        assert result.returncode == 2 and "sticky" in result.stderr, result.stderr
        assert open(report).read() == "planted\n"
    finally:
        shutil.rmtree(shared)


# --- no temporary left ----------------------------------------------------------------------

# Prints its PID, then waits until stdin closes.
WAITING = "import os, sys; print('pid', os.getpid(), flush=True); sys.stdin.read()"


def test_a_runner_killed_while_the_report_is_open_leaves_nothing_behind(tmp_path):
    runner = subprocess.Popen([PYTHON, "-I", RUNNER, "-o", str(tmp_path / "report"),
                               "--lib", CMEMLEAK, "--", PYTHON, "-c", WAITING],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=root_env())
    try:
        assert runner.stdout.readline().startswith("pid "), runner.stderr.read()
        runner.send_signal(signal.SIGKILL)  # traced: the report file is open, not yet named
        runner.wait(timeout=60)
    finally:
        runner.stdin.close()  # the command ends
        runner.kill()
    assert os.listdir(tmp_path) == []


def test_the_next_run_removes_its_users_stale_temporaries_only(mallory):
    """A kill between naming a temporary and renaming it over FILE leaves the temporary; the
    next run for the same user and directory removes it once it is a minute old."""
    def temporary(suffix, owner, age):
        path = os.path.join(mallory.home, ".pymemtrace-report-" + suffix)
        with open(path, "w") as out:
            out.write("an earlier report\n")
        os.chown(path, owner, owner)
        os.utime(path, (time.time() - age, time.time() - age))
        return path
    stale = temporary("0123456789ab", mallory.uid, 120)
    fresh = temporary("ba9876543210", mallory.uid, 0)
    roots = temporary("00000000000f", 0, 120)
    unlike = temporary("not-ours", mallory.uid, 120)
    result = run_with_report(os.path.join(mallory.home, "report"), sudo=mallory)
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(stale)
    assert all(os.path.exists(path) for path in (fresh, roots, unlike))


def test_dev_stdout_still_receives_the_report():
    result = subprocess.run([PYTHON, "-I", RUNNER, "-o", "/dev/stdout", *SHORT_RUN],
                            capture_output=True, text=True, timeout=180, env=root_env())
    assert result.returncode == 0, result.stderr
    assert "Allocations by Python location" in result.stdout
