# SPDX-License-Identifier: MIT
"""Section 7 of the benchmarks: pymemtrace, tracemalloc and memray side by side on Python 3.14
(issue 23), on workload.py's dense and realistic workloads, in one run, as root:

    benchmarks/run.sh --sections 7            or     python3 benchmarks/peers_314.py [options]

The interpreter is python3.14 of the Debian unstable root tools/sid-root.sh builds (and caches);
benchext.c is built in that root with its gcc against include/. Every run of the workload is
chrooted there by unshare(1) in a mount namespace of its own, with /proc mounted inside it
(memray reads /proc/self/maps): the mount ends with the process, nothing to unmount. unshare
execs the interpreter, so the pid it prints is the one traced from the host:
  untraced; tracemalloc (started at the top); memray run -o FILE --force; memray run --native;
  pymemtrace by bpftrace, @[file, function, line] = count() on pyalloc (bench.py's LOC_PROGRAM);
  pymemtrace by pymemtrace-engine --pid PID --lib EXT (build/src/engine/, meson).
Ratios to untraced are medians of --reps interleaved repetitions (untraced twice a round), and
the cost of a traced event with its Python location aggregated is (traced - untraced) / events.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402
from pymemtrace.trace.engine import EngineRun  # noqa: E402  (bench put src/ on the path)

PYTHON = "/usr/bin/python3.14"  # as the root sees it
ENGINE = os.path.join(ROOT, "build", "src", "engine", "pymemtrace-engine")
CONFIGS = ("untraced", "tracemalloc", "memray", "memray_native", "bpftrace", "engine",
           "engine_batch")
LABELS = {"tracemalloc": "tracemalloc (started at the top)",
          "memray": "memray run -o FILE",
          "memray_native": "memray run --native -o FILE",
          "bpftrace": "pymemtrace, bpftrace: count by Python file, function, line (pyalloc)",
          "engine": "pymemtrace, pymemtrace-engine --pid (pyalloc/pyrealloc/pyfree by location)",
          "engine_batch": "pymemtrace, pymemtrace-engine --pid --batch (the same, in batches)"}


def sid_root():
    made = subprocess.run(["bash", os.path.join(ROOT, "tools", "sid-root.sh")],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"tools/sid-root.sh failed ({made.returncode}): {made.stderr[-1000:]}")
    return made.stdout.strip().splitlines()[-1]


class Root:
    """A work directory in the sid root holding workload.py and benchext built for PYTHON."""

    def __init__(self, root):
        self.root = root
        self.host_dir = tempfile.mkdtemp(prefix="pmt-peers-", dir=os.path.join(root, "tmp"))
        self.dir = "/" + os.path.relpath(self.host_dir, root)  # as the root sees it
        shutil.copytree(os.path.join(ROOT, "include"), os.path.join(self.host_dir, "include"))
        for name in ("benchext.c", "workload.py"):
            shutil.copy(os.path.join(HERE, name), self.host_dir)
        ask = "import sysconfig as s; print(s.get_config_var('INCLUDEPY'), s.get_config_var('EXT_SUFFIX'))"
        include, suffix = self.run([PYTHON, "-c", ask]).split()
        self.ext = os.path.join(self.host_dir, "benchext" + suffix)
        self.run(["gcc", "-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                  "-shared", "-fPIC", "-isystem", include, "-Iinclude", "benchext.c",
                  "-o", os.path.basename(self.ext)])
        self.version = self.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"])
        self.memray = self.run([PYTHON, "-c", "import memray; print(memray.__version__)"])

    def wrapper(self):
        return ["unshare", "--mount-proc=/proc", f"--root={self.root}", f"--wd={self.dir}"]

    def run(self, argv):
        done = subprocess.run([*self.wrapper(), *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} in {self.root} failed: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def remove(self):
        shutil.rmtree(self.host_dir, ignore_errors=True)


class EngineSession:
    """pymemtrace-engine on one pid, as bench.py's sessions: start() returns once attached,
    stop() the report (the engine ends by itself once the process has exited)."""

    def __init__(self, pid, library, batch=False, engine=ENGINE):
        self.run = EngineRun(pids=[pid], libraries=[library], engine=engine, batch=batch)

    def start(self):
        self.run.__enter__()
        self.run.ready()
        return self

    def stop(self):
        try:
            return self.run.report()
        finally:
            self.run.__exit__(None, None, None)


class Gated:
    """The `env` bench.run_gated expects: the workload's environment (no private libc here)."""

    def __init__(self, root):
        self.env = {"PATH": "/usr/bin:/bin", "BENCHEXT_DIR": root.dir,
                    "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}


def argv_of(root, config, kind, n):
    workload = [f"{root.dir}/workload.py", kind, str(n), "--gate"]
    if config == "tracemalloc":
        return [PYTHON, *workload, "--tracemalloc"]
    if config.startswith("memray"):
        native = ["--native"] if config == "memray_native" else []
        return [PYTHON, "-m", "memray", "run", "--force", *native, "-o",
                f"{root.dir}/memray.bin", *workload]
    return [PYTHON, *workload]


def tracer_of(root, config):
    if config == "bpftrace":  # no -p: bpftrace 0.17 resolves a USDT path with -p in the host
        return bench.bpftrace(bench.LOC_PROGRAM.format(ext=root.ext), pid_args=False)
    if config == "engine":
        return lambda pid: EngineSession(pid, root.ext)
    if config == "engine_batch":
        return lambda pid: EngineSession(pid, root.ext, batch=True)
    if config.startswith("engine_batch:"):  # --batch-engine NAME=PATH: another build's engine
        engine = VARIANTS[config.split(":", 1)[1]]
        return lambda pid: EngineSession(pid, root.ext, batch=True, engine=engine)
    return None


def events_seen(config, lines, kind, line_no):
    """(events the tracer counted at the allocating line, all events it counted)."""
    if config == "bpftrace":
        located = bench.map_values(lines, "loc")
        at_line = sum(v for k, v in located.items() if k.split(",")[-1].strip() == str(line_no))
        return at_line, sum(located.values())
    at_line = sum(e["count"] for e in lines["summary"]
                  if e.get("line") == line_no) if "summary" in lines else None
    c = lines["counters"]
    return at_line, c["pyalloc"] + c["pyrealloc"] + c["pyfree"]


# --batch-engine NAME=PATH: engines of other builds, measured in the same run beside this one's
# (each a row "engine_batch:NAME"), to compare changes to the engine side by side.
VARIANTS = {}
# --configs A,B: only these of CONFIGS (untraced always), for a quicker side-by-side run.
SELECTED = set(CONFIGS)


def configs():
    return (tuple(c for c in CONFIGS if c == "untraced" or c in SELECTED)
            + tuple(f"engine_batch:{name}" for name in VARIANTS))


def label(config):
    if config.startswith("engine_batch:"):
        name = config.split(":", 1)[1]
        return f"pymemtrace, pymemtrace-engine --pid --batch ({name}: {VARIANTS[name]})"
    return LABELS[config]


def measure(root, sizes, reps):
    gated = Gated(root)
    runs = {(kind, c): [] for kind in sizes for c in configs()}
    for rep in range(reps):
        for kind, n in sizes.items():
            names = list(configs()[1:])
            if rep % 2:
                names.reverse()
            for config in ["untraced", *names, "untraced"]:
                fields, _out, lines, _ = bench.run_gated(
                    gated, argv_of(root, config, kind, n), tracer_of(root, config),
                    wrapper=root.wrapper())
                runs[(kind, config)].append((float(fields["TIME"]), lines))
    return runs


def section(args, row, sizes=None):
    """Measures and reports section 7 through row(section, measurement, figure, ratio, ...)."""
    sizes = sizes or {"dense": args.dense_314, "realistic": args.realistic_314}
    if not os.access(ENGINE, os.X_OK):
        raise RuntimeError(f"{ENGINE} is missing: build it (meson setup build && "
                           "meson compile -C build src/engine/pymemtrace-engine)")
    root = Root(sid_root())
    try:
        runs = measure(root, sizes, args.reps_314)
    finally:
        root.remove()
    row(7, "interpreter and peers", f"Python {root.version} (Debian unstable root), "
        f"memray {root.memray}; {args.reps_314} interleaved repetitions", "", "", "")
    for kind, n in sizes.items():
        line_no = bench.alloc_line(kind)
        t = {c: bench.median([time for time, _ in runs[(kind, c)]]) for c in configs()}
        base = t["untraced"]
        row(7, f"{kind} (3.14): untraced", f"{base:.3f} s ({n} allocations)", "1.00", "", "")
        for config in configs()[1:]:
            figure = f"{t[config]:.3f} s"
            if config.startswith(("bpftrace", "engine")):
                seen = [events_seen(config, lines, kind, line_no)
                        for _, lines in runs[(kind, config)]]
                at_line = min(s[0] for s in seen) if seen[0][0] is not None else None
                events = min(s[1] for s in seen)
                per_event = (f"{(t[config] - base) / events * 1e9:.0f}" if events else "?")
                figure += (f"; {per_event} ns/event with the location ({events} events"
                           + (f", {at_line} of {n} allocations at the line" if at_line is not None
                              else "") + ")")
            row(7, f"{kind} (3.14): {label(config)}", figure, f"{t[config] / base:.2f}", "", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.peers_314_options(parser)
    parser.add_argument("--batch-engine", action="append", default=[], metavar="NAME=PATH",
                        help="also measure another build's engine --batch, beside this one's")
    parser.add_argument("--configs", help="only these of " + ",".join(CONFIGS[1:]))
    args = parser.parse_args()
    if args.configs:
        SELECTED.intersection_update(args.configs.split(","))
    for variant in args.batch_engine:
        name, _, path = variant.partition("=")
        VARIANTS[name] = os.path.abspath(path)
    if os.geteuid() != 0:
        sys.exit("peers_314.py: chroot and tracing need root: run it as root")
    bench.mount_tracefs()
    section(args, bench.row)
    print(f"Machine: {bench.machine()}")
    print("| § | measurement | figure | ratio | target | result |")
    print("|---|---|---|---|---|---|")
    for r in bench.ROWS:
        print("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")


if __name__ == "__main__":
    main()
