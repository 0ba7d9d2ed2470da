# SPDX-License-Identifier: MIT
"""Root runs nothing a traced process or another user controls (issue 19, item 1), and the held
command's two ways of failing are one-line errors, not tracebacks (item 7). A second,
unprivileged account (tests/support/other_user.py) owns the targets: a fake "python" that
carries CPython's probe notes and writes down who ran it with -c, and Debian's real python3 with
a sysconfig.py in the directory root runs the tracer from.

Run through tests/support/run_pytest.py (root, bpftrace), with PYTHONPATH=<builddir>/src.
PYMEMTRACE_RUNNER may name another runner (to show a test fails on an older one).
"""
import glob
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from other_user import other_user  # noqa: E402
from runner import LIB, PYTHON  # noqa: E402

RUNNER = os.environ.get("PYMEMTRACE_RUNNER", os.path.join(ROOT, "toolkit", "pymemtrace-trace"))

# A "python" with CPython's two probe notes the runner checks for. Run with -c it appends the
# uid that ran it to UIDS (what a hostile binary would do with root instead); otherwise it waits.
FAKE_PYTHON = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/sdt.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-c") == 0) {
        FILE *uids = fopen(UIDS, "a");
        if (uids) { fprintf(uids, "%u\n", (unsigned)getuid()); fclose(uids); }
        puts("1");
        return 0;
    }
    for (;;) {
        STAP_PROBE3(python, line, "f.py", "f", 1);
        STAP_PROBE3(python, function__return, "f.py", "f", 1);
        sleep(1);
    }
}
"""


@pytest.fixture(scope="module")
def user():
    with other_user() as account:
        yield account


def runner(args, cwd, env=None):
    """The runner started with `args` from `cwd`, its report in a file of its own."""
    report = tempfile.mktemp(prefix="pmt-report-")
    return subprocess.Popen([PYTHON, "-I", RUNNER, "-o", report, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop_when_attached(proc, timeout=120):
    """Waits until the runner says it traces (or ends), Ctrl-C's it; returns its stderr."""
    err, deadline = b"", time.monotonic() + timeout
    while proc.poll() is None and b"tracing PID" not in err and time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 0.5)[0]:
            err += os.read(proc.stderr.fileno(), 65536)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    return (err + rest).decode(errors="replace")


def object_allocator_on(target, cwd):
    """`-p PID --object-allocator` on the process `target` (a Popen, killed after), the runner
    started from `cwd` and stopped once attached; returns its stderr."""
    try:
        return stop_when_attached(runner(["-p", str(target.pid), "--object-allocator"], cwd=cwd))
    finally:
        target.kill()
        target.wait()


def recorded_uids(path):
    return open(path).read().split() if os.path.exists(path) else []


def test_root_never_runs_a_fake_python_it_traces_by_pid(user):
    """`-p PID --object-allocator` on a binary another user owns that carries CPython's probe
    notes: the runner used to run /proc/PID/exe -c '...' as root to ask about pymalloc; the
    binary recorded uid 0. Now what it needs is read from the ELF file."""
    source, binary = os.path.join(user.home, "fake.c"), os.path.join(user.home, "python3")
    uids = os.path.join(user.home, "uids")
    with open(source, "w") as out:
        out.write(FAKE_PYTHON)
    subprocess.run(["cc", "-O1", f'-DUIDS="{uids}"', "-o", binary, source], check=True)
    os.chown(binary, user.uid, user.gid)
    err = object_allocator_on(user.popen([binary]), cwd=user.home)
    assert "0" not in recorded_uids(uids), f"root ran the target's binary: {err[-600:]}"
    assert "Traceback" not in err, err[-1500:]


def test_root_never_imports_a_sysconfig_from_its_working_directory(user):
    """Debian's python3 as the `-p` target, the runner started from a directory another user
    owns holding sysconfig.py: root ran python3 -c 'import sysconfig' there, importing it."""
    work, marker = os.path.join(user.home, "work"), os.path.join(user.home, "imported-by")
    os.mkdir(work)
    with open(os.path.join(work, "sysconfig.py"), "w") as planted:
        planted.write(f"import os\nopen({marker!r}, 'a').write('%d\\n' % os.getuid())\n")
    for path in (work, os.path.join(work, "sysconfig.py")):
        os.chown(path, user.uid, user.gid)
    err = object_allocator_on(
        user.popen([PYTHON, "-c", "import time\nwhile True: time.sleep(0.2)"]), cwd=work)
    assert "0" not in recorded_uids(marker), f"root imported {work}/sysconfig.py: {err[-600:]}"
    assert "Traceback" not in err, err[-1500:]


