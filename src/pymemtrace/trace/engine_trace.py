# SPDX-License-Identifier: MIT
"""The summary and leak reports of the py* probes from pymemtrace-engine (docs/engine.md): the
same run interface as modes.Trace (start, alive, ended_early, pause, stop, drain, finish), so
`modes` holds, releases and waits for the traced processes the same way whichever engine traces.

Which runs it takes (`takes`): every report of the py* probes (the summary, --histograms
included; the leaks, --interval's snapshots included; --depth's stacks; the flow, engine_flow),
with -p, --all or a command, following forks or not (--no-follow), unless --engine bpftrace;
--frames python-probes, --libc and --object-allocator (takes_python_frames,
takes_object_allocator) on their own terms. A command's libraries
named or found beforehand are attached by path before it runs (`attached_by_path`). It attaches
to every instrumented library the traced processes map, also those mapped after it started, so
it needs no library named or found beforehand (`finds_libraries`)."""
import os
import sys
import threading
import time

from . import (engine, engine_flow, native, processes, reports, scripts, stacks, stop_relay,
               unseen)
from .errors import Failure
from .missed_libraries import AttachedByEngine, MissedLibraries
from .names import shown
from .snapshots import Snapshots
from .unseen_frees import UnseenFrees, say_unseen_frees

# What the engine's `loss` counters mean, in words with the option that avoids each.
LOSS_WORDS = {
    "live_full": "{} blocks were not recorded: the map of live blocks was full; raise "
                 "--max-entries",
    "summary_full": "{} allocations were not counted: the map of locations was full; raise "
                    "--max-entries",
    "names_full": "{} locations lost their names: the map of names was full; raise "
                  "--max-entries",
    "records_lost": "{} records of processes starting or ending were lost",
    "unattached_processes": "{} forked processes could not be traced",
    "forked_window": "{} forked processes made allocations before their probes were attached "
                     "(how many is unknown); --attach-by path attaches the libraries given "
                     "before anything forks, with no window",
    "late_window": "libraries with pymemtrace probes mapped before their probes could be "
                   "attached, what they allocated in between unknown ({} of them: {}); name them "
                   "with --lib, which attaches them before they are mapped",
    "unexamined_files": "{} files that traced processes mapped executable were gone (the process "
                        "had ended) before the engine could look at them: whether they had "
                        "pymemtrace probes, and what they allocated, is unknown",
    "batch_overwritten": "{} events were overwritten in a thread's buffer before they were read",
    "batch_unread": "{} events (at least) were left in the buffers of processes that ended "
                    "before they could be read",
    "batch_rings_full": "{} thread buffers could not be followed: too many threads or libraries",
    "batch_unordered": "{} frees read before their allocations could not be remembered; raise "
                       "--max-entries",
    "histograms_full": "{} allocations are missing from the size histograms: their map was "
                       "full; raise --max-entries",
}


def _able(request, plan):
    """Whether the engine can make this run's report at all: every report of the py* probes,
    the summary and leaks (snapshots, --all, --depth, --histograms, --no-follow included) and
    the flow (at depth 1, without --interval: the only flow cli accepts)."""
    return (plan.script in ("pymemtrace_summary", "pymemtrace_leaks")
            or (plan.script == "pymemtrace_flow" and request.depth == 1
                and request.interval is None))


def histograms(request, plan):
    """Whether the engine counts this run's events by size bucket: the text summary's
    --histograms (one table for all processes: a report per process has none, as the bpftrace
    runner's). --libc and --object-allocator too, whose plan replays a flow on bpftrace."""
    return (request.histograms and request.report == "summary" and request.format == "text"
            and not request.per_process)


def finds_libraries(request, plan):
    """Whether the engine may take this run when no library is named or found beforehand: it
    attaches to those the traced processes map (docs/engine.md, "Libraries mapped later").
    Not --all, which attaches the libraries given by path."""
    return (_able(request, plan) and not request.all and request.engine != "bpftrace"
            and (request.engine == "libbpf" or engine.find_engine() is not None))


