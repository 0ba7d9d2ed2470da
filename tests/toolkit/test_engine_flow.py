# SPDX-License-Identifier: MIT
"""pymemtrace-trace --report flow on its libbpf engine (issue 20), on real processes: every event
through the engine's ring buffer, in order, at its Python location, in the same rows as the
bpftrace flow; at the highest rate the target reaches, every event or an exact loss (exit 3,
0 with --allow-loss); the target's names escaped. Run through tests/support/run_pytest.py, as
root."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from other_user import other_user  # noqa: E402
from runner import BUILD_SRC, LIB, PYTHON, RUNNER, pid_run  # noqa: E402
from source_lines import tagged_lines  # noqa: E402

ORDER = os.path.join(ROOT, "tests", "engine", "flow_order_workload.py")
SETID = os.path.join(ROOT, "tests", "engine", "setid_exec_workload.py")
RATE = os.path.join(ROOT, "benchmarks", "flow_workload.py")
CMEMLEAK = next(os.path.join(LIB, name) for name in os.listdir(LIB)
                if name.startswith("cMemLeak.") and name.endswith(".so"))
MESON_BUILT = os.environ.get("PYMEMTRACE_REDIRECT_MESON", "")
REDIRECT_WORKLOAD = os.path.join(ROOT, "tests", "redirect")
ROW = re.compile(r"^ *(\d+) ")
# cMemLeak's rows: `PID FILE:LINE -> FUNCTION malloc(SIZE) pntr BLOCK domain D` or `free(BLOCK)`.
EVENT = re.compile(r"^ *(?P<pid>\d+) +(?P<file>.*):(?P<line>\d+) +-> (?P<function>.*) "
                   r"(?P<call>malloc|free)\((?P<argument>\w+)\)(?: pntr (?P<block>0x[0-9a-f]+))?"
                   r" domain (?P<domain>-?\d+)$")
LOST = re.compile(r"(\d+) of (\d+) events were lost")
UNSEEN_FREES = re.compile(r"(\d+) frees of blocks this flow did not show allocated")


def flow(workload, args, engine="libbpf", options=()):
    """(the runner's exit status, its flow, its stderr, the target's PID) of `workload` run with
    `args`, traced from its release to its end with -p."""
    target = subprocess.Popen([PYTHON, workload, *args], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=BUILD_SRC))
    try:
        pid = int(target.stdout.readline())
        status, out, err = pid_run(target, ["--report", "flow", "--engine", engine, "--lib",
                                            CMEMLEAK, *options], timeout=300)
    finally:
        target.kill()
        target.wait()
    return status, out, err, pid


def rows_of(text):
    return [line for line in text.splitlines() if " -> " in line]


def without_addresses(rows, pid):
    """The rows with the PID and the blocks' addresses left out: what two runs of one workload
    share (which allocation each free releases is checked on the engine's rows alone: the
    order in which two threads' rows interleave differs from run to run)."""
    return [re.sub(r"0x[0-9a-f]+", "0x#", row.replace(str(pid), "PID", 1)) for row in rows]


def test_a_pid_flow_of_known_allocations_and_frees_is_exact_and_the_same_rows_as_bpftraces():
    n = 200
    status, out, err, pid = flow(ORDER, [str(n)])
    assert status == 0, err
    assert out.startswith("dtrace:::BEGIN\n") and out.endswith("\ndtrace:::END\n"), out[-200:]
    rows = rows_of(out)
    assert len(rows) == 4 * n, (len(rows), err)
    events = [EVENT.match(row).groupdict() for row in rows]
    line = tagged_lines(open(ORDER).read())
    where = {"malloc": (str(line["made"]), "made"), "free": (str(line["released"]), "released")}
    assert all((e["pid"], e["file"], e["domain"]) == (str(pid), "flow_order_workload.py", "0")
               and (e["line"], e["function"]) == where[e["call"]] for e in events), rows[:3]
    # Each thread's allocations in the order it made them, and its frees oldest first, each
    # after its allocation (a block's address may be reused once it is freed).
    made, freed, live = {1000: [], 5000: []}, {1000: [], 5000: []}, {}
    for e in events:
        if e["call"] == "malloc":
            assert e["block"] not in live, e
            live[e["block"]] = size = int(e["argument"])
            made[5000 if size >= 5000 else 1000].append(size)  # the thread's sizes
        else:
            size = live.pop(e["argument"])  # KeyError: a free before its allocation
            freed[5000 if size >= 5000 else 1000].append(size)
    assert made == freed == {base: list(range(base, base + n)) for base in made} and not live
    # bpftrace's flow of the same workload: the same rows, but for the PID and the addresses.
    status, bpftrace_out, err, bpftrace_pid = flow(ORDER, [str(n)], engine="bpftrace")
    assert status == 0, err
    assert (sorted(without_addresses(rows_of(bpftrace_out), bpftrace_pid))
            == sorted(without_addresses(rows, pid)))


def adds_up(status, out, err, made, allowed):
    """Every event was carried (exit 0), or the stated loss and the rows add up to `made` (exit
    3, or 0 when allowed); returns the loss."""
    # A free whose allocation was lost is one of the flow's unseen frees: received, not shown.
    unseen = UNSEEN_FREES.search(err)
    rows = len(rows_of(out)) + (int(unseen[1]) if unseen else 0)
    stated = LOST.search(err)
    if stated is None:
        assert status == 0 and rows == made, (status, rows, made, err[-800:])
        return 0
    lost, seen_by_probes = int(stated[1]), int(stated[2])
    assert seen_by_probes == made and rows + lost == made, (rows, lost, made, err[-800:])
    assert status == (0 if allowed else 3), err[-800:]
    return lost


def test_a_flow_at_the_highest_rate_the_target_reaches_carries_every_event_or_an_exact_loss():
    n = 200000  # iterations as fast as Python calls cMemLeak: an allocation and a free each
    status, out, err, _pid = flow(RATE, [str(n)])
    adds_up(status, out, err, 2 * n, allowed=False)


@pytest.mark.parametrize("allowed", [False, True], ids=["exit-3", "allow-loss"])
def test_a_flow_that_overflows_the_ring_buffer_states_a_loss_that_adds_up(allowed):
    """--perf-pages 1: a ring buffer of two pages (128 events), which the target outruns."""
    n = 100000
    status, out, err, _pid = flow(RATE, [str(n)], options=["--perf-pages", "1",
                                                          *(["--allow-loss"] if allowed else [])])
    assert adds_up(status, out, err, 2 * n, allowed) > 0, err[-800:]


def test_a_python_probes_flow_that_overflows_the_ring_buffer_states_a_loss_that_adds_up():
    """--frames python-probes (the plain probes, counted as alloc and free): the same sums."""
    n = 100000
    status, out, err, _pid = flow(RATE, [str(n)], options=["--frames", "python-probes",
                                                          "--perf-pages", "1", "--allow-loss"])
    assert adds_up(status, out, err, 2 * n, allowed=True) > 0, err[-800:]


def command_flow(engine):
    """The flow of tests/redirect's workload (allocations in every domain, reallocs, C++ and
    Cython), built through meson with the redirect flags, run as a command by the runner."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "flow")
        result = subprocess.run(
            [PYTHON, RUNNER, "--report", "flow", "--engine", engine, "-o", out, "--", PYTHON,
             "-c", "import workload"], capture_output=True, text=True, timeout=300, cwd=scratch,
            env=dict(os.environ, PYTHONPATH=f"{MESON_BUILT}:{REDIRECT_WORKLOAD}"))
        assert result.returncode == 0, result.stderr[-800:]
        rows = rows_of(open(out).read())
    pids = {ROW.match(row)[1] for row in rows}
    assert len(pids) == 1, pids
    return without_addresses(rows, pids.pop())


def test_a_command_flow_with_reallocs_in_every_domain_is_the_same_rows_as_bpftraces():
    """--engine libbpf with a command (auto leaves commands to bpftrace: the fork window)."""
    engine = command_flow("libbpf")
    assert any(" realloc(" in row for row in engine) and any(" free(" in row for row in engine)
    assert sorted(engine) == sorted(command_flow("bpftrace"))


def test_a_flow_for_another_user_shows_nothing_of_a_setuid_program_its_process_execs(
        monkeypatch):
    """The report is for the user who ran sudo (SUDO_UID): the target, theirs, allocates three
    blocks of 11 bytes, then execs a set-user-ID root copy of Python that allocates seven of 13
    through the same traced library. The flow shows the three, says the process is traced no
    more, and nothing of the set-UID program (without --setid-stop the engine's flow had the
    seven: seen)."""
    directory, build_src = tempfile.mkdtemp(prefix="pymemtrace-setid-"), os.path.abspath(BUILD_SRC)
    try:
        os.chmod(directory, 0o755)
        setuid_python = os.path.join(directory, "python3")
        shutil.copy(os.path.realpath(PYTHON), setuid_python)
        os.chmod(setuid_python, 0o4755)
        program = [setuid_python, "-c",
                   f"import os, sys\nsys.path.insert(0, {build_src!r})\n"
                   "from pymemtrace import cMemLeak\n"
                   "assert os.geteuid() == 0 != os.getuid()\n"
                   "held = [cMemLeak.CMalloc(13) for _ in range(7)]\nos._exit(0)\n"]
        with other_user() as user:
            monkeypatch.setenv("SUDO_UID", str(user.uid))
            target = user.popen(["env", f"PYTHONPATH={build_src}", PYTHON, SETID, *program],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                pid = int(target.stdout.readline())
                status, out, err = pid_run(target, ["--report", "flow", "--engine", "libbpf",
                                                    "--lib", CMEMLEAK])
            finally:
                target.kill()
                target.wait()
    finally:
        shutil.rmtree(directory)
    assert status == 0, err
    rows = rows_of(out)
    assert len(rows) == 3 and all(" malloc(11) " in row for row in rows), out
    said = f"PID {pid} exec'd a set-user-ID or set-group-ID program: not traced from then on"
    assert said in out and said in err, (out, err)


HOSTILE = """\
import os, sys
print(os.getpid(), flush=True)
sys.stdin.readline()
from pymemtrace import cMemLeak


def plain(blocks):
    blocks.append(cMemLeak.CMalloc(4321))  # ALLOC: hostile


plain.__code__ = plain.__code__.replace(co_name=FUNCTION, co_qualname=FUNCTION)
held = []
plain(held)
plain(held)
os._exit(0)
"""
FILE = b"evil\x1b]0;pwned\x07\x1b[2J\nforged\xff.py"
FUNCTION = "f\x1b[31m\n 4242 x.py:1    -> g malloc(1) pntr 0x1 domain 0\udcfe"


def test_hostile_file_and_function_names_come_out_escaped_on_one_row_as_bpftraces(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), FILE)
    with open(path, "w") as out:
        out.write(HOSTILE.replace("FUNCTION", repr(FUNCTION), 2))
    shown = {}
    for engine in ("libbpf", "bpftrace"):
        status, out, err, pid = flow(os.fsdecode(path), [], engine=engine)
        assert status == 0, err
        assert "\x1b" not in out and "\x07" not in out and "\udcfe" not in out
        rows = rows_of(out)
        assert len(rows) == 2 and "4242" not in out.replace("\\n 4242 x.py", ""), out
        line = tagged_lines(HOSTILE)["hostile"]
        assert all(row.endswith(f"\\x1b[2J\\nforged\\xff.py:{line}    -> f\\x1b[31m\\n 4242 x.py:1"
                                "    -> g malloc(1) pntr 0x1 domain 0\\xfe malloc(4321) pntr "
                                + row.rsplit("pntr ", 1)[1])
                   and row.startswith(f"{pid:>6} evil\\x1b]0;pwned\\x07") for row in rows), rows
        shown[engine] = without_addresses(rows, pid)
    assert shown["libbpf"] == shown["bpftrace"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


OLD_BLOCKS = os.path.join(ROOT, "tests", "engine", "old_blocks_workload.py")


@pytest.mark.parametrize("engine", ["libbpf", "bpftrace"])
def test_frees_of_blocks_made_before_tracing_are_counted_not_shown(engine):
    """Issue 21: a flow of frees with no allocations misleads; they are said at the end."""
    status, out, err, _pid = flow(OLD_BLOCKS, ["7", "3"], engine)
    assert status == 0, err
    events = [EVENT.match(row).groupdict() for row in rows_of(out)]
    made = [e["block"] for e in events if e["call"] == "malloc"]
    freed = [e["argument"] for e in events if e["call"] == "free"]
    assert len(made) == 3 and sorted(freed) == sorted(made), out
    said = ("7 frees of blocks this flow did not show allocated (allocated before tracing began, "
            "by code that is not traced, or before a fork) are not shown")
    assert out.endswith("\n" + said + "\n") and said in err, (out[-300:], err)
