# SPDX-License-Identifier: MIT
"""The files root opens because a user or a target named them (issue 19, item 3): a FIFO, or a
link swapped to one, in a `--lib` directory does not block the scan and the run says what it
passed over; another user's symbolic link is not followed; notes are read within a budget per
file, however much a file claims. A second, unprivileged account (tests/support/other_user.py)
owns the directories and plays the swaps.

Run through tests/support/run_pytest.py (root), with PYTHONPATH=<builddir>/src.
PYMEMTRACE_RUNNER may name another runner (to show a test fails on an older one).
"""
import glob
import os
import pwd
import shutil
import struct
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from other_user import other_user  # noqa: E402
from runner import LIB, PYTHON  # noqa: E402
from pymemtrace.trace import elf, safe_open, targets  # noqa: E402
from pymemtrace.trace.aliases import FileAliases  # noqa: E402

RUNNER = os.environ.get("PYMEMTRACE_RUNNER", os.path.join(ROOT, "toolkit", "pymemtrace-trace"))
CMEMLEAK = glob.glob(os.path.join(LIB, "cMemLeak*.so"))[0]

# Run as the other user: swaps each NAME between a link to a regular library and a link to a
# FIFO as fast as it can (renameat2 RENAME_EXCHANGE: one atomic syscall a swap), so a check of
# the name and an open of it meet different files.
SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
names = [(name.encode(), b"." + name.encode()) for name in sys.argv[2:]]
while True:
    for name, other in names:
        libc.syscall(316, -100, name, -100, other, 2)  # renameat2(AT_FDCWD..., RENAME_EXCHANGE)