def test_object_allocator_under_sudo_traces_the_command(user):
    """`sudo pymemtrace-trace --object-allocator -- CMD` failed with a PermissionError traceback
    (the pymalloc question was run as the user on root's /proc/<runner>/fd/N)."""
    env = dict(os.environ, SUDO_UID=str(user.uid), SUDO_GID=str(user.gid), SUDO_USER=user.name)
    proc = runner(["--object-allocator", "--", PYTHON, "-c",
                   "x = [bytearray(100) for _ in range(100)]"], cwd=user.home, env=env)
    _, err = proc.communicate(timeout=180)
    err = err.decode(errors="replace")
    assert "Traceback" not in err, err[-1500:]
    assert proc.returncode == 0, err[-800:]


def held_child(proc, timeout=60):
    """The PID of the command the runner forked and holds, once it waits to be released: the
    child that has not exec'd yet (its command line is still the runner's; the scan and bpftrace
    exec theirs) and sleeps reading its pipe (the scan's child, before it execs, does not)."""
    deadline, runner_pid = time.monotonic() + timeout, proc.pid
    # From its arguments: /proc/PID/cmdline read just after the spawn may still be empty.
    runner_line = b"".join(os.fsencode(arg) + b"\0" for arg in proc.args)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(f"/proc/{runner_pid}/task/{runner_pid}/children") as children:
                pids = children.read().split()
        except OSError:
            return None
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as line, \
                        open(f"/proc/{pid}/wchan") as wchan:
                    if line.read() == runner_line and "pipe_read" in wchan.read():
                        return int(pid)
            except OSError:
                pass
        time.sleep(0.002)
    return None


def test_a_held_command_killed_before_release_is_a_one_line_error(user):
    """Killing the command while the runner holds it (before bpftrace is ready): the runner's
    release then met a closed pipe, a BrokenPipeError traceback. Now: what happened, one line."""
    proc = runner(["--lib", LIB, "--", PYTHON, "-c", "pass"], cwd=user.home)
    child = held_child(proc)
    assert child is not None, \
        f"no held command found; the runner: exit {proc.poll()}, {proc.communicate()[1][-800:]}"
    os.kill(child, signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    err = err.decode(errors="replace")
    assert "Traceback" not in err, err[-1500:]
    errors = [line for line in err.splitlines() if line.startswith("pymemtrace-trace: error:")]
    assert len(errors) == 1 and "ended before tracing began" in errors[0], \
        f"exit {proc.returncode}: {err[-800:]}"
    assert "killed by signal 9" in errors[0] and proc.returncode == 2, err[-800:]


# Debian's python3 and, where pyenv is installed, the libpython of each of its versions.
PYMALLOC_BUILDS = ["/usr/bin/python3.11"] + sorted(
    glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/lib/libpython3*.so.1.0")))


@pytest.mark.parametrize("path", PYMALLOC_BUILDS)
def test_pymalloc_is_read_from_the_binary(path):
    """What the runner asked a Python by running it, read from its ELF file: each of these
    was built with pymalloc (sysconfig says WITH_PYMALLOC=1 for every one)."""
    from pymemtrace.trace import pythonbinary
    assert pythonbinary.uses_pymalloc(path) is True


def test_a_binary_without_pymalloc_or_without_sections_says_so(tmp_path):
    from pymemtrace.trace import pythonbinary
    assert pythonbinary.uses_pymalloc("/bin/true") is False
    stripped = tmp_path / "no-sections"
    with open("/bin/true", "rb") as original:
        header = bytearray(original.read(64))
    header[0x28:0x30] = bytes(8)  # e_shoff 0: no section table
    stripped.write_bytes(bytes(header))
    assert pythonbinary.uses_pymalloc(str(stripped)) is None
