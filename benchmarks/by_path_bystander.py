# SPDX-License-Identifier: MIT
"""What a command traced with its libraries attached by path costs other processes on the host
(docs/engine.md, "Commands: libraries attached by path"), as root:

    python3 benchmarks/by_path_bystander.py BUILD [--calls N] [--runs R]

Two bystanders, each timing its own loop (start-up excluded), the best of R runs (default 5;
the load of a shared machine only adds time): one that maps BUILD's cMemLeak and makes N
(default 200,000) allocations through it, and one Python that does not map it and makes N
objects. Each is timed untraced, then while `pymemtrace-trace --report leaks` traces a command
that imported the same cMemLeak and waits: on the engine attached by path (a command's default:
the leaks read in batches where the library has pybatch, so a bystander traps once per 64
events; and the flow, a trap per event), on the engine per PID (--attach-by pid), and on
bpftrace (which attaches by path); then untraced again. Rows: the best loop time and its ratio
to untraced. Wall clock on a shared machine: compare the ratios, not absolutes.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")

# Each prints the seconds its loop took.
MAPS_IT = ("import time; from pymemtrace import cMemLeak; start = time.perf_counter()\n"
           "for _ in range({calls}): cMemLeak.CMalloc(32)\n"
           "print(time.perf_counter() - start)")
DOES_NOT = ("import time; start = time.perf_counter()\n"
            "for _ in range({calls}): bytearray(32)\n"
            "print(time.perf_counter() - start)")
# The traced command: it maps the library, says so, and waits for a line.
WAITING = ("import sys; from pymemtrace import cMemLeak; print('traced', flush=True); "
           "sys.stdin.readline()")


def loop_time(code, env):
    done = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    return float(done.stdout)


def best_times(env, calls, runs):
    return [min(loop_time(code.format(calls=calls), env) for _ in range(runs))
            for code in (MAPS_IT, DOES_NOT)]


def while_traced(options, env, calls, runs):
    """The bystanders' best times while the runner (with `options`) traces the waiting command."""
    runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--lib", env["LIBRARY"],
                               *options, "--", PYTHON, "-c", WAITING],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        if runner.stdout.readline() != "traced\n":
            raise SystemExit(f"the runner failed: {runner.communicate(timeout=60)[1][-800:]}")
        return best_times(env, calls, runs)
    finally:
        runner.stdin.write("\n")
        runner.stdin.flush()
        runner.communicate(timeout=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    src = os.path.join(os.path.abspath(args.build), "src")
    library = next(os.path.join(src, "pymemtrace", name)
                   for name in os.listdir(os.path.join(src, "pymemtrace"))
                   if name.startswith("cMemLeak.") and name.endswith(".so"))
    env = dict(os.environ, PYTHONPATH=src, LIBRARY=library)
    untraced = best_times(env, args.calls, args.runs)
    print("| while a command is traced | bystander mapping cMemLeak | bystander Python not "
          "mapping it |")
    print("|---|---|---|")
    print(f"| nothing traced | {untraced[0]:.3f} s | {untraced[1]:.3f} s |")
    flow = os.path.join(tempfile.mkdtemp(), "flow.txt")  # the flow's rows, apart
    for name, options in (("engine, by path (a command's default; batches)", []),
                          ("engine, by path, flow (a trap per event)",
                           ["--report", "flow", "-o", flow]),
                          ("engine, --attach-by pid", ["--attach-by", "pid"]),
                          ("bpftrace (by path)", ["--engine", "bpftrace"])):
        times = while_traced(options, env, args.calls, args.runs)
        print(f"| {name} | " + " | ".join(f"{t:.3f} s, {t / u:.2f}x"
                                           for t, u in zip(times, untraced)) + " |")
        sys.stdout.flush()
    again = best_times(env, args.calls, args.runs)  # the machine's drift over the run
    print(f"| nothing traced, again | {again[0]:.3f} s | {again[1]:.3f} s |")


if __name__ == "__main__":
    main()