"""


@pytest.fixture(scope="module")
def user():
    with other_user() as account:
        yield account


def as_user(user, path):
    os.chown(path, user.uid, user.gid, follow_symlinks=False)
    return path


@pytest.fixture
def lib_dir(user):
    """A directory the other user owns, to be given as --lib DIR."""
    path = os.path.join(user.home, f"lib{time.monotonic_ns()}")
    os.mkdir(path)
    as_user(user, path)
    yield path
    shutil.rmtree(path)


def run_runner(args, timeout):
    """(exit status, stderr, seconds) of the runner; a run still going after `timeout` seconds is
    killed and counts as blocked (None)."""
    start = time.monotonic()
    proc = subprocess.Popen([PYTHON, "-I", RUNNER, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd="/")
    try:
        err = proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()  # its children (the scan) die with it or by their own timeout
        return None, proc.communicate()[1].decode(errors="replace"), time.monotonic() - start
    return proc.returncode, err.decode(errors="replace"), time.monotonic() - start


def test_fifos_and_links_swapped_to_fifos_in_a_lib_directory_never_block_the_scan(user, lib_dir):
    """A FIFO named like an extension, a link to it, and links the other user keeps swapping
    between a real library and a FIFO: the scan (root's, the runner runs as root with no sudo
    user) blocked in open() until its 60 s timeout, then said 'no library'. Now it reads none of
    them (a link is not followed, a FIFO is not opened) and the error names them."""
    fifo = os.path.join(lib_dir, "fifo.so")
    os.mkfifo(fifo)
    as_user(user, fifo)
    real = as_user(user, shutil.copy(CMEMLEAK, os.path.join(user.home, "real.so")))
    os.symlink(fifo, os.path.join(lib_dir, "to_fifo.so"))
    as_user(user, os.path.join(lib_dir, "to_fifo.so"))
    swapped = [f"swap{n}.so" for n in range(8)]
    for name in swapped:
        os.symlink(real, os.path.join(lib_dir, name))
        os.symlink(fifo, os.path.join(lib_dir, "." + name))
        as_user(user, os.path.join(lib_dir, name))
        as_user(user, os.path.join(lib_dir, "." + name))
    swapper = user.popen([PYTHON, "-c", SWAPPER, lib_dir, *swapped])
    try:
        for _ in range(3):  # each scan meets the swaps anew
            status, err, seconds = run_runner(["--lib", lib_dir, "--", "/bin/true"], timeout=45)
            assert status is not None, f"the runner was still scanning after {seconds:.0f} s"
            assert status == 2 and "Traceback" not in err, err[-1000:]
            assert "no library with pymemtrace probes under it" in err, err[-1000:]
            assert f"a FIFO: {fifo}" in err and "a symbolic link: " in err, \
                f"the error does not name what was passed over: {err[-1000:]}"
    finally:
        swapper.kill()
        swapper.wait()


def test_lib_through_another_users_link_is_refused_with_the_link_named(user, lib_dir, tmp_path):
    """`--lib` naming a library through a link the other user owns (who can repoint it at any
    moment), or through root's link in that user's directory (which that user can replace):
    refused, one error naming the link. Root's link in root's directory is followed."""
    library = shutil.copy(CMEMLEAK, os.path.join(lib_dir, "ext.so"))
    link = os.path.join(lib_dir, "link.so")
    os.symlink(library, link)
    as_user(user, link)
    status, err, _ = run_runner(["--lib", link, "--", "/bin/true"], timeout=120)
    assert status == 2 and "Traceback" not in err, err[-1000:]
    assert f"{link} is a symbolic link owned by uid {user.uid}" in err, err[-1000:]
    os.chown(link, 0, 0, follow_symlinks=False)
    with pytest.raises(safe_open.Refused, match="in a directory another user can write"):
        os.close(safe_open.walked(link))
    roots_link = tmp_path / "roots_link.so"  # pytest's tmp_path: root's, 0700
    roots_link.symlink_to(library)
    fd = safe_open.walked(str(roots_link))
    try:
        assert os.fstat(fd).st_ino == os.stat(library).st_ino
    finally:
        os.close(fd)


def test_an_extension_on_the_commands_path_through_another_users_link_is_named(user, lib_dir):
    """The command's sys.path scan prints paths (as the command's user); root opens each by
    walking it. An extension that is the other user's link is not followed (root followed it
    before), and the run can say why nothing was found."""
    elsewhere = os.path.join(lib_dir, "not-a-package")  # readable by that user, never scanned
    os.mkdir(elsewhere)
    library = shutil.copy(CMEMLEAK, os.path.join(elsewhere, "real.so"))
    link = os.path.join(lib_dir, "ext.so")
    os.symlink(library, link)
    as_user(user, link)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": lib_dir}
    passed, aliases, here = [], FileAliases(), os.getcwd()
    try:
        os.chdir(lib_dir)  # on the sys.path of `python3 -c`
        found = targets.command_libraries(
            [PYTHON, "-c", "pass"], env, targets.CommandUser(pwd.getpwnam(user.name)), aliases,
            guess=False, passed=passed)
        found = {os.stat(alias).st_ino for alias in found}
    finally:
        os.chdir(here)
        aliases.close()
    assert os.stat(library).st_ino not in found, "root followed the other user's link"
    assert ("a symbolic link", link) in passed, passed


def test_a_fifo_given_as_lib_is_refused_without_blocking(user, lib_dir):
    fifo = os.path.join(lib_dir, "fifo.so")
    os.mkfifo(fifo)
    status, err, seconds = run_runner(["--lib", fifo, "--", "/bin/true"], timeout=45)
    assert status == 2 and "Traceback" not in err, err[-1000:]
    assert "a FIFO, not a regular file" in err, err[-1000:]


def sparse_elf(path, sections, size=16 << 20):
    """An ELF64 file (little-endian) whose section table lists `sections` SHT_NOTE sections of
    `size` bytes of zeros (empty notes), all over one hole: claimed, nothing on disk."""
    data_at, table_at = 1 << 20, 4096
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<HHI", header, 16, 3, 62, 1)  # ET_DYN, x86-64
    struct.pack_into("<Q", header, 0x28, table_at)
    struct.pack_into("<HHHHHH", header, 0x34, 64, 0, 0, 64, sections + 1, 0)
    table = bytes(64) + b"".join(struct.pack("<IIQQQQIIQQ", 0, 7, 0, 0, data_at, size, 0, 0, 4, 0)
                                 for _ in range(sections))
    with open(path, "wb") as out:
        out.write(header)
        out.seek(table_at)
        out.write(table)
        out.truncate(data_at + size)


def bytes_read():
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


@pytest.mark.parametrize("sections,size", [(1, 16 << 20), (64, 512 << 10)])
def test_a_file_claiming_huge_empty_notes_is_read_within_the_budget(tmp_path, sections, size):
    """One note section of 16 MiB, or 64 of 512 KiB: the reader read 16 MiB of either (and
    walked 1.4 million empty notes); now at most 1 MiB of notes a file, and 16384 notes,
    whatever it claims."""
    path = str(tmp_path / "decoy.so")
    sparse_elf(path, sections, size)
    before = bytes_read()
    assert elf.probes(path) == []
    read = bytes_read() - before
    assert read <= (1 << 20) + 65536, f"{read} bytes read for the notes of one file"


def test_thirty_files_of_huge_empty_notes_do_not_delay_the_scan(tmp_path):
    """30 sparse files each claiming 16 MiB of empty notes, beside a real library, under a
    `--lib` directory: the scan read them all (12 s before attaching, measured in the issue).
    Bound: 10 s (generous: a few hundred ms here), and the real library is still found."""
    for number in range(30):
        sparse_elf(str(tmp_path / f"decoy{number}.so"), 1)
    shutil.copy(CMEMLEAK, tmp_path / "real.so")
    aliases = FileAliases()
    try:
        start = time.monotonic()
        found, _scan = targets.directory_libraries(str(tmp_path), None, aliases)
        seconds = time.monotonic() - start
    finally:
        aliases.close()
    assert len(found) == 1, found
    assert seconds < 10, f"the scan of 30 decoys took {seconds:.1f} s"