def takes(request, plan):
    """Whether the engine makes this run's report: every run it is able to make, unless
    --engine bpftrace. A command's libraries named or found beforehand are attached by path
    before it runs (`attached_by_path`), so that what it forks misses nothing, as with bpftrace;
    a library mapped later is attached once the engine sees the mapping, its window stated
    (docs/engine.md)."""
    return _able(request, plan) and request.engine != "bpftrace"


def attached_by_path(request):
    """Whether the engine attaches the libraries named or found beforehand by path (--attach-by;
    by default for a command, per PID for -p). --all attaches by path in any case."""
    if request.all:
        return False
    default = "pid" if request.pid is not None else "path"
    return (request.attach_by or default) == "path"


def takes_python_frames(request, plan):
    """Whether the engine makes this run's `--frames python-probes` summary, leaks or flow:
    always when it can (auto or --engine libbpf, -p or a command; --histograms, --no-follow,
    --per-process and --interval included: cli refuses --depth N and --native in this mode). It
    attaches CPython's probes per traced process, where bpftrace 0.17 attaches them by path and
    sets the line semaphore of every Python on the host (each then ran 31-36x slower, measured).
    --python-call-stack's CALL and RTN rows come in the flow (call_stack.bpf.h); a summary or
    leaks report has none, with either engine."""
    return (plan.script == "pymemtrace_pyframes" and plan.kind in ("summary", "leaks", "flow")
            and request.engine != "bpftrace" and not request.all
            and request.depth == 1 and not request.native
            and (request.engine == "libbpf" or engine.find_engine() is not None))


def takes_object_allocator(request, plan):
    """Whether the engine makes this run's `--object-allocator` or `--libc` summary, leaks or
    flow, on the same terms as takes_python_frames: the Python binary's (or libc's) allocator
    functions by uprobes attached per traced process (bpftrace 0.17's, by path, trapped every
    process mapping the file); --interval's snapshots only here (bpftrace's script prints a
    flow, no live map); --python-call-stack's rows come in the flow, as there."""
    return ((plan.script.startswith("py_object_") or plan.script == "py_flow_malloc_free")
            and request.report in ("summary", "leaks", "flow")
            and request.engine != "bpftrace" and not request.all
            and request.depth == 1 and not request.native
            and (request.engine == "libbpf" or engine.find_engine() is not None))


def allocator_of(plan):
    """(the engine's --allocator, domain) of an --object-allocator or --libc plan: PyObject_* in
    pymalloc builds, PyMem_Raw* without, or libc (programs.choose_script's scripts)."""
    if plan.script == "py_flow_malloc_free":
        return "libc", plan.flow_domain
    return ("PyObject_" if plan.script.startswith("py_object_D") else "PyMem_Raw",
            plan.flow_domain)


def batches(request, plan):
    """Whether the engine reads this run's events in batches (--batch: one trap per 64 events,
    issue 23): the summary and leaks at depth 1 (--interval's snapshots too), without --native,
    --all or the histograms."""
    return (plan.script in ("pymemtrace_summary", "pymemtrace_leaks") and request.depth == 1
            and not request.native and not request.all
            and not histograms(request, plan))  # batches read at the report keep no size buckets


def statuses(processes):
    """{pid: wait status} of the engine's processes that ended, as processes.how_ended reads."""
    ended = {}
    for process in processes:
        how = process.get("ended")
        if isinstance(how, dict) and "exit" in how:
            ended[int(process["pid"])] = (int(how["exit"]) & 0xFF) << 8
        elif isinstance(how, dict) and "signal" in how:
            ended[int(process["pid"])] = int(how["signal"]) & 0x7F
    return ended


