# SPDX-License-Identifier: MIT
"""The flow's rate (issue 20): `pymemtrace-trace --report flow -p PID`, made by bpftrace and by
pymemtrace-engine, side by side in one run, on the same target: benchmarks/flow_workload.py,
which allocates and frees 64-byte cMemLeak blocks as fast as Python calls it (2N events on T
threads), with the meson build's cMemLeak, as root:

    python3 benchmarks/flow_rate.py BUILD [--events N] [--reps R]
    benchmarks/run.sh --sections 10 (the same rows in bench.py's table)

Rows: the target's loop untraced; then per tracer the events per second the flow carried (rows
written to the -o file per second of the target's loop, which the tracer slows: the rate the
target reaches while traced, on 2 shared cores), the events lost (the runner's exact statement)
and the medians' ratio, engine over bpftrace. Wall clock on a shared machine: compare ratios.
"""
import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")
WORKLOAD = os.path.join(ROOT, "benchmarks", "flow_workload.py")
LOST = re.compile(r"(\d+) of (\d+) events were lost")
TRACERS = ("bpftrace", "libbpf")
LABELS = {"bpftrace": "bpftrace", "libbpf": "pymemtrace-engine"}


def run_once(build, iterations, threads, tracer, scratch):
    """(seconds of the target's loop, rows written, events lost) of one run; tracer None:
    untraced."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.join(build, "src"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    target = subprocess.Popen([PYTHON, WORKLOAD, str(iterations), str(threads)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    runner = None
    try:
        pid = int(target.stdout.readline())
        out = os.path.join(scratch, "flow.out")
        if tracer is not None:
            library = glob.glob(os.path.join(build, "src", "pymemtrace", "cMemLeak.*.so"))[0]
            runner = subprocess.Popen([PYTHON, "-I", RUNNER, "--report", "flow", "--engine",
                                       tracer, "--allow-loss", "--lib", library, "-o", out,
                                       "-p", str(pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for line in runner.stderr:
                if "tracing PID" in line:
                    break
        target.stdin.write("go\n")
        target.stdin.flush()
        seconds = float(target.stdout.readline().split()[1])
        target.wait(timeout=600)
        if runner is None:
            return seconds, 2 * iterations * threads, 0
        err = runner.communicate(timeout=600)[1]
        if runner.returncode != 0:
            raise RuntimeError(f"the {tracer} flow failed: {err[-500:]}")
        with open(out, errors="replace") as flow:
            rows = sum(1 for line in flow if " -> " in line)
        stated = LOST.search(err)
        return seconds, rows, int(stated[1]) if stated else 0
    finally:
        for process in (runner, target):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def measure(build, events, threads, reps):
    """{tracer or None: [(seconds, rows, lost)...]}, repetitions interleaved."""
    iterations = events // (2 * threads)
    runs = {None: [], **{tracer: [] for tracer in TRACERS}}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(reps):
            for tracer in runs:
                runs[tracer].append(run_once(build, iterations, threads, tracer, scratch))
    return runs


def section(args, row, build=None):
    """Section 9 of bench.py's table (row(section, measurement, figure, ratio, target,
    result))."""
    build = build or os.path.join(ROOT, "build")
    for threads in (1, 2):
        runs = measure(build, args.flow_rate_events, threads, args.reps)
        made = 2 * (args.flow_rate_events // (2 * threads)) * threads
        untraced = statistics.median(made / seconds for seconds, _, _ in runs[None])
        row(9, f"flow, {threads} thread(s): untraced target", f"{untraced / 1e3:.0f}k events/s",
            "", "", "")
        carried = {}
        for tracer in TRACERS:
            reached = statistics.median(made / seconds for seconds, _, _ in runs[tracer])
            carried[tracer] = statistics.median(rows / seconds for seconds, rows, _ in runs[tracer])
            lost = [lost for _, _, lost in runs[tracer]]
            exact = all(rows + lost == made for _, rows, lost in runs[tracer])
            row(9, f"flow, {threads} thread(s): {LABELS[tracer]}",
                f"target at {reached / 1e3:.0f}k events/s while traced, "
                f"{carried[tracer] / 1e3:.0f}k/s carried (rows per second of its loop); lost "
                f"{', '.join(map(str, lost))} of {made} ({args.reps} runs)", "",
                "every event, or the loss stated exactly",
                "yes" if exact else "NO: rows + stated loss differ from the events made")
        row(9, f"flow, {threads} thread(s): engine / bpftrace, events carried per second", "",
            f"{carried['libbpf'] / carried['bpftrace']:.2f}", "", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--flow-rate-events", "--events", type=int, default=1000000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print("| § | measurement | figure | ratio | target | result |")
    print("|---|---|---|---|---|---|")

    def row(*cells):
        print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)
    section(args, row, os.path.abspath(args.build))


if __name__ == "__main__":
    sys.exit(main())
