# SPDX-License-Identifier: MIT
"""A traced process forks: with the default (1-byte nop) probe sites the child lives and is traced.

fork_target waits until bpftrace has enabled its pymemtrace:alloc probe, allocates (the site's
first hit), forks, and the child allocates five times. bpftrace is attached by path, so the child
is traced too. Checked for the default build: the child exits 0 (with 5-byte sites on a kernel
with the uprobe nop5 optimisation it died with SIGSEGV: it inherits the rewritten site, a call
into the parent's [uprobes-trampoline], but not the trampoline) and its five allocations arrive
with its own pid.

The same program built with -DPYMEMTRACE_CONFIG_NOP5=1 runs too, as information only: when the
parent shows a [uprobes-trampoline] mapping (the kernel optimised the site) the test reports
whether the child still dies, the known behaviour of the kernel that makes 5-byte sites opt-in.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace) with
--fork-target PATH --fork-target-nop5 PATH (tests/tracer/meson.build passes them).
"""
import collections
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402

PARENT_SIZE = 1111
CHILD_SIZE = 2000
CHILD_ALLOCS = 5

# fork_target's exit status, its report lines by first word (pid, child, trampoline), the
# [(pid, size)] of every alloc event bpftrace saw, and its stderr.
Run = collections.namedtuple("Run", "returncode report events stderr")


def program(binary):
    return f'usdt:{binary}:pymemtrace:alloc {{ printf("alloc %d %lu\\n", pid, arg1); }}'


def run(binary):
    """Runs fork_target under bpftrace."""
    session = tracing.BpftraceSession(program(binary)).start()
    try:
        proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{binary} did not finish in 90 s:\n{out}{err}")
        report = {}
        for line in out.splitlines():
            words = line.split()
            if words:
                report[words[0]] = words[1:]
        child = int(report["child"][0]) if "child" in report else None
        lived = report.get("child", [])[1:] == ["exit", "0"]
        # Events may still be in bpftrace's buffers: wait for those we expect, then detach.
        session.wait_for(lambda lines: sum(1 for e in tracing.events(lines, "alloc")
                                           if child and int(e[0]) == child) >= CHILD_ALLOCS,
                         timeout=10 if lived else 1)
    finally:
        lines = session.stop()
    events = [(int(e[0]), int(e[1])) for e in tracing.events(lines, "alloc")]
    return Run(proc.returncode, report, events, err)


def child_of(run):
    """(pid, how it ended: 'exit' or 'signal' or 'missing', [status])."""
    pid, how, *value = run.report.get("child", ["0", "missing"])
    return int(pid), how, value


@pytest.fixture(scope="module")
def default_build(fork_target):
    """fork_target with the default 1-byte sites, run under bpftrace."""
    run_ = run(fork_target)
    assert run_.returncode == 0, \
        f"{fork_target} exited {run_.returncode} (3: the probe was never enabled): {run_.stderr}"
    return run_


def test_a_forked_child_of_a_traced_process_lives(default_build):
    _, how, value = child_of(default_build)
    assert (how, value) == ("exit", ["0"]), \
        f"default build (1-byte sites): the child forked after the tracer attached ended with " \
        f"{how} {' '.join(value)}, not exit 0 (parent trampoline: " \
        f"{default_build.report.get('trampoline')})"


def test_a_forked_child_of_a_traced_process_is_traced_under_its_own_pid(default_build):
    child, _, _ = child_of(default_build)
    sizes = sorted(size for pid, size in default_build.events if pid == child)
    wanted = [CHILD_SIZE + i for i in range(CHILD_ALLOCS)]
    assert sizes == wanted, \
        f"default build: the child's allocations traced {sizes}, expected {wanted} from pid {child}"


def test_the_parents_allocation_before_the_fork_is_traced(default_build):
    parent = int(default_build.report["pid"][0])
    assert (parent, PARENT_SIZE) in default_build.events, \
        f"default build: the parent's allocation ({parent}, {PARENT_SIZE}) was not traced: " \
        f"{default_build.events}"


def test_a_1_byte_site_is_never_run_through_the_uprobe_trampoline(default_build):
    assert default_build.report.get("trampoline") == ["no"], \
        f"default build: a 1-byte site was optimised ([uprobes-trampoline]): " \
        f"trampoline {default_build.report.get('trampoline')}"


def test_the_5_byte_build_runs_and_what_became_of_its_child_is_reported(fork_target_nop5, capsys):
    """Information only (the kernel's behaviour, not ours), beyond fork_target finishing."""
    run_ = run(fork_target_nop5)
    assert run_.returncode == 0, \
        f"{fork_target_nop5} exited {run_.returncode} (3: the probe was never enabled): " \
        f"{run_.stderr}"
    child, how, value = child_of(run_)
    traced = sum(1 for pid, _ in run_.events if pid == child)
    outcome = f"child {how} {' '.join(value)}, {traced} child allocations traced"
    if run_.report.get("trampoline") != ["yes"]:
        info = f"this kernel did not optimise the 5-byte site (int3 path): {outcome}"
    elif how == "signal":
        info = (f"known kernel behaviour: the parent's site was optimised ([uprobes-trampoline]) "
                f"and the forked child died ({outcome}): 5-byte sites are unsafe across fork() "
                f"on this kernel")
    else:
        info = (f"the site was optimised and the forked child survived ({outcome}): this kernel "
                f"copies the trampoline on fork")
    with capsys.disabled():
        print(f"\ninfo: NOP5=1 build: {info}")