def entries_of(rows, shortener):
    """The report's entries from the engine's rows, files shortened (--full-file-path aside) and
    rows that then name the same location merged."""
    merged = {}
    for row in rows:
        key = (int(row["pid"]), shortener.file(row["file"]), row["function"], int(row["line"]),
               int(row["domain"]), int(row.get("native", 0)))
        entry = merged.setdefault(key, dict(zip(("pid", "file", "function", "line", "domain",
                                                 "native_key"), key), count=0, bytes=0))
        entry["count"] += int(row["count"])
        entry["bytes"] += int(row["bytes"])
    return sorted(merged.values(), key=lambda e: (-e["bytes"], -e["count"], e["file"],
                                                  e["line"]))


def stack_entries_of(rows, named):
    """--depth N: the report's entries by stack (stacks.py's shape: `stack` innermost first)
    from the engine's rows, whose `location` is a stack id, and the stacks' names (`named`, a
    stacks.Stacks); and how many of the stacks the rows name have no names (the engine's map of
    names was full, or the runner did not keep them)."""
    merged, unknown = {}, set()
    for row in rows:
        pid, sid, domain = int(row["pid"]), int(row["location"]), int(row["domain"])
        stack = named.stack(pid, sid)
        if stack[0][0].startswith("<stack "):  # its names were refused: a loss
            unknown.add((pid, sid))
        native_key = int(row.get("native", 0))
        entry = merged.get((pid, stack, domain, native_key))
        if entry is None:
            entry = merged[pid, stack, domain, native_key] = dict(
                stacks._entry(pid, stack, domain), native_key=native_key)
        entry["count"] += int(row["count"])
        entry["bytes"] += int(row["bytes"])
    return list(merged.values()), len(unknown)


def losses_of(report):
    """The engine report's losses, in words (the flow's: flow_losses)."""
    late = ", ".join(f"{shown(str(library.get('path')))} in PID {library.get('pid')}, "
                     + (f"{int(library.get('window_us', 0)) / 1000:.1f} ms"
                        if library.get("attached", True) else
                        f"never attached: {shown(str(library.get('attach_error')))}")
                     for library in report.get("late_libraries", []))
    return [LOSS_WORDS.get(name, "{} events lost (" + name + ")").format(count, late)
            for name, count in sorted(report.get("loss", {}).items())
            if count and not name.startswith("flow_")]


def flow_losses(report, rows):
    """What a flow lost, exactly: the events the probes saw (the report's counters) that the
    engine's ring buffer refused (by kind), that could not be written to the runner, or that
    the runner did not show (`rows`: the rows it wrote; never, but counted)."""
    counters, loss = report.get("counters", {}), report.get("loss", {})
    # The py* probes' events, or the plain ones' (--frames python-probes) or the allocator's
    # calls (alloc: malloc and calloc): one set is counted; then --python-call-stack's calls and
    # returns.
    calls = tuple(name for name, _arrow, _word in engine_flow.CALL_KINDS.values())
    made = [int(counters.get(kind, 0)) + int(counters.get(kind[2:], 0))
            for kind in engine_flow.KINDS] + [int(counters.get(kind, 0)) for kind in calls]
    kinds = engine_flow.KINDS + engine_flow.ALLOCATOR_KINDS + calls
    refused = [int(loss.get("flow_lost_" + kind, 0)) for kind in kinds]
    unwritten = int(loss.get("flow_unwritten", 0))
    lost = []
    if sum(refused):
        lost.append(f"{sum(refused)} of {sum(made)} events were lost ("
                    + ", ".join(f"{n} {kind}" for n, kind in zip(refused, kinds) if n)
                    + "): the engine's ring buffer was full; a larger --perf-pages, or the "
                      "summary or leaks report, which aggregate in the kernel")
    if unwritten:
        lost.append(f"{unwritten} events could not be passed from the engine to the runner")
    unshown = sum(made) - sum(refused) - unwritten - rows
    if report and unshown:
        lost.append(f"{unshown} events the engine sent were not shown")
    return lost


def flow_buffer_bytes(perf_pages):
    """The engine's flow ring buffer for --perf-pages: as many bytes as bpftrace's perf buffers
    on every CPU hold, to a power of two."""
    wanted = perf_pages * 4096 * (os.cpu_count() or 1)
    return min(1 << 30, 1 << max(12, (wanted - 1).bit_length()))


