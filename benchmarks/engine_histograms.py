# SPDX-License-Identifier: MIT
"""What --histograms adds to an event on pymemtrace-engine (issue 20), as root:

    python3 benchmarks/engine_histograms.py BUILD [--blocks N] [--runs R]
    (or bench.py's section 11)

The target (engine_workload.py) allocates N blocks (default 200,000) of 16 bytes while the
engine traces it by PID, in R interleaved runs (default 5) of each: the plain summary (one
trap and the summary's hash update per event), the same with --histograms (one more hash
update, by size bucket: histograms.bpf.h), and --batch (one trap per 64 events, which the runner
uses for a summary without --histograms). Rows: the medians of the target's time, and their
ratios to the plain engine. Wall times on a shared machine: compare the ratio column, not
absolutes. Each run checks that the summary counted N allocations (and the buckets N).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace import engine  # noqa: E402

PYTHON = "/usr/bin/python3"
FORMS = {"plain": {}, "--histograms": {"histograms": True}, "--batch": {"batch": True}}


def traced_time(build, blocks, options):
    """Seconds the target takes to allocate `blocks` while the engine traces it with
    `options` (EngineRun's keywords)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.join(build, "src"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    target = subprocess.Popen([PYTHON, os.path.join(ROOT, "benchmarks", "engine_workload.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    library = next(os.path.join(build, "src", "pymemtrace", name)
                   for name in os.listdir(os.path.join(build, "src", "pymemtrace"))
                   if name.startswith("cMemLeak.") and name.endswith(".so"))
    try:
        pid = int(target.stdout.readline())
        with engine.EngineRun(pids=[pid], libraries=[library], allow_loss=True,
                              engine=os.path.join(build, "src", "engine", engine.ENGINE),
                              **options) as run:
            run.ready()
            started = time.monotonic()
            target.stdin.write(f"alloc {blocks}\n")
            target.stdin.flush()
            assert target.stdout.readline() == "held\n"
            spent = time.monotonic() - started
            run.stop()
            report = run.report()
        counted = sum(row["count"] for row in report["summary"])
        bucketed = sum(row["count"] for row in report.get("size_buckets", []))
        if counted < blocks or (options.get("histograms") and bucketed != counted):
            raise RuntimeError(f"{options}: {counted} counted, {bucketed} by bucket, of {blocks}")
        return spent
    finally:
        target.kill()
        target.wait()


def section(args, row, build=None):
    """The rows through bench.py's row(section, measurement, figure, ratio, ...)."""
    build = build or os.path.join(ROOT, "build")
    blocks, runs = getattr(args, "histogram_blocks", 200000), getattr(args, "histogram_runs", 5)
    times = {form: [] for form in FORMS}
    for _ in range(runs):
        for form, options in FORMS.items():
            times[form].append(traced_time(build, blocks, options))
    plain = statistics.median(times["plain"])
    for form in FORMS:
        median = statistics.median(times[form])
        row(11, f"engine: {blocks:,} allocations traced, {form} (median of {runs})",
            f"{median:.3f} s, {median / blocks * 1e6:.2f} us an event", f"{median / plain:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", help="the meson build directory")
    parser.add_argument("--blocks", dest="histogram_blocks", type=int, default=200000)
    parser.add_argument("--runs", dest="histogram_runs", type=int, default=5)
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("engine_histograms.py: tracing needs root: run it as root")

    def row(_section, measurement, figure, ratio=""):
        print(f"| {measurement} | {figure} | {ratio} |", flush=True)
    print("| measurement | figure | ratio to plain |\n|---|---|---|")
    section(options, row, os.path.abspath(options.build))


if __name__ == "__main__":
    main()
