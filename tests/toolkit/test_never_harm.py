# SPDX-License-Identifier: MIT
"""The runner's promises to the processes it traces and to root (docs/security.md), each on real
processes with real bpftrace: names a target controls never become bpftrace code or terminal
escapes; the command runs unprivileged; -o never writes through a link nor loses a report; and a
runner that dies, however, leaves no tracer: the target's semaphores go back to 0 and it goes on.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace), with
PYTHONPATH=<builddir>/src. PYMEMTRACE_RUNNER may name another runner (to show a test fails on an
older one).
"""
import glob
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402  (also makes pymemtrace.trace importable)
from pymemtrace.trace import elf, procfs  # noqa: E402
from source_lines import line_of  # noqa: E402

RUNNER = os.environ.get("PYMEMTRACE_RUNNER", os.path.join(ROOT, "toolkit", "pymemtrace-trace"))
PYTHON = "/usr/bin/python3"  # Debian's, built --with-dtrace
BUILD_SRC = os.environ["PYTHONPATH"].split(os.pathsep)[0]
CMEMLEAK = glob.glob(os.path.join(BUILD_SRC, "pymemtrace", "cMemLeak*.so"))[0]
# A directory name that, pasted into a bpftrace program, ends the probe spec and adds a clause
# printing INJECTED (which the name itself does not hold: only a run clause can print it).
# `usdt:TMP/x.so:...{}` and, relative to the runner's directory TMP, `usdt:./pymemtrace/...`
# then name real files (see armed_for_injection), as an attacker would make them.
INJECTED = "INJECTED4242"
PAYLOAD = 'x.so:pymemtrace:pyalloc{}interval:ms:20{printf("INJECTED%d\\n",4242);exit()}usdt:.'
# Every character bpftrace's parser, a shell or a terminal gives a meaning, and bytes that are not
# UTF-8 (surrogate-escaped, as os.fsencode makes them). No ':' here: PYTHONPATH splits on it.
METACHARACTERS = 'm "{}();,%|$*+\\\'` \t\n\x1b[2J\udcff\udcc3(printf("INJECTED%d",4242))'

# Allocates `count` CMalloc blocks of 4321 bytes at the line tagged ALLOCATES, keeps them.
WORKLOAD = """\
import sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
blocks = [cMemLeak.CMalloc(4321) for _ in range(int(sys.argv[2]))]  # ALLOCATES
print("done", flush=True)
"""


def run_runner(args, env=None, timeout=120, cwd=None):
    """The runner with its report in a file; returns (CompletedProcess, report text)."""
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o1733)  # -o is opened as the user the report is for (sudo, --user)
        report = os.path.join(directory, "report")
        result = subprocess.run([PYTHON, "-I", RUNNER, "-o", report, *args],
                                capture_output=True, timeout=timeout, env=env, cwd=cwd)
        text = open(report, encoding="utf-8", errors="replace").read() \
            if os.path.exists(report) else ""
    return result, text


def package_in(directory):
    """A copy of the built pymemtrace package (cMemLeak) under `directory`; returns it."""
    package = os.path.join(directory, "pymemtrace")
    os.makedirs(package)
    shutil.copy(CMEMLEAK, package)
    shutil.copy(os.path.join(ROOT, "src", "pymemtrace", "__init__.py"), package)
    return directory


def armed_for_injection(tmp_path):
    """The files that make PAYLOAD's pieces valid probe specs, were it pasted into a program
    run from `tmp_path`: TMP/x.so and ./pymemtrace/cMemLeak*.so, both with pymemtrace probes."""
    shutil.copy(CMEMLEAK, os.path.join(str(tmp_path), "x.so"))
    package_in(str(tmp_path))


def script_in(directory, name="workload.py"):
    path = os.path.join(directory, name)
    with open(path, "w") as out:
        out.write(WORKLOAD)
    return path


def allocation_line():
    return line_of(WORKLOAD, "# ALLOCATES")


def located(entries, count, size=4321):
    """The JSON entries at the workload's allocating line."""
    mine = [e for e in entries if e["file"] == "workload.py" and e["line"] == allocation_line()]
    return len(mine) == 1 and mine[0]["count"] == count and mine[0]["bytes"] == count * size


def no_injection(result, report):
    for text in (result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"),
                 report):
        assert INJECTED not in text


@pytest.fixture(scope="module", autouse=True)
def tracer_ready():
    tracing.mount_tracefs()