# The engine's largest --max-locations (16M rows of each of its maps of locations).
MOST_LOCATIONS = 1 << 24


def engine_run(plan, request, engine_path, setid, pids=(), libraries=(), targets_later=False,
               python=None, libc=None):
    """The engine.EngineRun of this run (not started). The engine's own loss counters are turned
    into words here, and the exit status is the runner's (modes.exit_status): the engine itself
    always allows loss. --all traces set-ID programs too, as the bpftrace runner's --all does.
    The summary and leaks at depth 1 read the events in batches where the libraries have
    pybatch (`batches`). `python`, `libc`: the target's Python binary and C library (aliases),
    for --frames python-probes, --object-allocator and --libc."""
    interval = request.interval
    allocator = takes_object_allocator(request, plan)
    return engine.EngineRun(pids=list(pids), libraries=list(libraries),
                            engine=engine_path, allow_loss=True,
                            setid_stop=setid and not request.all,
                            interval_ms=None if interval is None
                            else max(1, round(interval * 1000)),
                            every_process=request.all, depth=request.depth,
                            max_locations=min(request.max_entries, MOST_LOCATIONS),
                            native_caller=request.native,
                            flow_bytes=flow_buffer_bytes(request.perf_pages)
                            if plan.kind == "flow" or request.report == "flow" else None,
                            batch=batches(request, plan), follow=request.follow,
                            histograms=histograms(request, plan), targets_later=targets_later,
                            python_frames=python
                            if allocator or takes_python_frames(request, plan) else None,
                            allocator=allocator_of(plan) if allocator else None,
                            libc=libc if allocator and request.libc else None,
                            by_path=attached_by_path(request),
                            python_call_stack=(request.python_call_stack
                                               and request.report == "flow"),
                            report_signals=stop_relay.commanded(request),
                            stops_from_parent=True)


def start_early(request, plan, setid):
    """The engine started now, before the runner looks for the command's libraries and forks
    it, when it is sure to make this command's report (`takes`: not with --engine bpftrace): it
    loads its programs and attaches its tracepoints meanwhile, and EngineTrace(loading=...)
    names its targets. None when the engine does not take the run, or is not found (said
    later)."""
    if not request.command or request.pid is not None or request.all or not takes(request, plan):
        return None
    found = engine.find_engine()
    if found is None:
        return None
    return engine_run(plan, request, found, setid, targets_later=True).__enter__()


def moment_of(time_ns):
    """time.time() of the CLOCK_MONOTONIC instant `time_ns` (the engine's clock)."""
    return time.time() - (time.monotonic_ns() - int(time_ns)) / 1e9


