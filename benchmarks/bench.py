# SPDX-License-Identifier: MIT
"""pymemtrace's benchmarks: runs what benchmarks/run.sh built and prints one table of ratios.

    bench.py BUILD_DIR [--reps R] [--quick] [--sections 1,...,11] [--no-heaptrack]
             [--loop N] [--dense N] [--realistic N] [--capacity N] [--startup-runs N]
             [--json FILE]

Sections (each row of the table says which):
  1  untraced cost: Google Benchmark, wrapper vs plain, medians of interleaved repetitions;
     bytes a wrapper adds at a call site (gcc -O2, nm -S)
  2  traced cost per event with bpftrace attached: uprobe floor, count by domain, 5-byte vs
     1-byte nop site (C program); pyalloc by location and the leak report (Python workload)
  3  Python frames the seed's way (CPython's function__entry/return/line probes + alloc) vs the
     py* probes, on the same workloads
  4  peers on the same workloads: tracemalloc, bcc memleak's method (libc uprobes+uretprobes,
     in bpftrace), heaptrack
  5  capacity: the highest rate the summary and leak reports sustain losing nothing, and what the
     flow report (printf per event) loses at that rate; the flow as the runner reads it, from
     bpftrace's JSON and from framed text, at paced rates (the highest with nothing lost)
  6  start-up: from spawning `pymemtrace-trace -- CMD` to the command's first line, the
     command's library given (--lib) or found by the runner's scan; the same command untraced,
     and bpftrace alone (a BEGIN-only program, the floor)
  7  peers on Python 3.14 (issue 23): the dense and realistic workloads untraced, under
     tracemalloc, memray run (and --native), and pymemtrace by bpftrace and by pymemtrace-engine,
     in the Debian unstable root of tools/sid-root.sh (peers_314.py; not in the default sections)
  8  the runner's engines (issue 20): attach, a leak report of 1,000,000 live blocks (time and
     peak RSS), exit to report, for pymemtrace-engine alone and `pymemtrace-trace -p` on the
     engine and on bpftrace (engine_vs_bpftrace.py; needs the meson build's engine)
  9  --interval snapshots: the tracer's CPU per snapshot of N live blocks, pymemtrace-engine vs
     the bpftrace runner, and what snapshots add to the engine's events (engine_snapshots.py;
     needs build/src/engine; not in the default sections)
  10 the flow's rate, bpftrace and pymemtrace-engine side by side: events per second carried
     and lost at the highest rate the target reaches while traced, 1 and 2 threads
     (flow_rate.py, with the meson build's engine and cMemLeak; not in the default sections)
  11 what --histograms adds to an event on pymemtrace-engine: allocations traced by PID, plain,
     with --histograms and with --batch (engine_histograms.py, with the meson build's engine and
     cMemLeak; not in the default sections)

One script (about 700 lines) on purpose: the sections share the private copies, the workloads'
gated runs and the table every row goes to, and the table is only meaningful measured in one run.

Every measurement is repeated R times, interleaved (rep 1 of every configuration, then rep 2...),
and the median is reported. Figures are ratios measured side by side in one run.

Isolation from a shared machine: uprobes attach to a file (inode). Other users' tracers attached
system-wide to /usr/bin/python3.11 or libc.so.6 would trap in our processes too, so the workloads
run a byte-identical private copy of both (BUILD_DIR/python3.11, BUILD_DIR/lib/libc.so.6 through
LD_LIBRARY_PATH), and our tracers attach to those copies with -p PID. Nothing here traps in
anybody else's processes either.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace.procfs import mount_tracefs  # noqa: E402
from pymemtrace.trace.reports import Shortener  # noqa: E402
from pymemtrace.trace.scripts import bpftrace_script  # noqa: E402
from pymemtrace.trace.session import BpftraceSession  # noqa: E402

ROWS = []  # (section, measurement, figure, ratio, target, result)


def row(section, measurement, figure, ratio="", target="", result=""):
    ROWS.append((str(section), measurement, figure, ratio, target, result))
    print(f"  [{section}] {measurement}: {figure}  {ratio}  {target}  {result}", file=sys.stderr,
          flush=True)


def verdict(ok):
    return "met" if ok else "**missed**"


def median(values):
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# Processes: a workload started with a gate, a tracer attached to its pid, then released.

class Env:
    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.python = os.path.join(self.build, "python3.11")
        self.libc = os.path.join(self.build, "lib", "libc.so.6")
        self.ext = os.path.join(self.build, "benchext" + sysconfig.get_config_var("EXT_SUFFIX"))
        self.loop = {5: os.path.join(self.build, "traced_loop_nop5"),
                     1: os.path.join(self.build, "traced_loop_nop1")}
        self.env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(self.build, "lib"),
                        BENCHEXT_DIR=self.build, PYTHONDONTWRITEBYTECODE="1")
        self.workload = os.path.join(HERE, "workload.py")
        self.scratch = tempfile.mkdtemp(prefix="bench-", dir=self.build)
        self.private_copies()

    def private_copies(self):
        """Byte-identical copies of this Python and of libc.so.6 (and libpython, for the
        embedded benchmark): see the module's docstring."""
        os.makedirs(os.path.join(self.build, "lib"), exist_ok=True)
        libdir = sysconfig.get_config_var("LIBDIR") or "/usr/lib/x86_64-linux-gnu"
        libc = next(p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6",
                                "/lib64/libc.so.6") if os.path.exists(p))
        for source, target in ((os.path.realpath(sys.executable), self.python),
                               (libc, self.libc),
                               (os.path.join(libdir, sysconfig.get_config_var("INSTSONAME") or ""),
                                os.path.join(self.build, "lib", "libpython.so.copy"))):
            if os.path.isfile(source):
                shutil.copy2(source, target)
        soname = sysconfig.get_config_var("INSTSONAME")
        if soname and os.path.exists(os.path.join(self.build, "lib", "libpython.so.copy")):
            os.replace(os.path.join(self.build, "lib", "libpython.so.copy"),
                       os.path.join(self.build, "lib", soname))


