# SPDX-License-Identifier: MIT
"""--interval snapshots on pymemtrace-engine beside the bpftrace runner (issue 20), one run, as
root:

    python3 benchmarks/engine_snapshots.py BUILD [--blocks N] [--seconds S]
    (or bench.py's section 9)

The target (engine_workload.py) allocates N blocks (default 100,000) while `pymemtrace-trace
--report leaks --interval 1 --json -p PID` traces it, then holds them still (bpftrace's snapshots
abort while the target frees: issue 20). Rows: the CPU time the tracer (the runner and its
children: the engine, or bpftrace) spends per snapshot over S seconds (default 6), each snapshot
checked to hold N blocks; and the cost snapshots add to an event on the engine (the time the
target takes to allocate N blocks traced with --interval, over the same without). Wall and CPU
times on a shared machine: compare the ratio column, not absolutes.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace import procfs  # noqa: E402

PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid):
    """CPU seconds (user + system) of `pid` and its descendants, as they are now."""
    total, queue = 0, [pid]
    while queue:
        current = queue.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            with open(f"/proc/{current}/task/{current}/children") as children:
                queue += [int(child) for child in children.read().split()]
        except OSError:
            pass
    return total / TICK


class Traced:
    """engine_workload.py traced by the runner on `engine` with --interval `interval`."""

    def __init__(self, build, engine, blocks, interval):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.join(build, "src"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.target = subprocess.Popen([PYTHON, os.path.join(ROOT, "benchmarks",
                                                             "engine_workload.py")],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env=env)
        pid = int(self.target.stdout.readline())
        argv = [PYTHON, RUNNER, "--engine", engine, "--report", "leaks", "--json",
                "--max-entries", str(max(65536, 2 * blocks)), "--lib",
                os.path.join(build, "src", "pymemtrace"), "-p", str(pid)]
        if interval is not None:
            argv += ["--interval", str(interval)]
        self.runner = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
        while "tracing PID" not in self.runner.stderr.readline():
            if self.runner.poll() is not None:
                raise RuntimeError(f"the runner on {engine} ended: {self.runner.stderr.read()}")
        if engine == "bpftrace":
            time.sleep(0.5)  # it attaches its programs just after the semaphores are set
        self.snapshots = []  # (when read, blocks)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.runner.stdout:
            line = json.loads(line) if line.startswith("{") else {}
            if line.get("type") == "snapshot":
                self.snapshots.append((time.monotonic(), line["blocks"]))

    def allocate(self, blocks):
        started = time.monotonic()
        self.target.stdin.write(f"alloc {blocks}\n")
        self.target.stdin.flush()
        assert self.target.stdout.readline() == "held\n"
        return time.monotonic() - started

    def end(self):
        if self.runner.poll() is None:
            self.runner.send_signal(signal.SIGINT)
        try:
            self.runner.wait(timeout=300)
        finally:
            for process in (self.runner, self.target):
                if process.poll() is None:
                    process.kill()
                process.wait()


def cpu_per_snapshot(build, engine, blocks, seconds):
    traced = Traced(build, engine, blocks, 1)
    try:
        traced.allocate(blocks)
        first = len(traced.snapshots)
        while len(traced.snapshots) == first:  # one taken with every block held
            time.sleep(0.05)
        first, cpu = len(traced.snapshots), tree_cpu(traced.runner.pid)
        time.sleep(seconds)
        taken, spent = len(traced.snapshots) - first, tree_cpu(traced.runner.pid) - cpu
        held = [count for _when, count in traced.snapshots[first:]]
    finally:
        traced.end()
    if not taken or any(count != blocks for count in held):
        raise RuntimeError(f"{engine}: snapshots {held} of {blocks} blocks")
    return spent / taken, taken


def event_cost(build, blocks, repetitions=5):
    """(seconds to allocate `blocks` traced by the engine with --interval 1, and without:
    medians of `repetitions` interleaved runs)."""
    times = {1: [], None: []}
    for _ in range(repetitions):
        for interval in times:
            traced = Traced(build, "libbpf", blocks, interval)
            try:
                times[interval].append(traced.allocate(blocks))
            finally:
                traced.end()
    return statistics.median(times[1]), statistics.median(times[None])


def section(args, row, build=None):
    """Section 8 through bench.py's row(section, measurement, figure, ratio, ...)."""
    build = build or os.path.join(ROOT, "build")
    blocks, seconds = getattr(args, "snapshot_blocks", 100000), getattr(args, "snapshot_seconds",
                                                                          6)
    procfs.mount_tracefs()
    engine, engine_taken = cpu_per_snapshot(build, "libbpf", blocks, seconds)
    bpftrace, bpftrace_taken = cpu_per_snapshot(build, "bpftrace", blocks, seconds)
    row(9, f"--interval 1, {blocks:,} live blocks: tracer CPU per snapshot, engine "
           f"({engine_taken} snapshots) vs bpftrace runner ({bpftrace_taken})",
        f"{engine * 1000:.1f} ms vs {bpftrace * 1000:.1f} ms",
        f"{bpftrace / engine:.1f}x" if engine else "inf")
    with_snapshots, without = event_cost(build, blocks)
    row(9, f"engine: {blocks:,} allocations traced, with --interval 1 vs without (medians of 5)",
        f"{with_snapshots:.3f} s vs {without:.3f} s", f"{with_snapshots / without:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", help="the meson build directory")
    parser.add_argument("--blocks", dest="snapshot_blocks", type=int, default=100000)
    parser.add_argument("--seconds", dest="snapshot_seconds", type=float, default=6)
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("engine_snapshots.py: tracing needs root: run it as root")

    def row(_section, measurement, figure, ratio=""):
        print(f"| {measurement} | {figure} | {ratio} |", flush=True)
    print("| measurement | figure | ratio |\n|---|---|---|")
    section(options, row, os.path.abspath(options.build))


if __name__ == "__main__":
    main()
