# SPDX-License-Identifier: MIT
"""What `--depth N` costs per event: the summary report of pymemtrace-trace at depth 1 (the
toolkit's script, keyed by names), 2, 4 (pystack4) and 16 (pystack16), against the same workload
untraced, side by side in one run (interleaved repetitions, medians). The workload allocates from
the bottom of a Python stack DEPTH deep (default 20), so depth 16 walks 16 frames.

    sudo python3 benchmarks/depth.py BUILD_DIR [--events N] [--reps R] [--stack DEPTH] [--native]

--native adds depth 1 and 4 with --native (the record's native caller, keyed and symbolized).

Each run prints the workload's own time for its allocation loop (start-up excluded); a row is
(traced - untraced) / events. Every traced run is checked: its report must count N events.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(os.path.dirname(HERE), "toolkit", "pymemtrace-trace")
PYTHON = "/usr/bin/python3"

WORKLOAD = """\
import sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak

def loop(n):
    start = time.perf_counter()
    for _ in range(n):
        cMemLeak.CMalloc(64)  # one pyalloc (and one free, not traced by the summary)
    print("TIME", time.perf_counter() - start, file=sys.stderr)

def down(levels, n):
    if levels:
        return down(levels - 1, n)
    loop(n)

down(int(sys.argv[2]) - 2, int(sys.argv[3]))
"""


def run(build_src, script, stack, events, depth, options=()):
    argv = [PYTHON, script, build_src, str(stack), str(events)]
    env = dict(os.environ, PYTHONPATH=build_src)
    if depth is None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        return float(done.stderr.split("TIME")[1].split()[0]), events
    with tempfile.TemporaryDirectory() as directory:
        report = os.path.join(directory, "report.json")  # -o links a new file in place
        done = subprocess.run([PYTHON, RUNNER, "--depth", str(depth), *options, "--json", "-o",
                               report,
                               "--lib", os.path.join(build_src, "pymemtrace"), "--", *argv],
                              env=env, capture_output=True, text=True, check=True)
        with open(report) as file:
            counted = sum(e["count"] for e in json.load(file)
                          if any(f["function"] == "loop" for f in e["stack"]))
    return float(done.stderr.split("TIME")[1].split()[0]), counted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stack", type=int, default=20)
    parser.add_argument("--native", action="store_true")
    args = parser.parse_args()
    build_src = os.path.join(os.path.abspath(args.build), "src")
    configs = {"untraced": None, "depth 1": 1, "depth 2": 2, "depth 4": 4, "depth 16": 16}
    if args.native:
        configs = {"untraced": None, "depth 1": 1, "1 native": (1, "--native"), "depth 4": 4,
                   "4 native": (4, "--native")}
    times = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as directory:
        script = os.path.join(directory, "deep.py")
        with open(script, "w") as file:
            file.write(WORKLOAD)
        for rep in range(args.reps):
            names = list(configs) if rep % 2 == 0 else list(reversed(configs))
            for name in names:
                depth, *options = (configs[name] if isinstance(configs[name], tuple)
                                   else (configs[name],))
                seconds, counted = run(build_src, script, args.stack, args.events, depth, options)
                if counted != args.events:
                    sys.exit(f"{name}: the report counted {counted} of {args.events} events")
                times[name].append(seconds)
                print(f"  rep {rep} {name:9s} {seconds:.3f} s", file=sys.stderr, flush=True)
    base = statistics.median(times["untraced"])
    one = statistics.median(times["depth 1"]) - base
    print(f"{'':10s} {'ns/event':>9s} {'x depth 1':>9s}   (stack {args.stack} deep, "
          f"{args.events} events, medians of {args.reps}; untraced loop {base:.3f} s)")
    for name in list(configs)[1:]:
        added = statistics.median(times[name]) - base
        print(f"{name:10s} {added / args.events * 1e9:9.0f} {added / one:9.2f}")


if __name__ == "__main__":
    main()
