# SPDX-License-Identifier: MIT
"""What tracing one Python costs an unrelated one (issue 20: "no mode may slow processes it does
not trace"), one run, as root:

    python3 benchmarks/bystander_speed.py BUILD [--iterations N]

A bystander, Debian's /usr/bin/python3 not traced, runs N iterations (default 200,000) of a Python
function call, a 1 KiB bytes object (libc malloc through pymalloc) and cMemLeak's CMalloc(16) (the
pymemtrace probes), and times them with time.perf_counter. It runs alone, then while
`pymemtrace-trace -p PID --report summary` traces another, busy Python in each mode, on each engine
that makes it (and `--report flow` of --frames python-probes, with and without
--python-call-stack, --libc and --object-allocator, to /dev/null). Rows: the mode, the engine,
the bystander's time and its ratio to the untraced time: the median of three runs while the same
busy target runs untraced (one before, one between and one after the traced ones), so that the
ratio is the tracing's, not the target's share of the 2 cores. Target and bystander run one
private copy of Debian's python3.11 and libc.so.6 (as benchmarks/run.sh's workloads do), so that
other tracers on a shared machine, attached by path to the system's files, do
not slow them; the table names any bpftrace or engine process running when it started.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")

BYSTANDER = """\
import sys, time
from pymemtrace import cMemLeak
def step(i):
    return i + 1
n = int(sys.argv[1])
started = time.perf_counter()
i = 0
for _ in range(n):
    i = step(i)
    block = bytes(1024)
    kept = cMemLeak.CMalloc(16)
print(time.perf_counter() - started)
"""

# The traced Python: the same work until its stdin closes.
TARGET = """\
import sys, threading
from pymemtrace import cMemLeak
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
def step(i):
    return i + 1
print("ready", flush=True)
i = 0
while not done.is_set():
    i = step(i)
    block = bytes(1024)
    kept = cMemLeak.CMalloc(16)
"""

# (options, engine) of each mode.
MODES = [(["--frames", "probes"], "libbpf"), (["--frames", "probes"], "bpftrace"),
         (["--frames", "python-probes"], "libbpf"), (["--frames", "python-probes"], "bpftrace"),
         (["--libc"], "libbpf"), (["--libc"], "bpftrace"),
         (["--object-allocator"], "libbpf"), (["--object-allocator"], "bpftrace"),
         (["--frames", "python-probes", "--report", "flow"], "libbpf"),
         (["--frames", "python-probes", "--report", "flow"], "bpftrace"),
         (["--frames", "python-probes", "--python-call-stack", "--report", "flow"], "libbpf"),
         (["--frames", "python-probes", "--python-call-stack", "--report", "flow"], "bpftrace"),
         (["--libc", "--report", "flow"], "libbpf"), (["--libc", "--report", "flow"], "bpftrace"),
         (["--object-allocator", "--report", "flow"], "libbpf"),
         (["--object-allocator", "--report", "flow"], "bpftrace")]


def bystander(env, iterations):
    result = subprocess.run([env["BENCH_PYTHON"], "-c", BYSTANDER, str(iterations)], env=env,
                            capture_output=True, text=True, check=True)
    return float(result.stdout)


def while_tracing(options, engine, env, iterations):
    """The bystander's time while the runner traces a busy target in this mode (options None:
    the target untraced)."""
    target = subprocess.Popen([env["BENCH_PYTHON"], "-c", TARGET], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    runner = None
    try:
        target.stdout.readline()
        if options is None:
            return bystander(env, iterations)
        runner = subprocess.Popen([PYTHON, RUNNER, "--engine", engine, "--report", "summary",
                                   *options, "--allow-loss", "-p", str(target.pid),
                                   "-o", os.devnull], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        for line in runner.stderr:
            if "tracing PID" in line:
                break
        else:
            raise SystemExit(f"the runner did not start: {' '.join(options)} on {engine}")
        return bystander(env, iterations)
    finally:
        if runner is not None and runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            runner.communicate(timeout=120)
        target.stdin.close()
        target.wait(timeout=60)


def tracers_running():
    names = set()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name in ("bpftrace", "pymemtrace-engi"):
            names.add(name)
    return sorted(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--iterations", type=int, default=200000)
    options = parser.parse_args()
    private = tempfile.mkdtemp(prefix="pymemtrace-bystander-")
    try:
        run_all(options, private)
    finally:
        shutil.rmtree(private)


def run_all(options, private):
    shutil.copy(os.path.realpath(PYTHON), os.path.join(private, "python3.11"))
    shutil.copy("/lib/x86_64-linux-gnu/libc.so.6", private)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(options.build), "src"),
               LD_LIBRARY_PATH=private, BENCH_PYTHON=os.path.join(private, "python3.11"))
    others = tracers_running()
    untraced = [while_tracing(None, None, env, options.iterations)]
    rows = []
    for index, (mode, engine) in enumerate(MODES):
        rows.append((" ".join(mode), engine, while_tracing(mode, engine, env, options.iterations)))
        if index == len(MODES) // 2 - 1:
            untraced.append(while_tracing(None, None, env, options.iterations))
    untraced.append(while_tracing(None, None, env, options.iterations))
    base = statistics.median(untraced)
    print(f"| mode | engine | bystander ({options.iterations:,} iterations) | ratio to untraced |")
    print("|---|---|---|---|")
    print(f"| target untraced | | {base:.3f} s (runs: "
          + ", ".join(f"{t:.3f}" for t in untraced) + ") | 1.0x |")
    for mode, engine, seconds in rows:
        print(f"| `{mode}` | {engine} | {seconds:.3f} s | {seconds / base:.1f}x |")
    print(f"\nOther tracers running at the start: {', '.join(others) or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()
