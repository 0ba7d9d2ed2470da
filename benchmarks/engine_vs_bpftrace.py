# SPDX-License-Identifier: MIT
"""pymemtrace-engine alone, and the runner (pymemtrace-trace --report leaks -p) on the engine and on
bpftrace, one run, all on the same target and workload, as root (benchmarks/run.sh section 8):

    python3 benchmarks/engine_vs_bpftrace.py BUILD [--blocks N]

Rows: attach (tracer started -> the engine's `ready` line; the runner, which has no such line: the
target's three py* semaphores set, a lower bound, as bpftrace attaches its programs just after),
exit to report (the target ends -> the report is read: the engine's stdout ends, the runner
exits), report of N live blocks (default 1,000,000: SIGINT -> the report is read, and checked to
hold N blocks)
and the peak RSS of the tracer's processes then (runner + bpftrace, summed; polled every 20 ms);
the time the target takes to make those N allocations while traced (the cost of an event).
Times are wall clock on a shared machine: compare the ratio column, not absolutes.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace import elf, procfs  # noqa: E402

PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")


class Target:
    """engine_workload.py under Debian's Python with the built package."""

    def __init__(self, build):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.join(build, "src"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen([PYTHON, os.path.join(ROOT, "benchmarks",
                                                           "engine_workload.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        self.pid = int(self.proc.stdout.readline())

    def tell(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def allocate(self, blocks):
        self.tell(f"alloc {blocks}")
        assert self.proc.stdout.readline() == "held\n"

    def end(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


PY_PROBES = ("pyalloc", "pyrealloc", "pyfree")


def semaphores_set(pid, library):
    addresses = procfs.runtime_addresses(pid, library,
                                         elf.semaphore_addresses(library, PY_PROBES))
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        values = []
        for address in addresses.values():
            mem.seek(address)
            values.append(int.from_bytes(mem.read(2), "little"))
    return len(values) == len(PY_PROBES) and all(values)


def wait_armed(pid, library, timeout=60):
    deadline = time.monotonic() + timeout
    while not semaphores_set(pid, library):
        if time.monotonic() > deadline:
            raise RuntimeError("the tracer did not arm the target's probes")
        time.sleep(0.001)
    return time.monotonic()


class PeakRss:
    """The largest sum of VmRSS over a process and its descendants, polled."""

    def __init__(self, pid):
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _tree(self):
        pids, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    queue += [int(child) for child in children.read().split()]
            except OSError:
                pass
        return pids

    def _poll(self):
        while not self._stop.is_set():
            total = 0
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/status") as status:
                        for line in status:
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1])
                except OSError:
                    pass
            self.peak_kb = max(self.peak_kb, total)
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak_kb


class Engine:
    name = "engine"

    def __init__(self, build, library):
        self.binary = os.path.join(build, "src", "engine", "pymemtrace-engine")
        self.library = library

    def start(self, pid):
        """Returns once the engine says every probe is attached."""
        self.proc = subprocess.Popen([self.binary, "--pid", str(pid), "--lib", self.library],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert json.loads(self.proc.stdout.readline())["event"] == "ready"

    def finish(self):
        """(the report, when it was read). The engine closes its stdout once the report is
        written, then detaches (kernel grace periods, a few hundred ms, not counted)."""
        out = self.proc.stdout.read()
        read = time.monotonic()
        err = self.proc.stderr.read()
        assert self.proc.wait(timeout=600) == 0, err
        return json.loads(out.splitlines()[-1]), read

    def settle(self):
        pass

    @staticmethod
    def blocks(report):
        return report["live_blocks"]


class Runner:
    """pymemtrace-trace --report leaks -p PID, as a user runs it, with --engine ENGINE."""

    def __init__(self, build, library, blocks, engine="bpftrace"):
        self.build, self.library, self.blocks_room = build, library, max(65536, 2 * blocks)
        self.engine = engine
        self.name = f"runner --engine {engine}"

    def start(self, pid):
        self.output = tempfile.NamedTemporaryFile(suffix=".json")
        self.proc = subprocess.Popen([PYTHON, RUNNER, "--engine", self.engine, "--report",
                                      "leaks", "--json", "-o", self.output.name, "--max-entries",
                                      str(self.blocks_room), "--lib", self.library, "-p",
                                      str(pid)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_armed(pid, self.library)

    def settle(self):
        time.sleep(0.3)  # its programs are attached just after the semaphores are set

    def finish(self):
        """(the report, when its file first held the whole report: polled every 5 ms; the runner
        ends after, once its tracer has detached)."""
        written = None
        while written is None and self.proc.poll() is None:
            written = self._report()
            if written is None:
                time.sleep(0.005)
        read = time.monotonic()
        _out, err = self.proc.communicate(timeout=600)
        assert self.proc.returncode == 0, err[-800:]
        return written or self._report(), read

    def _report(self):
        try:
            with open(self.output.name) as report:
                return json.load(report)
        except ValueError:  # not written yet, or half written
            return None

    @staticmethod
    def blocks(report):
        return sum(entry["count"] for entry in report)


def measure(tracer, build, blocks):
    rows = {}
    # Attach, then a report of `blocks` live blocks at SIGINT.
    target = Target(build)
    try:
        started = time.monotonic()
        tracer.start(target.pid)
        rows["attach (s)"] = time.monotonic() - started
        tracer.settle()
        allocating = time.monotonic()
        target.allocate(blocks)
        rows[f"{blocks:,} allocations while traced (s)"] = time.monotonic() - allocating
        rss = PeakRss(tracer.proc.pid)
        asked = time.monotonic()
        tracer.proc.send_signal(signal.SIGINT)
        report, read = tracer.finish()
        rows[f"report of {blocks:,} live blocks (s)"] = read - asked
        rows["peak RSS then (MB)"] = rss.stop() / 1024
        held = tracer.blocks(report)
        assert held == blocks, f"{tracer.name} reported {held} blocks of {blocks}"
    finally:
        target.end()
    # Exit to report.
    target = Target(build)
    try:
        tracer.start(target.pid)
        tracer.settle()
        target.allocate(1000)
        target.tell("exit")
        target.proc.wait()
        ended = time.monotonic()
        _report, read = tracer.finish()
        rows["exit to report (s)"] = read - ended
    finally:
        target.end()
    return rows


def library_of(build):
    """cMemLeak as the meson build made it, for Debian's Python."""
    return os.path.join(build, "src", "pymemtrace", "cMemLeak" + subprocess.check_output(
        [PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        text=True).strip())


def compare(build, library, blocks):
    """{tracer name: {row: figure}}: the engine alone, the runner on the engine, the runner on
    bpftrace (last: the others' ratios are against it), on the same target and workload."""
    results = {}
    for tracer in (Engine(build, library), Runner(build, library, blocks, "libbpf"),
                   Runner(build, library, blocks, "bpftrace")):
        results[tracer.name] = measure(tracer, build, blocks)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", help="the meson build directory")
    parser.add_argument("--blocks", type=int, default=1_000_000)
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("engine_vs_bpftrace.py: tracing needs root: run it as root")
    build = os.path.abspath(options.build)
    library = os.path.join(build, "src", "pymemtrace",
                           "cMemLeak" + subprocess.check_output(
                               [PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var("
                                "'EXT_SUFFIX'))"], text=True).strip())
    procfs.mount_tracefs()
    results = compare(build, library, options.blocks)
    for row, name, figure, ratio in table(results):
        print(f"{row:36} {name:26} {figure:10.3f}  {ratio}")


def table(results):
    """(row, tracer, figure, the figure as a fraction of the bpftrace runner's) for every figure."""
    bpftrace = results["runner --engine bpftrace"]
    for row in bpftrace:
        for name, figures in results.items():
            theirs = bpftrace[row]
            ratio = f"{figures[row] / theirs:.3f} x bpftrace's" if theirs and figures is not bpftrace else ""
            yield row, name, figures[row], ratio

if __name__ == "__main__":
    main()
