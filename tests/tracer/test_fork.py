#!/usr/bin/env python3
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

Usage: test_fork.py PATH/TO/fork_target PATH/TO/fork_target_nop5
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import tracing  # noqa: E402

PARENT_SIZE = 1111
CHILD_SIZE = 2000
CHILD_ALLOCS = 5


def program(binary):
    return f'usdt:{binary}:pymemtrace:alloc {{ printf("alloc %d %lu\\n", pid, arg1); }}'


def run(binary):
    """Runs fork_target under bpftrace; returns (exit code, its report lines by first word,
    [(pid, size)] alloc events, stderr)."""
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
    return proc.returncode, report, events, err


def check_default(binary, failures):
    code, report, events, err = run(binary)
    if code != 0:
        failures.append(f"{binary} exited {code} (3: the probe was never enabled): {err}")
        return
    parent = int(report["pid"][0])
    child_pid, how, *value = report.get("child", ["0", "missing"])
    child_pid = int(child_pid)
    ok = True
    if how != "exit" or value != ["0"]:
        failures.append(f"default build (1-byte sites): the child forked after the tracer "
                        f"attached ended with {how} {' '.join(value)}, not exit 0 "
                        f"(parent trampoline: {report.get('trampoline')})")
        ok = False
    child_sizes = sorted(size for pid, size in events if pid == child_pid)
    wanted = [CHILD_SIZE + i for i in range(CHILD_ALLOCS)]
    if child_sizes != wanted:
        failures.append(f"default build: the child's allocations traced {child_sizes}, "
                        f"expected {wanted} from pid {child_pid}")
        ok = False
    if (parent, PARENT_SIZE) not in events:
        failures.append(f"default build: the parent's allocation was not traced: {events}")
        ok = False
    if report.get("trampoline") != ["no"]:
        failures.append("default build: a 1-byte site was optimised ([uprobes-trampoline])")
        ok = False
    if ok:
        print(f"ok: default build (1-byte sites): parent {parent} and child {child_pid} traced "
              f"({len(child_sizes)} child allocations), child exit 0, no trampoline")


def check_nop5(binary, failures):
    code, report, events, err = run(binary)
    if code != 0:
        failures.append(f"{binary} exited {code} (3: the probe was never enabled): {err}")
        return
    child_pid, how, *value = report.get("child", ["0", "missing"])
    optimised = report.get("trampoline") == ["yes"]
    traced = sum(1 for pid, _ in events if pid == int(child_pid))
    outcome = f"child {how} {' '.join(value)}, {traced} child allocations traced"
    if not optimised:
        print(f"info: NOP5=1 build: this kernel did not optimise the 5-byte site (int3 path): "
              f"{outcome}")
    elif how == "signal":
        print(f"info: NOP5=1 build: known kernel behaviour: the parent's site was optimised "
              f"([uprobes-trampoline]) and the forked child died ({outcome}): 5-byte sites are "
              f"unsafe across fork() on this kernel")
    else:
        print(f"info: NOP5=1 build: the site was optimised and the forked child survived "
              f"({outcome}): this kernel copies the trampoline on fork")


def main():
    tracing.require_tracer()
    default, nop5 = (os.path.realpath(p) for p in sys.argv[1:3])
    failures = []
    check_default(default, failures)
    check_nop5(nop5, failures)
    if failures:
        print("\n".join("FAIL: " + f for f in failures), file=sys.stderr)
        sys.exit(1)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