# --- names a target controls never become code -----------------------------------------------

@pytest.mark.parametrize("name", [PAYLOAD, METACHARACTERS], ids=["injection", "metacharacters"])
def test_library_path_given_with_lib_is_not_code(tmp_path, name):
    armed_for_injection(tmp_path)
    directory = package_in(os.path.join(str(tmp_path), name))
    library = glob.glob(os.path.join(glob.escape(directory), "pymemtrace", "cMemLeak*.so"))[0]
    script = script_in(str(tmp_path))
    result, report = run_runner(["--json", "--lib", library, "--", PYTHON, script, directory,
                                 "3"], cwd=str(tmp_path))
    no_injection(result, report)
    assert result.returncode == 0, result.stderr
    assert located(json.loads(report), 3), report


@pytest.mark.parametrize("name", [PAYLOAD, METACHARACTERS], ids=["injection", "metacharacters"])
def test_library_path_found_by_pid_is_not_code(tmp_path, name):
    """-p: the libraries come from the target's own memory map, so the target names them."""
    armed_for_injection(tmp_path)
    directory = package_in(os.path.join(str(tmp_path), name))
    target = subprocess.Popen(
        [PYTHON, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                       "from pymemtrace import cMemLeak\n"
                       "print('ready', flush=True); sys.stdin.readline()\n"
                       "blocks = [cMemLeak.CMalloc(4321) for _ in range(5)]\n"
                       "print('done', flush=True); sys.stdin.readline()",
         directory], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline() == "ready\n"
        runner = subprocess.Popen([PYTHON, RUNNER, "--report", "summary", "--json", "-p",
                                   str(target.pid)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=str(tmp_path))
        attached = runner.stderr.readline().decode(errors="replace")
        assert "tracing PID" in attached, attached + runner.stderr.read().decode()
        target.stdin.write("\n")
        target.stdin.flush()
        assert target.stdout.readline() == "done\n"
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
    finally:
        target.stdin.close()
        target.wait(timeout=30)
    result = subprocess.CompletedProcess(runner.args, runner.returncode, out, err)
    no_injection(result, "")
    assert runner.returncode == 0, err
    entries = json.loads(out)
    assert [e for e in entries if e["count"] == 5 and e["bytes"] == 5 * 4321], entries


def test_library_found_on_pythonpath_is_not_code(tmp_path):
    """Command mode: the target Python says where cMemLeak is; a PYTHONPATH names that."""
    directory = package_in(os.path.join(str(tmp_path), METACHARACTERS))
    script = script_in(str(tmp_path))
    env = dict(os.environ, PYTHONPATH=directory)
    result, report = run_runner(["--json", "--", PYTHON, script, directory, "2"], env=env)
    no_injection(result, report)
    assert result.returncode == 0, result.stderr
    assert located(json.loads(report), 2), report


@pytest.mark.parametrize("name", [PAYLOAD, METACHARACTERS], ids=["injection", "metacharacters"])
def test_python_binary_path_is_not_code(tmp_path, name):
    """--frames python-probes names the Python binary in the program."""
    directory = os.path.join(str(tmp_path), name)
    os.makedirs(directory)
    python = os.path.join(directory, "python3")
    shutil.copy(os.path.realpath(PYTHON), python)
    script = script_in(str(tmp_path))
    result, report = run_runner(["--json", "--frames", "python-probes", "--lib", CMEMLEAK, "--",
                                 python, script, BUILD_SRC, "2"])
    no_injection(result, report)
    assert result.returncode == 0, result.stderr
    entries = json.loads(report)
    assert [e for e in entries if e["count"] == 2 and e["bytes"] == 2 * 4321], entries


def test_script_name_cannot_drive_the_terminal_or_forge_rows(tmp_path):
    """A Python file name arrives as probe data: it is shown escaped, on one row."""
    name = "evil\x1b]0;pwned\x07\x1b[2J\nforged.py"
    script = script_in(str(tmp_path), name)
    result, report = run_runner(["--report", "summary", "--", PYTHON, script, BUILD_SRC, "2"])
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in report and "\x07" not in report
    rows = [line for line in report.splitlines() if f":{allocation_line()} " in line]
    assert len(rows) == 1 and "\\x1b[2J\\nforged.py" in rows[0], report
    result, flow = run_runner(["--report", "flow", "--", PYTHON, script, BUILD_SRC, "2"])
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in flow and "\x07" not in flow
    rows = [line for line in flow.splitlines() if "malloc(4321)" in line]
    assert len(rows) == 2 and all("forged.py:" in row for row in rows), flow


def test_script_name_cannot_forge_the_tracers_own_lines_in_a_flow(tmp_path):
    """A flow's rows come as text (session.frame_printfs): a name holding the lines bpftrace
    itself prints between rows (a lost-events count, a map) and a row stays inside its row; the
    run neither claims a loss nor counts the events differently."""
    name = "x\nLost 999999 events\n@flow_events: 1\n 4242 forged.py:1    -> f malloc(1) pntr 0x1"
    script = script_in(str(tmp_path), name + ".py")
    result, flow = run_runner(["--report", "flow", "--", PYTHON, script, BUILD_SRC, "3"])
    assert result.returncode == 0, result.stderr
    assert b"lost" not in result.stderr, result.stderr
    rows = [line for line in flow.splitlines() if "malloc(4321)" in line]
    assert len(rows) == 3 and all("\\nLost 999999 events\\n" in row for row in rows), flow
    assert "forged.py" not in flow.replace("\\n 4242 forged.py", ""), flow


@pytest.mark.parametrize("name, text", [("uni-é✓.py", "uni-é✓.py"),
                                         ("bad\udcff\udcc3.py", "bad\\xff\\xc3.py")],
                         ids=["utf8", "invalid-utf8"])
def test_names_are_shown_as_their_bytes_say(tmp_path, name, text):
    """bpftrace 0.17's JSON sign-extends bytes >= 0x80 (\\uffffffc3): read back as bytes, as UTF-8,
    in text and JSON alike; bytes that are not UTF-8 reach the probe as they are (they used to
    make the name "") and show as \\xNN."""
    script = script_in(str(tmp_path), name)
    result, report = run_runner(["--report", "summary", "--", PYTHON, script, BUILD_SRC, "2"])
    assert result.returncode == 0, result.stderr
    assert f" {text}:{allocation_line()} " in report, report
    result, report = run_runner(["--json", "--", PYTHON, script, BUILD_SRC, "2"])
    assert result.returncode == 0, result.stderr  # (CPython's own probes on: docs/security.md)
    assert name in {entry["file"] for entry in json.loads(report)}, report  # surrogate-escaped
    result, flow = run_runner(["--report", "flow", "--", PYTHON, script, BUILD_SRC, "2"])
    assert result.returncode == 0, result.stderr
    rows = [line for line in flow.splitlines() if "malloc(4321)" in line]
    assert len(rows) == 2 and all(f"{text}:{allocation_line()} " in row for row in rows), flow


# --- forked children live --------------------------------------------------------------------------

POOL = """\
import multiprocessing, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak

def work(n):
    blocks = [cMemLeak.CMalloc(1000 + n) for _ in range(50)]
    return sum(block.size for block in blocks)

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[2])
    first = cMemLeak.CMalloc(64)  # the parent allocates under the tracer before forking
    with multiprocessing.Pool(2) as pool:
        print("results", sum(pool.map(work, range(8), chunksize=1)), flush=True)
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_traced_command_that_forks_workers_finishes(tmp_path, method):
    """Workers forked (or spawned) by a traced process run the probe sites too: they must live."""
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    result, report = run_runner(["--json", "--lib", CMEMLEAK, "--", PYTHON, str(script),
                                 BUILD_SRC, method], timeout=120)
    expected = sum(50 * (1000 + n) for n in range(8))
    assert result.returncode == 0, result.stderr
    assert f"results {expected}".encode() in result.stdout
    entries = json.loads(report)
    assert [e for e in entries if e["count"] == 1 and e["bytes"] == 64], entries


# --- the command runs unprivileged ---------------------------------------------------------------

WHOAMI = ("import os, sys; sys.path.insert(0, sys.argv[1]); from pymemtrace import cMemLeak; "
          "block = cMemLeak.CMalloc(4321); print('uid', os.getuid(), os.getgid(), flush=True)")


@pytest.fixture
def shared_dir():
    """A directory every user can read (pytest's tmp_path is root's alone)."""
    directory = tempfile.mkdtemp(prefix="pmt-shared-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory)


def _world_readable_package(directory):
    return package_in(os.path.join(directory, "pkg"))


@pytest.mark.parametrize("how", ["sudo", "--user"])
def test_command_runs_as_the_invoking_user(shared_dir, how):
    package = _world_readable_package(shared_dir)
    env = dict(os.environ)
    env.pop("PYTHONPATH")  # the command imports cMemLeak from the shared copy only
    args = ["--json", "--lib", glob.glob(os.path.join(package, "pymemtrace", "cMemLeak*.so"))[0]]
    if how == "sudo":
        env.update(SUDO_UID="65534", SUDO_GID="65534", SUDO_USER="nobody")
    else:
        args += ["--user", "nobody"]
    result, report = run_runner(args + ["--", PYTHON, "-c", WHOAMI, package], env=env)
    assert result.returncode == 0, result.stderr
    assert b"uid 65534 65534" in result.stdout, result.stdout
    entries = json.loads(report)
    assert [e for e in entries if e["count"] == 1 and e["bytes"] == 4321], entries


def test_the_commands_start_up_code_never_runs_as_root(shared_dir):
    """Finding cMemLeak runs the command's Python: its sitecustomize runs, as the user only."""
    package = _world_readable_package(shared_dir)
    log = os.path.join(shared_dir, "uids")
    open(log, "w").close()
    os.chmod(log, 0o666)
    with open(os.path.join(package, "sitecustomize.py"), "w") as out:
        out.write(
            f"import os\nwith open({log!r}, 'a') as log:\n    log.write(f'{{os.getuid()}}\\n')\n")
    env = dict(os.environ, SUDO_UID="65534", SUDO_GID="65534", PYTHONPATH=package)
    result, _ = run_runner(["--", PYTHON, "-c", WHOAMI, package], env=env)
    assert result.returncode == 0, result.stderr
    uids = open(log).read().split()
    assert uids and set(uids) == {"65534"}, uids


def test_user_root_keeps_root_and_an_unknown_user_is_an_error(shared_dir):
    package = _world_readable_package(shared_dir)
    env = dict(os.environ, SUDO_UID="65534", SUDO_GID="65534")
    copy = glob.glob(os.path.join(package, "pymemtrace", "cMemLeak*.so"))[0]  # what it imports
    result, _ = run_runner(["--user", "root", "--lib", copy, "--", PYTHON, "-c", WHOAMI,
                            package], env=env)
    assert result.returncode == 0 and b"uid 0 0" in result.stdout, result.stderr
    result, _ = run_runner(["--user", "no-such-user-here", "--", PYTHON, "-c", "pass"])
    assert result.returncode == 2 and b"no such user" in result.stderr, result.stderr


# --- -o -------------------------------------------------------------------------------------------

def test_output_is_never_written_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "report"
    link.symlink_to(victim)
    result = subprocess.run([PYTHON, RUNNER, "-o", str(link), "--lib", CMEMLEAK, "--", PYTHON,
                             "-c", "pass"], capture_output=True, timeout=120)
    assert victim.read_text() == "precious\n"
    assert result.returncode == 2 and b"link" in result.stderr, result.stderr
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "created-through-link")
    result = subprocess.run([PYTHON, RUNNER, "-o", str(dangling), "--lib", CMEMLEAK, "--",
                             PYTHON, "-c", "pass"], capture_output=True, timeout=120)
    assert result.returncode == 2 and not (tmp_path / "created-through-link").exists()


def test_an_existing_report_is_replaced_only_by_a_finished_one(tmp_path):
    report = tmp_path / "report"
    report.write_text("the last good report\n")
    result = subprocess.run([PYTHON, RUNNER, "-o", str(report), "--lib", "/bin/true", "--",
                             PYTHON, "-c", "pass"], capture_output=True, timeout=120)
    assert result.returncode == 2
    assert report.read_text() == "the last good report\n"
    assert os.listdir(tmp_path) == ["report"]  # no partial file left behind
    result = subprocess.run([PYTHON, RUNNER, "-o", str(report), "--json", "--lib", CMEMLEAK,
                             "--", PYTHON, script_in(str(tmp_path)), BUILD_SRC, "1"],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert located(json.loads(report.read_text()), 1)


# --- a runner that dies leaves no tracer ---------------------------------------------------------

# Allocates every 10 ms and prints a heartbeat, until stdin closes.
LONG_TARGET = """\
import sys, threading
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
print("pid", __import__("os").getpid(), flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
beats = 0
while not stop.wait(0.01):
    block = cMemLeak.CMalloc(100)
    beats += 1
    if beats % 10 == 0:
        print("beat", beats, flush=True)
print("clean exit", flush=True)
"""


def semaphores(pid):
    """Addresses, in process `pid`, of the semaphores of every pymemtrace probe of cMemLeak."""
    names = ("alloc", "realloc", "free", "pyalloc", "pyrealloc", "pyfree")
    addresses = procfs.runtime_addresses(pid, CMEMLEAK, elf.semaphore_addresses(CMEMLEAK, names))
    assert len(addresses) == 6, addresses
    return list(addresses.values())


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def command_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return None


TRACERS = ("bpftrace", "pymemtrace-engi")  # comm: the first 15 bytes of pymemtrace-engine


# SIGTERM to the runner in command mode is passed to the command (test below), so the runner
# dies of it only with -p.
@pytest.mark.parametrize("mode, sig", [("command", signal.SIGKILL), ("pid", signal.SIGKILL),
                                       ("pid", signal.SIGTERM)],
                         ids=["command-SIGKILL", "pid-SIGKILL", "pid-SIGTERM"])
@pytest.mark.parametrize("engine", ["libbpf", "bpftrace"])
def test_runner_death_leaves_no_tracer(mode, sig, engine):
    leftovers_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "pymemtrace-*")))
    runner_args = [PYTHON, RUNNER, "--report", "leaks", "--engine", engine, "--lib", CMEMLEAK]
    if mode == "command":
        runner = subprocess.Popen(runner_args + ["--", PYTHON, "-c", LONG_TARGET, BUILD_SRC],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        output = runner.stdout
        pid = int(output.readline().split()[1])
        target_stdin = runner.stdin
    else:
        target = subprocess.Popen([PYTHON, "-c", LONG_TARGET, BUILD_SRC], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        output = target.stdout
        pid = int(output.readline().split()[1])
        target_stdin = target.stdin
        runner = subprocess.Popen(runner_args + ["-p", str(pid)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    addresses = semaphores(pid)
    try:
        assert procfs.wait_semaphores(pid, addresses, any, 60), "never armed"
        bpftrace = [child for child in children(runner.pid) if command_name(child) in TRACERS]
        assert len(bpftrace) == 1, [command_name(child) for child in children(runner.pid)]
        runner.send_signal(sig)
        runner.wait(timeout=60)
        # Bounds for a tracer left behind, not speed: detaching takes the kernel's grace periods,
        # 2-9 s on a loaded 2-core machine (seen), 0.3 s on a quiet one.
        assert procfs.wait_semaphores(pid, addresses, lambda v: not any(v), 30), \
            "the target's semaphores stayed set after the runner died"
        deadline = time.monotonic() + 30
        while procfs.process_alive(bpftrace[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not procfs.process_alive(bpftrace[0]), "the tracer outlived the runner"
        # The target carries on, unharmed: more heartbeats, then a clean exit when asked.
        beats = [output.readline() for _ in range(3)]
        assert all(line.startswith("beat") for line in beats), beats
    finally:
        target_stdin.close()
    rest = output.read()
    assert rest.rstrip().endswith("clean exit"), rest
    if mode == "pid":
        assert target.wait(timeout=30) == 0
    else:
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
    leftovers = set(glob.glob(os.path.join(tempfile.gettempdir(), "pymemtrace-*")))
    assert leftovers <= leftovers_before, leftovers - leftovers_before


# Says when SIGTERM comes, and goes on allocating (a service's shutdown) until stdin closes.
TRAPS_SIGTERM = """\
import signal, sys, threading
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
kept = []
def on_term(number, frame):
    kept.append(cMemLeak.CMalloc(4321))  # allocated by the shutdown: must be in the report
    print("got SIGTERM", flush=True)
signal.signal(signal.SIGTERM, on_term)
print("pid", __import__("os").getpid(), flush=True)
sys.stdin.read()
__import__("os")._exit(7)
"""


@pytest.mark.parametrize("engine", ["libbpf", "bpftrace"])
def test_a_stop_request_in_command_mode_goes_to_the_command_and_its_shutdown_is_traced(engine):
    """As sudo and tini do: SIGTERM to the runner reaches the command, tracing goes on until it
    exits, and the report holds what its shutdown allocated, with its exit status. A second
    request more than a second later ends the runner at once, without a report."""
    runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--engine", engine, "--lib",
                               CMEMLEAK, "--", PYTHON, "-c", TRAPS_SIGTERM, BUILD_SRC],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        pid = int(runner.stdout.readline().split()[1])
        assert procfs.wait_semaphores(pid, semaphores(pid), any, 60), "never armed"
        runner.send_signal(signal.SIGTERM)
        assert runner.stdout.readline() == "got SIGTERM\n"
        time.sleep(0.2)
        assert runner.poll() is None, "the runner stopped; it must trace until the command exits"
        out, err = runner.communicate(input="", timeout=60)  # stdin closes: the command ends, 7
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 7, err
    assert re.search(r"^\s+4321 .*C heap", out, re.M), out
    assert "exited with status 7" in out, out

    # The same command; a second request 1.5 s after the first ends the runner at once. (Its
    # standard error is a file: the command, which goes on, holds it open.)
    errors = tempfile.TemporaryFile("w+")
    runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--engine", engine, "--lib",
                               CMEMLEAK, "--", PYTHON, "-c", TRAPS_SIGTERM, BUILD_SRC],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                              text=True)
    try:
        pid = int(runner.stdout.readline().split()[1])
        assert procfs.wait_semaphores(pid, semaphores(pid), any, 60), "never armed"
        runner.send_signal(signal.SIGTERM)
        assert runner.stdout.readline() == "got SIGTERM\n"
        time.sleep(1.5)
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
        errors.seek(0)
        err = errors.read()
        assert runner.returncode == 128 + signal.SIGTERM and "stopped at once" in err, err
        assert procfs.wait_semaphores(pid, semaphores(pid), lambda v: not any(v), 5), \
            "the command's semaphores stayed set after the runner stopped"
        assert procfs.process_alive(pid), "the command goes on"
    finally:
        runner.stdin.close()
        if runner.poll() is None:
            runner.kill()


# Waits for SIGTERM, then its shutdown allocates and it exits 7.
ENDS_ON_SIGTERM = """\
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
kept, terms = [], []
signal.signal(signal.SIGTERM, lambda number, frame: terms.append(number))
print("pid", os.getpid(), flush=True)
while not terms:
    time.sleep(0.01)
kept.append(cMemLeak.CMalloc(4321))  # allocated by the shutdown: must be in the report
time.sleep(0.3)  # copies of the request arriving late are counted too
print("SIGTERMs", len(terms), flush=True)
os._exit(7)
"""


def under_coreutils_timeout(engine):
    """The runner tracing ENDS_ON_SIGTERM under `timeout -s TERM 8`, which signals the runner
    and its process group at once: its subprocess.CompletedProcess."""
    return subprocess.run(["timeout", "-s", "TERM", "8", PYTHON, RUNNER, "--report", "leaks",
                           "--engine", engine, "--lib", CMEMLEAK, "--", PYTHON, "-c",
                           ENDS_ON_SIGTERM, BUILD_SRC], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("engine", ["libbpf", "bpftrace"])
def test_coreutils_timeout_on_a_command_traces_its_shutdown_to_its_exit(engine):
    """`timeout N pymemtrace-trace -- COMMAND`: tracing goes on until the command exits, and the
    report holds what its shutdown allocated and its exit status."""
    result = under_coreutils_timeout(engine)
    assert result.returncode == 124, result.stderr  # timeout's: the time ran out
    assert re.search(r"^\s+4321 .*C heap", result.stdout, re.M), result.stdout
    assert "exited with status 7" in result.stdout, result.stdout


def test_coreutils_timeout_gives_the_command_one_stop_request():
    """timeout signals its process group, the runner's: the command, in a group of its own, gets
    the request once, from the runner (it got two before: timeout's and the runner's copy)."""
    result = under_coreutils_timeout("libbpf")
    assert "SIGTERMs 1\n" in result.stdout, result.stdout


def test_coreutils_timeout_on_a_pid_trace_writes_the_report_and_leaves_the_target_running():
    target = subprocess.Popen([PYTHON, "-c", LONG_TARGET, BUILD_SRC], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        pid = int(target.stdout.readline().split()[1])
        result = subprocess.run(["timeout", "-s", "TERM", "8", PYTHON, RUNNER, "--report",
                                 "leaks", "--lib", CMEMLEAK, "-p", str(pid)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 124, result.stderr
        assert "Total:" in result.stdout, (result.stdout, result.stderr)
        assert target.poll() is None, "the target goes on"
        assert target.stdout.readline().startswith("beat")
    finally:
        target.stdin.close()
        target.wait(timeout=30)