class EngineTrace:
    """`pid`: the process traced (and what it forks); None with --all: every process that maps
    the libraries."""

    def __init__(self, pid, plan, request, libraries, engine_path=None, setid=False, loading=None,
                 python=None, libc=None):
        self.plan, self.request = plan, request
        # --object-allocator: the Python binary's functions, no library's probes.
        self.python_only = takes_object_allocator(request, plan)
        if self.python_only:
            libraries = []
        # The engine attaches what a traced process maps; --all attaches the libraries given.
        self.missed = MissedLibraries(libraries) if request.all else AttachedByEngine()
        self.not_seen = tuple(unseen.not_seen(libraries)) if libraries else ()
        interval = request.interval
        self.native_caller = request.native
        # `loading`: the engine start_early started for this run, to be told its targets.
        self.pid, self.libraries = pid, [os.fspath(lib) for lib in libraries]
        self.run = loading or engine_run(plan, request, engine_path, setid,
                                         [] if pid is None else [pid], self.libraries,
                                         python=python, libc=libc)
        self.shortener = reports.Shortener(not request.full_file_path, request.strlen)
        self.started = False
        self.snapshots = (Snapshots(request.out, request.format, request.top, request.per_process,
                                    self.shortener, request.max_entries)
                          if interval is not None else None)
        # --all: {pid: command line}, read when a process makes its first event.
        self.commands = {} if request.all else None
        # --depth N: the names of the report's stacks, kept as the bpftrace runner keeps them.
        self.stacks = (stacks.Stacks(request.max_entries, self.shortener) if request.depth > 1
                       else None)
        # With snapshots, --all or stacks the engine's lines come while it runs, or many of
        # them before the report: a thread reads them.
        self.reader, self.report_line, self.reader_error = None, None, None
        # A command's stop signals, as the engine reports them while it runs (modes.Stop).
        self.signal_log = stop_relay.SignalLog() if stop_relay.commanded(request) else None
        self.flow = None  # the engine_flow.FlowReader of a flow

    def start(self):
        """Returns once every probe is attached (the engine's ready line)."""
        if self.run.proc is None:
            self.run.__enter__()
        else:  # started early (start_early): loaded, waiting for its targets
            self.run.name_targets([self.pid], self.libraries)
        self.started = True
        self.run.ready()
        if any(wanted is not None for wanted in (self.snapshots, self.commands, self.stacks,
                                                 self.signal_log)):
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
        if self.run.flow is not None:  # what came before waits in the pipe and ring buffer
            self.flow = engine_flow.FlowReader(self.run.flow, self.request.out, self.shortener,
                                               self.request.out.isatty(),
                                               UnseenFrees(self.request.max_entries),
                                               scripts.FAMILIES.get(self.plan.script))

    def _read(self):
        try:
            for line in self.run.lines():
                event = line.get("event")
                if event == "snapshot":
                    entries = entries_of(line.get("leaks", []), self.shortener)
                    for entry in entries:
                        entry.pop("native_key")  # snapshots have no native callers
                    self.snapshots.add_entries(entries, line.get("refused", 0),
                                               moment_of(line["time_ns"]))
                elif event == "process" and self.commands is not None:
                    if len(self.commands) >= self.request.max_entries:  # bounded over a long run
                        self.commands.pop(next(iter(self.commands)))
                    self.commands[int(line["pid"])] = processes.command_line(int(line["pid"]))
                elif event == "stack" and self.stacks is not None:
                    self.stacks.put(line["pid"], line["stack"],
                                    [(f["file"], f["line"], f["function"])
                                     for f in line["frames"]])
                elif event == "signal" and self.signal_log is not None:
                    self.signal_log.add(line)
                elif event == "report":  # the last line: the engine detaches after it
                    self.report_line = line
                    return
        except Exception as error:  # noqa: BLE001 - said by finish(), in the main thread
            self.reader_error = error

    def _report(self):
        """The engine's report: read here, or by the reader thread."""
        if self.reader is None:
            return self.run.report()
        self.reader.join()
        if self.reader_error is not None:
            raise self.reader_error
        return self.report_line or {}

    def alive(self):
        return self.started and self.run.proc.poll() is None

    def ended_early(self):
        """Whether the engine ended by failing: it ends on its own, with status 0 or 3, when
        every traced process has ended, which is no loss."""
        return self.started and self.run.proc.poll() not in (None, 0, 3)

    def wait_armed(self, _pid, _libraries):
        """True: the engine's ready line comes once the kernel has attached every probe, which
        sets the semaphores."""
        return True

    def pause(self):
        """Nothing: the engine pauses recording itself, at one instant, to read its maps."""

    def drain(self):
        """Nothing: the engine writes the rest of a flow once stopped, then ends it."""

    def settle(self):
        """Nothing: the engine reads its maps after the kernel told it the command ended."""

    def stop(self):
        if self.alive():
            self.run.stop()

    def finish(self, early=False):
        """Stops the engine, then writes the report; returns what it lost, which the report and
        standard error both state (modes.write_report)."""
        self.stop()
        try:
            report = {} if early else self._report()  # a failed engine's maps went with it
        except BaseException as failure:
            if self.flow is not None and self.run.proc.poll() is None:
                self.run.proc.kill()  # its flow ends with it, read to the end before closing
            self._join_flow()
            self.run.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self._join_flow()  # the engine ended the flow before its report
        try:
            written = self._write(report, early)
        except BaseException as failure:
            self.run.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self.run.end_later()  # the engine detaches while the report goes out
        return written

    def _join_flow(self):
        """Once the engine has closed the flow (or died): every row it sent is written."""
        if self.flow is not None:
            self.flow.join()

    def _size_dists(self, report, rows):
        """--histograms: the text summary's histograms, drawn by reports.size_dists from the
        engine's rows by size bucket (`size_buckets`), named as the summary `rows` (or, at
        --depth N, the stacks) of the same location name them; (None, None) without."""
        buckets = report.get("size_buckets")
        if buckets is None:
            return None, None
        if self.request.depth > 1:
            def where(row):
                frame = self.stacks.stack(int(row["pid"]), int(row["location"]))[0]
                return frame[0], frame[2]
        else:
            named = {int(r["location"]): (self.shortener.file(r["file"]), r["function"])
                     for r in rows}

            def where(row):  # a location the full summary refused: stated, shown as "?"
                return named.get(int(row["location"]), ("?", "?"))
        return reports.size_dists((*where(row), int(row["domain"]), int(row["bucket"]),
                                    int(row["count"]), int(row["bytes"])) for row in buckets)

    def _write(self, report, early):
        from .modes import write_report  # modes imports this module
        from .cli import BUILD_WITH_PROBES  # cli imports this module
        if report and not report.get("libraries_attached", 1) and not self.python_only:
            # Nothing named, found or mapped had probes: an empty report would say "no
            # allocations", which nobody measured.
            raise Failure("the traced processes mapped no library with pymemtrace probes: "
                          "nothing was traced", BUILD_WITH_PROBES)
        lost = losses_of(report) + self.missed.losses()
        if self.flow is not None:
            lost = flow_losses(report, self.flow.rows) + lost
            if self.flow.read_error is not None:
                lost.insert(0, "the engine's flow could not be read from there on: "
                               + shown(repr(self.flow.read_error)))
        if early:
            lost.insert(0, f"pymemtrace-engine ended on its own (status {self.run.proc.returncode})"
                           " while the target ran: what it had traced went with it")
        rows = report.get("leaks" if self.request.report == "leaks" else "summary", [])
        if self.request.depth > 1:
            entries, unknown = stack_entries_of(rows, self.stacks)
            if unknown:
                lost.append(f"the names of {unknown} stacks in the report are unknown: the "
                            "engine's map of names was full, or they were beyond what the runner "
                            f"keeps ({self.stacks.limit} stacks, {self.stacks.MAX_NAMES} names); "
                            "raise --max-entries")
        else:
            entries = entries_of(rows, self.shortener)
        named = (native.symbolize(report.get("native_libraries", []),
                                  {e.get("native_key") for e in entries})
                 if self.native_caller else {})
        for e in entries:
            key = e.pop("native_key", None)
            if self.native_caller:
                e["native"] = named.get(key)
        ended = statuses(report.get("processes", []))
        setid = {int(p["pid"]): "set-user-ID or set-group-ID"
                 for p in report.get("processes", []) if p.get("setid")}

        dists = self._size_dists(report, rows)

        def write(view):
            if self.flow is not None:  # written as it came; then which processes left it
                if self.flow.write_error:
                    raise self.flow.write_error
                for pid, what in sorted(setid.items()):
                    said = f"PID {pid} {processes.not_traced_since(what)}"
                    print(f"pymemtrace-trace: {said}", file=sys.stderr)
                    self.request.out.write(said + "\n")
                say_unseen_frees(self.flow.unseen, self.request.out)
                return
            if view.form != "text":
                reports.write_entries(self.request.out, self.request.report, view, entries)
            else:
                reports.write_text(self.request.out, self.request.report, view, entries, ended,
                                   dists=dists[0], domain_dists=None if self.python_only
                                   else dists[1])  # one domain: bpftrace's replay draws none
        return write_report(self.request, lost, write, self.commands, self.snapshots, setid=setid,
                            not_seen=self.not_seen)
