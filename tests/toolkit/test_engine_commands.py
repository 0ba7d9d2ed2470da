# SPDX-License-Identifier: MIT
"""pymemtrace-trace runs commands on its libbpf engine (issue 20), the libraries named or found
beforehand attached by path before the command runs (docs/engine.md, "Commands: libraries
attached by path"): a child the command forks misses nothing, as with bpftrace, and a process of
another user that maps the same library meanwhile is neither reported nor harmed. Real
processes, real BPF; run through tests/support/run_pytest.py, as root."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from other_user import other_user  # noqa: E402
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace import elf, procfs  # noqa: E402

FORKS = os.path.join(ROOT, "tests", "engine", "fork_at_once_workload.py")
BYSTANDER = os.path.join(HERE, "same_library_bystander.py")
CMEMLEAK = next(os.path.join(LIB, name) for name in os.listdir(LIB)
                if name.startswith("cMemLeak.") and name.endswith(".so"))

# The runner in a Python whose bpftrace lookup finds none: a report it makes is the engine's.
WITHOUT_BPFTRACE = """\
import sys
sys.path.insert(0, sys.argv[1])
from pymemtrace.trace import bpftrace_binary, cli
bpftrace_binary.SYSTEM_DIRECTORIES = ("/nonexistent",)
sys.exit(cli.main(sys.argv[2:]))
"""
ON_THE_ENGINE = [PYTHON, "-I", "-c", WITHOUT_BPFTRACE, os.path.join(ROOT, "src")]


def semaphores(pid):
    """The values, in process `pid`, of cMemLeak's py* semaphores."""
    probes = ("pyalloc", "pyrealloc", "pyfree")
    addresses = procfs.runtime_addresses(pid, CMEMLEAK, elf.semaphore_addresses(CMEMLEAK, probes))
    assert len(addresses) == 3, addresses
    seen = []
    procfs.wait_semaphores(pid, list(addresses.values()), lambda v: seen.append(v) or True, 1)
    return seen[0]


def leaks_of_forking_command(runner, *options):
    """(exit status, the leak report's rows as {(file, line, function, domain): (count, bytes)},
    the runner's stderr) of fork_at_once_workload.py: its parent keeps one block, each of its 8
    children 5,000 made at once after the fork."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "report.json")
        done = subprocess.run([*runner, "--report", "leaks", "--json", "-o", path, *options,
                               "--lib", CMEMLEAK, "--", PYTHON, FORKS], input="go\n",
                              env=dict(os.environ, PYTHONPATH=BUILD_SRC), capture_output=True,
                              text=True, timeout=300)
        rows = json.load(open(path)) if os.path.exists(path) else []
    return done.returncode, {(r["file"], r["line"], r["function"], r["domain"]):
                             (r["count"], r["bytes"]) for r in rows}, done.stderr


EVERY_BLOCK = {("fork_at_once_workload.py", 22, "<listcomp>", 0): (40000, 800000),
               ("fork_at_once_workload.py", 17, "<module>", 0): (1, 10)}


def test_a_command_whose_children_allocate_at_once_after_fork_is_reported_whole_on_the_engine():
    # No --engine: the engine makes it (no bpftrace here). Attached per PID, as before commands
    # were attached by path (--attach-by pid below), every child lost its first blocks: exit 3.
    status, rows, err = leaks_of_forking_command(ON_THE_ENGINE)
    assert status == 0, err
    assert rows == EVERY_BLOCK
    assert "lost" not in err and "window" not in err, err


def test_children_attached_per_pid_state_their_window_as_a_loss():
    status, rows, err = leaks_of_forking_command(ON_THE_ENGINE, "--attach-by", "pid")
    assert status == 3, err
    assert "forked processes made allocations before their probes were attached" in err
    assert "--attach-by path" in err
    assert rows[("fork_at_once_workload.py", 17, "<module>", 0)] == (1, 10)


def test_bpftrace_and_the_engine_report_the_same_blocks_of_a_forking_command():
    engine_status, by_engine, engine_err = leaks_of_forking_command([PYTHON, RUNNER])
    bpftrace_status, by_bpftrace, bpftrace_err = leaks_of_forking_command(
        [PYTHON, RUNNER], "--engine", "bpftrace")
    assert engine_status == 0 and bpftrace_status == 0, (engine_err, bpftrace_err)
    assert by_engine == by_bpftrace == EVERY_BLOCK


def test_another_users_process_mapping_the_library_is_not_reported_and_runs_to_its_end():
    argv = ["env", f"PYTHONPATH={BUILD_SRC}", PYTHON, BYSTANDER]
    with other_user() as user:
        alone = user.run(argv, input="go\n", capture_output=True, text=True, timeout=120)
        assert alone.returncode == 0, alone.stderr
        bystander = user.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert bystander.stdout.readline() == "mapped\n"
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "report.json")
                # The command says `traced` once released (the engine ready), then waits.
                command = ("import os, sys; from pymemtrace import cMemLeak; print('traced', "
                           "flush=True); sys.stdin.readline(); "
                           "kept = [cMemLeak.CMalloc(100) for _ in range(10)]; os._exit(0)")
                runner = subprocess.Popen(
                    [PYTHON, RUNNER, "--report", "leaks", "--json", "-o", path, "--lib",
                     CMEMLEAK, "--", PYTHON, "-c", command],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=dict(os.environ, PYTHONPATH=BUILD_SRC), text=True)
                assert runner.stdout.readline() == "traced\n"
                # What by path costs it (as bpftrace does): its semaphores are set too.
                assert all(semaphores(bystander.pid))
                # The other user's program does all its work while the command is traced.
                out, _ = bystander.communicate("go\n", timeout=120)
                runner.stdin.write("go\n")
                runner.stdin.flush()
                _, err = runner.communicate(timeout=120)
                rows = json.load(open(path))
        finally:
            if bystander.poll() is None:
                bystander.kill()
                bystander.wait()
    assert bystander.returncode == 0 and "mapped\n" + out == alone.stdout  # as untraced
    assert runner.returncode == 0, err
    assert [(r["count"], r["bytes"], len(r["pids"])) for r in rows] == [(10, 1000, 1)], rows


@pytest.mark.parametrize("options", [["--engine", "bpftrace"], ["--all"]])
def test_attach_by_where_bpftrace_or_all_attach_by_path_anyway_is_refused_in_words(options):
    command = [] if "--all" in options else ["--", PYTHON, "-c", "pass"]
    done = subprocess.run([PYTHON, RUNNER, "--attach-by", "pid", *options, "--lib", CMEMLEAK,
                           *command], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--attach-by chooses how pymemtrace-engine attaches" in done.stderr, done.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