def parse_fields(line):
    parts = line.split()
    return {parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2)}


class FileSession:
    """A bpftrace program writing to a file (-o), for high-rate output the reader thread of
    BpftraceSession would slow down. Attached once start() returns, as BpftraceSession."""

    def __init__(self, program, args, positional, path):
        # -o output is block-buffered: BEGIN touches a file instead (system() needs --unsafe).
        self.marker = path + ".ready"
        begin = re.search(r"^BEGIN\s*\{", program, re.M)
        marker = f'system("touch {self.marker}");'
        self.program = (program[:begin.end()] + marker + program[begin.end():] if begin
                        else "BEGIN { " + marker + " }\n" + program)
        self.args, self.positional, self.path = list(args), [str(p) for p in positional], path

    def start(self):
        self.proc = subprocess.Popen(["bpftrace", "--unsafe", "-o", self.path, *self.args,
                                      "-e", self.program,
                                      *self.positional], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.exists(self.marker):
                return self
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("bpftrace did not attach: " + self.proc.stderr.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
        self.proc.wait(timeout=120)
        self.stderr = self.proc.stderr.read()
        with open(self.path, errors="replace") as f:
            return f.read().splitlines()


class RunnerSession:
    """toolkit/pymemtrace-trace -p PID ... --json: the report as users run it. It attaches,
    says "tracing PID", and prints its report once the process has exited."""

    RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")

    def __init__(self, pid, words, path):
        self.pid, self.words, self.path = pid, list(words), path

    def start(self):
        self.proc = subprocess.Popen([self.RUNNER, "-p", str(self.pid), *self.words, "--json",
                                      "-o", self.path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        seen = []
        for line in self.proc.stderr:
            seen.append(line)
            if "tracing PID" in line:
                return self
        raise RuntimeError("pymemtrace-trace did not attach: " + "".join(seen))

    def stop(self):
        try:
            self.proc.wait(timeout=120)  # it ends by itself once the process is gone
        except subprocess.TimeoutExpired:
            self.proc.send_signal(2)
            self.proc.wait(timeout=120)
        self.stderr = self.proc.stderr.read()
        with open(self.path) as f:
            return json.load(f)


def runner(env, *words):
    def factory(pid):
        return RunnerSession(pid, words, os.path.join(env.scratch, f"runner-{pid}.json"))
    return factory


def run_gated(env, argv, tracer=None, wrapper=()):
    """Starts argv (which prints READY <pid> and waits for a line), attaches `tracer(pid)` (a
    session factory) if given, releases it, and returns (fields of its TIME line, all its
    stdout lines, the tracer's output lines or None, seconds from TIME to exit)."""
    t_spawn = time.monotonic()
    proc = subprocess.Popen([*wrapper, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env.env)
    ready = proc.stdout.readline()
    while ready and not ready.startswith("READY"):  # heaptrack prints its own lines first
        ready = proc.stdout.readline()
    if not ready.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"{argv}: no READY line: {proc.stderr.read()}")
    t_ready = time.monotonic()
    session = None
    try:
        if tracer is not None:
            session = tracer(int(ready.split()[1])).start()
        t_go = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = []
        fields = None
        for line in proc.stdout:
            out.append(line.rstrip("\n"))
            if line.startswith("TIME "):
                fields = parse_fields(line)
                t_time = time.monotonic()
        proc.wait()
        t_exit = time.monotonic()
        exit_lag = t_exit - t_time if fields else float("nan")
        wall = (t_ready - t_spawn) + (t_exit - t_go)  # the attach wait left out
        err = proc.stderr.read()
        if proc.returncode != 0 or fields is None:
            raise RuntimeError(f"{argv} failed ({proc.returncode}): {err[-2000:]}")
    finally:
        lines = session.stop() if session is not None else None
        if proc.poll() is None:
            proc.kill()
    return fields, out, lines, (exit_lag, wall)


class TextSession(BpftraceSession):
    """The runner's session; stop() also returns the maps as bpftrace's text output shows them,
    which the analyses below read."""

    def stop(self, limit=120.0):
        return super().stop(limit) + self.map_lines()


def session(program, args=(), positional=()):
    return TextSession(program, positional=positional, options=args)


def bpftrace(program, pid_args=True, positional_pid=True, extra_positional=()):
    """A session factory: bpftrace -p PID, $1 = PID."""
    def factory(pid):
        return session(program, args=["-p", str(pid)] if pid_args else [],
                       positional=([pid] if positional_pid else []) + list(extra_positional))
    return factory


def map_values(lines, name):
    """{key text: int} of `@name[key]: value` lines (and `@name: value` as key '')."""
    result = {}
    pattern = re.compile(r"^@" + re.escape(name) + r"(?:\[(.*)\])?: (-?\d+)$")
    for line in lines or ():
        m = pattern.match(line.strip())
        if m:
            result[m.group(1) or ""] = int(m.group(2))
    return result


def toolkit(name):
    with open(os.path.join(ROOT, "toolkit", name)) as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Section 1: untraced cost and code size

def section_untraced(env, args):
    out = os.path.join(env.scratch, "untraced.json")
    reps = 5 if args.quick else 15
    cmd = [os.path.join(env.build, "untraced"), f"--benchmark_repetitions={reps}",
           "--benchmark_enable_random_interleaving=true",
           f"--benchmark_min_time={0.03 if args.quick else 0.05}",
           "--benchmark_report_aggregates_only=true", f"--benchmark_out={out}",
           "--benchmark_out_format=json"]
    done = subprocess.run(cmd, env=env.env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr[-2000:]}")
    with open(out) as f:
        data = json.load(f)
    med = {b["run_name"]: b for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
    for domain, label in (("c_heap", "malloc/free"), ("pymem_raw", "PyMem_RawMalloc/RawFree"),
                          ("pymem", "PyMem_Malloc/Free"), ("pyobject", "PyObject_Malloc/Free")):
        for loop, what in (("tight", "64 B alloc+free"), ("mix", "16 B-4 KiB mix, 1024 live")):
            b = med[f"{domain}/{loop}"]
            ratio = b["ratio"]
            row(1, f"untraced {label}, {what}: wrapper / plain",
                f"{b['pymemtrace_ns']:.2f} vs {b['plain_ns']:.2f} ns", f"{ratio:.3f}", "<= 1.02",
                verdict(ratio <= 1.02))

    sizes = {}
    for wrapped in (0, 1):
        path = os.path.join(env.build, f"codesize{wrapped}.o")  # run.sh; meson: an archive
        if not os.path.exists(path):
            path = os.path.join(env.build, f"libcodesize{wrapped}.a")
        text = subprocess.run(["nm", "-S", path],
                              check=True, capture_output=True, text=True).stdout
        sizes[wrapped] = {p[3]: int(p[1], 16) for p in (l.split() for l in text.splitlines())
                          if len(p) == 4 and p[2] in "tT"}
    for site in ("malloc", "realloc", "free"):
        plain = sizes[0][f"site_{site}"]
        hot = sizes[1][f"site_{site}"]
        cold = sizes[1].get(f"site_{site}.cold", 0)
        row(1, f"code at one {site} call site (gcc -O2): wrapped vs plain",
            f"{hot} vs {plain} B hot (+{hot - plain}), +{cold} B cold", f"{hot / plain:.2f}",
            "report", "")
    once = sum(v for k, v in sizes[1].items() if k.startswith("pymemtrace_detail_"))
    row(1, "code once per translation unit (cold helpers, gcc -O2)",
        f"{once} B .text.unlikely + 6 x 6 B probe sites per shared object", "", "report", "")
    section_instructions(env)


def callgrind_instructions(argv):
    """Instructions executed by argv, as callgrind counts them (repeatable, whatever the load)."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(["valgrind", "--tool=callgrind",
                               f"--callgrind-out-file={scratch}/out", *argv],
                              capture_output=True, text=True)
    match = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"callgrind {argv}: {done.stderr[-1000:]}")
    return int(match.group(1).replace(",", ""))


def section_instructions(env):
    """Instructions a wrapper adds to an alloc+free pair, untraced: the floor is one compare and
    branch a call (4 a pair)."""
    if shutil.which("valgrind") is None:
        row(1, "untraced instructions per alloc+free pair", "valgrind not installed", "", "", "")
        return
    n = 100000
    for cc in ("gcc", "clang"):
        binary = os.path.join(env.build, f"pair_instructions_{cc}")
        for family, label in (("c", "malloc/free"), ("realloc", "realloc(NULL, n)/free")):
            counts = {kind: callgrind_instructions([binary, kind, family, str(n)])
                      for kind in ("plain", "wrapped")}
            added = (counts["wrapped"] - counts["plain"]) / n
            row(1, f"untraced instructions a {label} pair adds ({cc} -O2, callgrind)",
                f"+{added:.2f} per pair", "", "+4", verdict(added <= 4.01))


# ---------------------------------------------------------------------------------------------
# Section 2: traced cost per event, C program

def section_floor(env, args, results):
    n = args.loop
    paths = env.loop
    programs = {
        "untraced": None,
        "floor": "usdt:{n5}:pymemtrace:alloc, usdt:{n1}:pymemtrace:alloc {{ }}",
        "count": "usdt:{n5}:pymemtrace:alloc, usdt:{n1}:pymemtrace:alloc {{ @[arg2] = count(); }}",
    }
    times = {(p, nop): [] for p in programs for nop in (5, 1)}
    counted = []
    for rep in range(args.reps):
        for name, text in programs.items():
            tracer = None
            if text:
                tracer = session(text.format(n5=paths[5], n1=paths[1])).start()
            try:
                for nop in ((5, 1) if rep % 2 == 0 else (1, 5)):
                    fields, _, _, _ = run_gated(env, [paths[nop], str(n), "1", "gate"])
                    times[(name, nop)].append(float(fields["TIME"]))
            finally:
                lines = tracer.stop() if tracer else None
            if name == "count":
                counted.append(sum(map_values(lines, "").values()))
    per_event = {}
    for nop in (5, 1):
        base = median(times[("untraced", nop)])
        for name in ("floor", "count"):
            per_event[(name, nop)] = (median(times[(name, nop)]) - base) / n * 1e9
    results["floor_ns"] = per_event[("floor", 5)]
    f5 = per_event[("floor", 5)]
    row(2, "(a) uprobe floor: empty handler on alloc, 5-byte nop site (C loop)",
        f"{f5:.0f} ns/event", "1.00", "", "")
    r = per_event[("floor", 1)] / f5
    row(2, "(a') uprobe floor, 1-byte nop site (-DPYMEMTRACE_CONFIG_NOP5=0)",
        f"{per_event[('floor', 1)]:.0f} ns/event", f"{r:.2f}", "> 1 (nop5 faster)",
        verdict(r > 1))
    ok_count = all(c == 2 * n for c in counted)
    results["floor_counted"] = counted
    r = per_event[("count", 5)] / f5
    row(2, "(b) alloc counted by domain, @[arg2] = count() (the extra is bpftrace's map update)",
        f"{per_event[('count', 5)]:.0f} ns/event; counts exact: "
        f"{'yes' if ok_count else 'NO ' + str(counted) + ' of ' + str(2 * n)}",
        f"{r:.2f}", "report", "" if ok_count else "**counts wrong**")
    r = per_event[("count", 1)] / per_event[("floor", 1)]
    row(2, "(b') the same on 1-byte nop sites, vs their floor",
        f"{per_event[('count', 1)]:.0f} ns/event", f"{r:.2f}", "", "")
    untraced = median(times[("untraced", 5)]) / n * 1e9
    row(2, "untraced C loop (pymemtrace_malloc(64)+free), for reference",
        f"{untraced:.1f} ns/iteration", "", "", "")


# ---------------------------------------------------------------------------------------------
# Sections 2-4 on the Python workloads: one matrix of configurations, interleaved

LOC_PROGRAM = """
usdt:{ext}:pymemtrace:pyalloc /pid == $1/ {{ @loc[str(arg3), str(arg4), arg5] = count(); }}
"""

SEED_PROGRAM = """
usdt:{python}:python:function__entry /pid == $1/ {{ @file[tid] = arg0; @func[tid] = arg1; @line[tid] = arg2; }}
usdt:{python}:python:function__return /pid == $1/ {{ delete(@file[tid]); delete(@func[tid]); delete(@line[tid]); }}
usdt:{python}:python:line /pid == $1/ {{ @file[tid] = arg0; @func[tid] = arg1; @line[tid] = arg2; }}
usdt:{ext}:pymemtrace:alloc /pid == $1/ {{ @loc[str(@file[tid]), str(@func[tid]), @line[tid]] = count(); }}
END {{ clear(@file); clear(@func); clear(@line); }}
"""

MEMLEAK_PROGRAM = """
uprobe:{libc}:malloc /pid == $1/ {{ @req[tid] = arg0; }}
uprobe:{libc}:calloc /pid == $1/ {{ @req[tid] = arg0 * arg1; }}
uprobe:{libc}:realloc /pid == $1/ {{ delete(@live[arg0]); @req[tid] = arg1; }}
uretprobe:{libc}:malloc, uretprobe:{libc}:calloc, uretprobe:{libc}:realloc /pid == $1/
{{ if (retval != 0) {{ @live[retval] = @req[tid]; @allocs = count(); }} delete(@req[tid]); }}
uprobe:{libc}:free /pid == $1/ {{ delete(@live[arg0]); @frees = count(); }}
END {{ clear(@live); clear(@req); }}
"""


def configs(env, args):
    fmt = dict(ext=env.ext, python=env.python, libc=env.libc)
    c = {
        "baseline": {},
        "alloc_empty": {"tracer": bpftrace(f"usdt:{env.ext}:pymemtrace:alloc {{ }}",
                                           positional_pid=False), "only": "dense"},
        "pyalloc_empty": {"tracer": bpftrace(f"usdt:{env.ext}:pymemtrace:pyalloc {{ }}",
                                             positional_pid=False), "only": "dense"},
        "pyalloc_loc": {"tracer": bpftrace(LOC_PROGRAM.format(**fmt))},
        "summary": {"tracer": runner(env, "--report", "summary")},
        "leaks": {"tracer": runner(env, "--report", "leaks")},
        "leaks_bt": {"tracer": bpftrace(toolkit("pymemtrace_leaks.bt")), "only": "dense"},
        "seed_toolkit": {"tracer": runner(env, "--frames", "python-probes", "--report",
                                          "summary")},
        "seed": {"tracer": bpftrace(SEED_PROGRAM.format(**fmt))},
        "tracemalloc": {"flags": ["--tracemalloc"]},
        "memleak": {"tracer": bpftrace(MEMLEAK_PROGRAM.format(**fmt))},
    }
    if not args.no_heaptrack and shutil.which("heaptrack"):
        c["heaptrack"] = {"heaptrack": True}
    return c


def alloc_line(kind):
    with open(os.path.join(HERE, "workload.py")) as f:
        return next(no for no, text in enumerate(f, 1)
                    if text.rstrip().endswith("# ALLOC_LINE " + kind))


def run_matrix(env, args):
    sizes = {"dense": args.dense, "realistic": args.realistic}
    cfgs = configs(env, args)
    runs = {(w, c): [] for w in sizes for c in cfgs}
    for rep in range(args.reps):
        for kind, n in sizes.items():
            names = list(cfgs)[1:]
            if rep % 2:
                names.reverse()
            # The cheap configurations whose small overhead is compared run twice a round.
            names = ["baseline", *names, "baseline", "summary"]
            for name in names:
                cfg = cfgs[name]
                if cfg.get("only", kind) != kind:
                    continue
                argv = [env.python, env.workload, kind, str(n), "--gate", *cfg.get("flags", [])]
                wrapper = ()
                if cfg.get("heaptrack"):
                    wrapper = ("heaptrack", "-o", os.path.join(env.scratch, f"ht-{kind}-{rep}"))
                fields, out, lines, lag = run_gated(env, argv, cfg.get("tracer"), wrapper)
                runs[(kind, name)].append({"time": float(fields["TIME"]), "out": out,
                                           "lines": lines, "exit_lag": lag[0], "wall": lag[1]})
                print(f"    rep {rep} {kind:9s} {name:14s} {float(fields['TIME']):8.3f} s",
                      file=sys.stderr, flush=True)
    return sizes, runs


def from_report(kind, entries):
    """Allocations pymemtrace-trace's JSON report gives to the workload's allocating line."""
    line = alloc_line(kind)
    return sum(e["count"] for e in entries
               if e["file"].endswith("workload.py") and e["line"] == line)


def located(kind, lines, name="loc"):
    """Events the program attributed to the workload's allocating line."""
    line = alloc_line(kind)
    return sum(v for k, v in map_values(lines, name).items()
               if "workload.py" in k and re.search(rf",\s*{line}(,|$)", k))


def python_rows(env, args, results, sizes, runs):
    t = {key: median([r["time"] for r in v]) for key, v in runs.items() if v}
    floor = results.get("floor_ns")
    n = sizes["dense"]

    # Section 2, on the dense Python workload: per event over untraced.
    base = t[("dense", "baseline")]
    def per_event(name, events):
        return (t[("dense", name)] - base) / events * 1e9
    pe = {"alloc_empty": per_event("alloc_empty", n),
          "pyalloc_empty": per_event("pyalloc_empty", n),
          "pyalloc_loc": per_event("pyalloc_loc", n),
          "leaks": per_event("leaks", 2 * n - 64),
          "leaks_bt": per_event("leaks_bt", 2 * n - 64)}
    results["python_per_event"] = pe
    def vs_floor(value):
        return f"{value / floor:.2f}" if floor else ""
    row(2, "uprobe floor in the Python workload: empty handler on alloc",
        f"{pe['alloc_empty']:.0f} ns/event", vs_floor(pe["alloc_empty"]), "", "")
    own = pe["pyalloc_empty"] / pe["alloc_empty"]
    row(2, "pymemtrace's own work: empty handler on pyalloc (adds the Python location lookup) "
        "vs empty handler on alloc, same workload",
        f"{pe['pyalloc_empty']:.0f} ns/event (+{pe['pyalloc_empty'] - pe['alloc_empty']:.0f})",
        f"{own:.2f}", "<= 1.20", verdict(own <= 1.20))
    lookups = [parse_fields(subprocess.run(
        [env.python, env.workload, "locate", "100000"], env=env.env, check=True,
        capture_output=True, text=True).stdout) for _ in range(3)]
    new = median([float(f["LOCATE_NEW_FRAME"]) for f in lookups])
    same = median([float(f["LOCATE_SAME_FRAME"]) for f in lookups])
    row(2, "the Python location lookup alone, no tracer (C loop in the extension)",
        f"{new:.0f} ns from a new frame, {same:.0f} ns again in the same frame",
        f"{new / pe['alloc_empty']:.2f}", "<= 0.20 of the floor", verdict(new <= 0.2 * pe["alloc_empty"]))
    exact = all(located("dense", run["lines"]) == n for run in runs[("dense", "pyalloc_loc")])
    row(2, "(c) pyalloc aggregated by Python location, @[str(file), str(function), line] = count()",
        f"{pe['pyalloc_loc']:.0f} ns/event; counts exact: {'yes' if exact else 'NO'}",
        vs_floor(pe["pyalloc_loc"]), "report", "" if exact else "**counts wrong**")
    leak_ok = all(from_report("dense", run["lines"]) == 64 for run in runs[("dense", "leaks")])
    row(2, "(d) leak report: toolkit/pymemtrace-trace --report leaks (pyalloc + pyfree events)",
        f"{pe['leaks']:.0f} ns/event; finds the 64 leaked blocks: {'yes' if leak_ok else 'NO'}",
        vs_floor(pe["leaks"]), "report", "" if leak_ok else "**leaks wrong**")
    leak_ok = all(sum(1 for l in run["lines"] if l.startswith("@live[")) == 64
                  for run in runs[("dense", "leaks_bt")])
    row(2, "(d') the standalone toolkit/pymemtrace_leaks.bt (basename cut in BPF)",
        f"{pe['leaks_bt']:.0f} ns/event; finds the 64: {'yes' if leak_ok else 'NO'}",
        vs_floor(pe["leaks_bt"]), "report", "" if leak_ok else "**leaks wrong**")

    # Section 3: the seed's way vs the py* probes, added time over untraced.
    for kind in sizes:
        b = t[(kind, "baseline")]
        seed, loc = t[(kind, "seed")] - b, t[(kind, "pyalloc_loc")] - b
        seed_ok = min(located(kind, run["lines"]) for run in runs[(kind, "seed")]) / sizes[kind]
        # When the py* probes add less than the spread of the untraced runs, the ratio is only
        # known to be at least seed / spread.
        spread = max(r["time"] for r in runs[(kind, "baseline")]) - min(
            r["time"] for r in runs[(kind, "baseline")])
        if loc < spread:
            r, text = seed / spread, f">= {seed / spread:.0f}"
            loc_text = f"< {spread:.3f} s (below the spread of untraced runs)"
        else:
            r, text, loc_text = seed / loc, f"{seed / loc:.1f}", f"+{loc:.3f} s"
        row(3, f"{kind}: added time, bpftrace one-liners: seed's way (CPython entry/return/line "
            "+ alloc) / pyalloc by location",
            f"+{seed:.3f} s vs {loc_text} (untraced {b:.3f} s); seed puts {seed_ok:.1%} on "
            "the allocating line", text, ">= 10", verdict(r >= 10))
        seed, pm = t[(kind, "seed_toolkit")] - b, t[(kind, "summary")] - b
        seed_ok = min(from_report(kind, run["lines"])
                      for run in runs[(kind, "seed_toolkit")]) / sizes[kind]
        r = seed / pm
        row(3, f"{kind}: added time, toolkit summary: pymemtrace-trace --frames python-probes "
            "/ default (py* probes)",
            f"+{seed:.3f} s vs +{pm:.3f} s; seed puts {seed_ok:.1%} on the allocating line",
            f"{r:.1f}", ">= 10", verdict(r >= 10))

    # Section 4: peers, wall time of the timed part over untraced.
    for kind in sizes:
        b = t[(kind, "baseline")]
        answer = {}
        share = min(from_report(kind, run["lines"])
                    for run in runs[(kind, "summary")]) / sizes[kind]
        answer["summary"] = "yes" if share == 1 else f"partly ({share:.1%} on the line)"
        ok_tm = all(int(next(l for l in run["out"] if l.startswith("TRACEMALLOC_LINE")).split()[1])
                    >= 64 for run in runs[(kind, "tracemalloc")])
        answer["tracemalloc"] = "yes" if ok_tm else "no"
        seen = min(sum(map_values(run["lines"], "allocs").values())
                   for run in runs[(kind, "memleak")])
        answer["memleak"] = f"no (native only; saw {seen} mallocs)"
        answer["heaptrack"] = "no (native stacks only)"
        share = min(from_report(kind, run["lines"])
                    for run in runs[(kind, "seed_toolkit")]) / sizes[kind]
        answer["seed_toolkit"] = "yes" if share >= 0.99 else f"partly ({share:.1%} on the line)"
        labels = {"summary": "pymemtrace summary report (pymemtrace-trace, py* probes)",
                  "tracemalloc": "tracemalloc (started at the top)",
                  "memleak": "bcc memleak's method (libc uprobes+uretprobes, no stacks)",
                  "heaptrack": "heaptrack",
                  "seed_toolkit": "seed's way (pymemtrace-trace --frames python-probes)"}
        wall = {name: median([r["wall"] for r in runs[(kind, name)]])
                for name in list(labels) + ["baseline"] if runs.get((kind, name))}
        row(4, f"{kind}: untraced", f"{b:.3f} s ({sizes[kind]} allocations); process "
            f"{wall['baseline']:.3f} s", "1.00", "", "")
        pm = t[(kind, "summary")] / b
        for name, label in labels.items():
            if (kind, name) not in t:
                continue
            ratio = t[(kind, name)] / b
            figure = (f"{t[(kind, name)]:.3f} s, whole process x{wall[name] / wall['baseline']:.2f}"
                      f"; Python lines: {answer[name]}")
            if name == "summary":
                target, res = "", ""
            elif answer[name] == "yes" and kind == "realistic":
                target, res = f"pymemtrace ({pm:.2f}) < this", verdict(pm < ratio)
            else:
                target, res = "", ("pymemtrace cheaper" if pm < ratio else "pymemtrace dearer")
            row(4, f"{kind}: {label}", figure, f"{ratio:.2f}", target, res)


# ---------------------------------------------------------------------------------------------
# Section 5: capacity

def section_capacity(env, args):
    threads = os.cpu_count() or 1
    n = args.capacity
    events = 2 * n * threads  # pyalloc + pyfree
    path = env.loop[5]
    summary = toolkit("pymemtrace_summary.bt").replace("usdt:*:", f"usdt:{path}:")
    leaks = toolkit("pymemtrace_leaks.bt").replace("usdt:*:", f"usdt:{path}:")
    flow = toolkit("pymemtrace_flow.bt").replace("usdt:*:", f"usdt:{path}:")
    argv = [path, str(n), str(threads), "gate"]

    fields, _, lines, _ = run_gated(env, argv, bpftrace(summary))
    # Allocations counted: @alloc[...] = stats() (one hit per allocation), or the older
    # @count[...] = count() with @free_count (when the summary also traced frees).
    allocs = sum(int(m.group(1)) for l in lines
                 for m in [re.match(r"^@alloc\[.*\]: count (\d+),", l.strip())] if m)
    allocs += sum(map_values(lines, "count").values())
    frees = sum(map_values(lines, "free_count").values())
    traced = n * threads * (2 if frees else 1)
    rate = traced / float(fields["TIME"])
    exact = allocs == n * threads and frees in (0, n * threads)
    row(5, f"summary report, {threads} threads x {n} alloc+free",
        f"{rate / 1e3:.0f}k events/s; counted {allocs} allocations"
        + (f", {frees} frees" if frees else "") + f" of {n * threads}",
        "", "no loss", verdict(exact))
    fields, _, lines, _ = run_gated(env, argv, bpftrace(leaks))
    live = sum(1 for l in lines if l.startswith("@live["))
    rate_leaks = events / float(fields["TIME"])
    row(5, f"leak report, {threads} threads x {n} alloc+free",
        f"{rate_leaks / 1e3:.0f}k events/s; {live} blocks reported live of 0", "", "no loss",
        verdict(live == 0))

    out = os.path.join(env.scratch, "flow.out")
    fields, _, lines, _ = run_gated(
        env, argv, lambda pid: FileSession(flow, [], [pid], out))
    printed = sum(1 for l in lines if " malloc(" in l or " free(" in l)
    lost = sum(int(m.group(1)) for l in lines for m in [re.search(r"Lost (\d+) events", l)] if m)
    rate_flow = events / float(fields["TIME"])
    row(5, "flow report (printf per event, bpftrace -o file) at the same load",
        f"{rate_flow / 1e3:.0f}k events/s; printed {printed} of {events}, "
        f"bpftrace 'Lost {lost} events'", f"{printed / events:.3f}", "report", "")


class FlowRunnerSession(BpftraceSession):
    """The flow as the runner reads it (its session, its row handling, its output to a file),
    from bpftrace's JSON or from its framed text: stop() returns (rows received, events
    counted by the script, bpftrace's lost count)."""

    def __init__(self, program, pid, framed, path):
        self.shortener = Shortener(True, 200)
        self.rows = 0
        self.out = open(path, "w")
        super().__init__(program, positional=[pid, "full_file_path"],
                         env=dict(os.environ, BPFTRACE_PERF_RB_PAGES="1024"),  # the runner's
                         ready_marker="dtrace:::BEGIN", on_printf=self.row, framed_rows=framed)

    def row(self, text):  # as modes.Trace._printf, writing to a file
        shown_row = self.shortener.event_row(text)
        if shown_row is not None:
            self.rows += 1
        self.out.write(text if shown_row is None else shown_row)

    def stop(self, limit=120.0):
        self.drain()  # as the runner does once the command has ended
        super().stop(limit)
        self.out.close()
        return self.rows, int(self.maps.get("@flow_events", 0) or 0), self.lost


def section_flow_rate(env, args):
    """The highest paced rate at which the flow report (the runner's session and row handling)
    keeps every event, reading bpftrace's JSON or its framed text, side by side."""
    path = env.loop[1]
    program = bpftrace_script("pymemtrace_flow", libraries=[path])
    n = args.flow_events // 2  # iterations: an allocation and a free each
    complete_at = {False: [], True: []}  # rates at which nothing was lost, per reading
    for rate in (25000, 50000, 100000, 200000, 400000, 800000):
        for framed in (False, True):
            out = os.path.join(env.scratch, "flow-rows.out")
            fields, _, result, _ = run_gated(
                env, [path, str(n), "1", "gate", str(rate)],
                lambda pid: FlowRunnerSession(program, pid, framed, out))
            rows, counted, lost = result
            achieved = 2 * n / float(fields["TIME"])
            complete = rows == counted == 2 * n
            complete_at[framed].append((achieved, complete))
            row(5, f"flow at {rate / 1e3:.0f}k events/s asked ({achieved / 1e3:.0f}k achieved), "
                   f"{'framed text' if framed else 'JSON'}",
                f"received {rows} of {2 * n} (script counted {counted}; bpftrace lost {lost})",
                f"{rows / (2 * n):.3f}", "1.000", verdict(complete))
    # The rate the target reached, not the one asked: a reader that keeps up takes CPU from it.
    for framed, results in complete_at.items():
        lossless = [rate for rate, complete in results if complete]
        lossy = [rate for rate, complete in results if not complete]
        row(5, f"flow: highest rate achieved with nothing lost, "
               f"{'framed text' if framed else 'JSON'}",
            (f"{max(lossless) / 1e3:.0f}k events/s" if lossless else "none of the rates tried")
            + (f"; lowest with a loss {min(lossy) / 1e3:.0f}k" if lossy else ""), "", "", "")


# ---------------------------------------------------------------------------------------------
# Section 6: start-up

# The command's first act: its monotonic clock (system-wide, so comparable with ours).
FIRST_LINE = "import time; print('STARTED', time.monotonic(), flush=True)"


def started_after(argv, env, cwd):
    """Seconds from spawning argv to the STARTED line it prints (its command's first act)."""
    spawned = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    line = next((l for l in done.stdout.splitlines() if l.startswith("STARTED ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return float(line.split()[1]) - spawned


def bpftrace_floor():
    """Seconds from spawning bpftrace with a BEGIN-only program to its BEGIN line."""
    spawned = time.monotonic()
    proc = subprocess.Popen(["bpftrace", "-e", 'BEGIN { printf("go\\n"); exit(); }'],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    begun = None
    for line in proc.stdout:
        if begun is None and line.startswith("go"):
            begun = time.monotonic() - spawned
    proc.wait()
    if begun is None:
        raise RuntimeError("bpftrace printed no BEGIN line")
    return begun


def engine_ready_after(engine, library, batch):
    """Seconds from spawning pymemtrace-engine on a waiting process with `library` given to its
    ready line: its own load (the verifier) and attach, the engine's part of a traced start."""
    target = subprocess.Popen(["sleep", "60"])
    try:
        spawned = time.monotonic()
        proc = subprocess.Popen([engine, "--pid", str(target.pid), "--lib", library,
                                 *(["--batch"] if batch else [])],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        ready = time.monotonic() - spawned
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate()
        if '"ready"' not in line:
            raise RuntimeError(f"the engine failed ({proc.returncode}): {errors[-2000:]}")
        return ready
    finally:
        target.kill()
        target.wait()


def runner_imports_after(python):
    """Seconds from spawning the runner's interpreter (-IS, as toolkit/pymemtrace-trace runs) to
    the end of the imports it makes before it starts the engine (modes and the rest come after,
    while the engine loads)."""
    code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'src')!r}); "
            "import pymemtrace.trace.cli, time; print('STARTED', time.monotonic(), flush=True)")
    return started_after([python, "-IS", "-c", code], None, None)


def section_startup(env, args):
    """pymemtrace-trace -- PY -c FIRST_LINE: the time from spawning the runner to the command's
    first line (runner start, discovery, program, bpftrace's start, the release), median of
    --startup-runs interleaved runs; beside it the same command untraced and bpftrace alone."""
    cwd = os.path.join(env.scratch, "startup")  # an empty working directory: nothing to find
    os.makedirs(cwd, exist_ok=True)
    runner = os.path.join(ROOT, "toolkit", "pymemtrace-trace")
    command = [env.python, "-c", FIRST_LINE]
    report = ["-o", os.path.join(env.scratch, "startup-report.txt")]
    found_env = dict(env.env, PYTHONPATH=env.build)  # the scan finds benchext there
    # The runner's two engines in command mode (--engine libbpf: the engine is asked for, as
    # auto gives commands to bpftrace, docs/engine.md).
    traced = {"lib": ["--lib", env.ext], "found": []}
    engines = ("bpftrace", "libbpf")
    runs = {"untraced": [], "floor": []}
    for _ in range(args.startup_runs):
        runs["untraced"].append(started_after(command, env.env, cwd))
        runs["floor"].append(bpftrace_floor())
        for engine in engines:
            for key, words in traced.items():
                runs.setdefault((engine, key), []).append(started_after(
                    [runner, *report, "--engine", engine, *words, "--", *command],
                    found_env if key == "found" else env.env, cwd))
    # Its parts: the runner's Python and imports, and the engine alone (docs/engine.md, "Start-up").
    engine = os.path.join(ROOT, "build", "src", "engine", "pymemtrace-engine")
    parts = os.access(engine, os.X_OK)
    for _ in range(args.startup_runs if parts else 0):
        runs.setdefault("imports", []).append(runner_imports_after(sys.executable))
        for batch in (False, True):
            runs.setdefault(("engine", batch), []).append(
                engine_ready_after(engine, env.ext, batch))
    ms = {key: 1000 * median(values) for key, values in runs.items()}
    row(6, "command untraced: python3 -c, spawn to its first line", f"{ms['untraced']:.0f} ms")
    if parts:
        row(6, "the runner's part: python3 -IS, spawn to the end of its imports before the "
               "engine's spawn",
            f"{ms['imports']:.0f} ms")
        for batch in (False, True):
            row(6, f"the engine's part: pymemtrace-engine --lib{' --batch' if batch else ''}, "
                   "spawn to its ready line (load, verifier, attach)",
                f"{ms[('engine', batch)]:.0f} ms")
    row(6, "bpftrace alone: a BEGIN-only program, spawn to its BEGIN line (the floor)",
        f"{ms['floor']:.0f} ms")
    for engine in engines:
        for key, how in (("lib", "library given (--lib)"), ("found", "library found by the scan")):
            took = ms[(engine, key)]
            row(6, f"start-up: pymemtrace-trace --engine {engine} -- python3 -c, {how}, spawn to "
                   f"the command's first line", f"{took:.0f} ms ({took - ms['untraced']:.0f} ms "
                                                 f"more than untraced)",
                f"{took / ms['floor']:.2f} x bpftrace floor",
                "<= 100 ms more than untraced" if engine == "libbpf" else "<= 500 ms",
                verdict(took - ms["untraced"] <= 100 if engine == "libbpf" else took <= 500))


# ---------------------------------------------------------------------------------------------
# Section 8: the runner on the engine beside the runner on bpftrace (engine_vs_bpftrace.py)

def section_engines(args):
    """Attach, a leak report of --engine-blocks live blocks (time, peak RSS), exit to report:
    pymemtrace-engine alone and the runner with each engine, on one target and workload."""
    import engine_vs_bpftrace  # here: it needs the meson build's engine and cMemLeak
    build = os.path.join(ROOT, "build")
    if not os.access(os.path.join(build, "src", "engine", "pymemtrace-engine"), os.X_OK):
        raise SystemExit("section 8 needs the meson build's engine: meson setup build && "
                         "meson compile -C build (tools/install-deps.sh installs what it needs)")
    results = engine_vs_bpftrace.compare(build, engine_vs_bpftrace.library_of(build),
                                         args.engine_blocks)
    for measurement, name, figure, ratio in engine_vs_bpftrace.table(results):
        unit = "MB" if "MB" in measurement else "s"
        row(8, f"{measurement.rsplit(' (', 1)[0]}: {name}", f"{figure:.3f} {unit}", ratio)


# ---------------------------------------------------------------------------------------------
# Section 7: peers on Python 3.14 (peers_314.py)

def peers_314_options(parser):
    parser.add_argument("--reps-314", type=int, default=5, help="section 7's repetitions")
    parser.add_argument("--dense-314", type=int, default=400000, help="section 7's dense N")
    parser.add_argument("--realistic-314", type=int, default=20000,
                        help="section 7's realistic N")


# ---------------------------------------------------------------------------------------------

def machine():
    model = next((l.split(":", 1)[1].strip() for l in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines()
        if l.startswith("Model name")), "?")
    return (f"nproc {os.cpu_count()}, {model}, kernel {os.uname().release}, "
            f"bpftrace {subprocess.run(['bpftrace', '--version'], capture_output=True, text=True).stdout.strip()}")


def others():
    """Other bpftrace processes: they cost CPU, and any attached to libraries we share trap."""
    mine = os.getpid()
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != mine:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("bpftrace", "heaptrack_inter", "perf"):
                        found.append(pid)
            except OSError:
                pass
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small N, 1 repetition")
    parser.add_argument("--sections", default="1,2,3,4,5,6,8")
    parser.add_argument("--no-heaptrack", action="store_true")
    parser.add_argument("--loop", type=int, default=200000, help="C loop allocations")
    parser.add_argument("--dense", type=int, default=30000)
    parser.add_argument("--realistic", type=int, default=6000)
    parser.add_argument("--capacity", type=int, default=200000, help="per thread")
    parser.add_argument("--flow-events", type=int, default=200000,
                        help="events per run of the flow rate ladder")
    parser.add_argument("--startup-runs", type=int, default=9,
                        help="runs of each start-up measurement (section 6; median)")
    parser.add_argument("--engine-blocks", type=int, default=1_000_000,
                        help="live blocks of section 8's leak report")
    parser.add_argument("--json", help="write the table as JSON here")
    peers_314_options(parser)
    parser.add_argument("--flow-rate-events", type=int, default=1000000,
                        help="section 10's events per run")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.loop, args.dense, args.realistic, args.capacity = 1, 50000, 10000, 2000, 50000
        args.flow_events = 100000
        args.startup_runs = 3
        args.engine_blocks = 100_000
    sections = {int(s) for s in args.sections.split(",")}
    if os.geteuid() != 0 or shutil.which("bpftrace") is None:
        print("tracer sections need root and bpftrace; running section 1 only", file=sys.stderr)
        sections &= {1}
    else:
        mount_tracefs()
    env = Env(args.build)
    busy = others()
    started = time.monotonic()
    results = {}
    if 1 in sections:
        section_untraced(env, args)
    if 2 in sections:
        section_floor(env, args, results)
    if sections & {2, 3, 4}:
        sizes, runs = run_matrix(env, args)
        if 2 not in sections:
            results["floor_ns"] = None
        python_rows(env, args, results, sizes, runs)
    if 5 in sections:
        section_capacity(env, args)
        section_flow_rate(env, args)
    if 6 in sections:
        section_startup(env, args)
    if 7 in sections:
        import peers_314  # here: it imports this module for the helpers it shares
        peers_314.section(args, row)
    if 8 in sections:
        section_engines(args)
    if 9 in sections:
        import engine_snapshots  # the meson build's engine (build/)
        engine_snapshots.section(args, row)
    if 10 in sections:
        import flow_rate
        flow_rate.section(args, row)
    if 11 in sections:
        import engine_histograms
        engine_histograms.section(args, row)
    busy = sorted(set(busy) | set(others()))
    elapsed = time.monotonic() - started

    print(f"Machine: {machine()}")
    print(f"Run: {args.reps} interleaved repetitions (medians), loop N={args.loop}, "
          f"dense N={args.dense}, realistic N={args.realistic}, capacity N={args.capacity}/thread"
          + (f"; section 7: {args.reps_314} repetitions, dense N={args.dense_314}, realistic "
             f"N={args.realistic_314}" if 7 in sections else "") + f"; {elapsed:.0f} s")
    if busy:
        print(f"Note: other tracer processes were running ({len(busy)}: pids {' '.join(busy)}); "
              f"they share the CPUs (our processes use private copies of python3.11 and libc).")
    print()
    print("| § | measurement | figure | ratio | target | result |")
    print("|---|---|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": ROWS, "results": results}, f, indent=1)
    shutil.rmtree(env.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
