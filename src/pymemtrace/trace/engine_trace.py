# SPDX-License-Identifier: MIT
"""The summary and leak reports of the py* probes from pymemtrace-engine (docs/engine.md): the
same run interface as modes.Trace (start, alive, ended_early, pause, stop, drain, finish), so
`modes` holds, releases and waits for the traced processes the same way whichever engine traces.

Which runs it takes (`takes`): the plain summary or leaks of the py* probes, at --depth 1, without
--interval, --all or --histograms, and their flow (engine_flow); the others stay on bpftrace."""
import os
import sys

from . import engine, engine_flow, native, processes, reports, unseen
from .missed_libraries import MissedLibraries
from .names import shown

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
                     "(how many is unknown); --engine bpftrace follows forks with no window",
}


def takes(args, plan):
    """Whether the engine makes this run's report: --engine libbpf, or auto with -p. A forked
    child is attached once the engine sees the fork, and what it allocates before that is lost
    (a stated loss, docs/engine.md); bpftrace follows forks with no window, so auto leaves it
    commands, which fork more often than they are forked into. The engine follows forks always:
    not with --no-follow."""
    able = (plan.script in ("pymemtrace_summary", "pymemtrace_leaks", "pymemtrace_flow")
            and args.depth == 1
            and args.interval is None and not args.all and not args.histograms and args.follow)
    if args.engine == "auto":
        return able and args.pid is not None
    return able and args.engine == "libbpf"


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


def losses_of(report):
    """The engine report's losses, in words (the flow's: flow_losses)."""
    return [LOSS_WORDS.get(name, "{} events lost (" + name + ")").format(count)
            for name, count in sorted(report.get("loss", {}).items())
            if count and not name.startswith("flow_")]


def flow_losses(report, rows):
    """What a flow lost, exactly: the events the probes saw (the report's counters) that the
    engine's ring buffer refused (by kind), that could not be written to the runner, or that
    the runner did not show (`rows`: the rows it wrote; never, but counted)."""
    counters, loss = report.get("counters", {}), report.get("loss", {})
    made = [int(counters.get(kind, 0)) for kind in engine_flow.KINDS]
    refused = [int(loss.get("flow_lost_" + kind, 0)) for kind in engine_flow.KINDS]
    unwritten = int(loss.get("flow_unwritten", 0))
    lost = []
    if sum(refused):
        lost.append(f"{sum(refused)} of {sum(made)} events were lost ("
                    + ", ".join(f"{n} {kind}" for n, kind in zip(refused, engine_flow.KINDS) if n)
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


class EngineTrace:
    def __init__(self, pid, plan, args, libraries, engine_path=None, setid=False):
        self.plan, self.args = plan, args
        self.missed = MissedLibraries(libraries)
        self.not_seen = tuple(unseen.not_seen(libraries)) if libraries else ()
        # The engine's own loss counters are turned into words here, and the exit status is the
        # runner's (modes.exit_status): the engine itself always allows loss.
        self.native_caller = getattr(args, "native", False)
        flow = plan.kind == "flow"
        self.run = engine.EngineRun(pids=[pid], libraries=[os.fspath(lib) for lib in libraries],
                                    engine=engine_path, allow_loss=True, setid_stop=setid,
                                    native_caller=self.native_caller,
                                    flow_bytes=flow_buffer_bytes(args.perf_pages) if flow
                                    else None)
        self.shortener = reports.Shortener(not args.full_file_path, args.strlen)
        self.started = False
        self.flow = None  # the engine_flow.FlowReader of a flow

    def start(self):
        """Returns once every probe is attached (the engine's ready line)."""
        self.run.__enter__()
        self.started = True
        self.run.ready()
        if self.run.flow is not None:  # what came before waits in the pipe and ring buffer
            self.flow = engine_flow.FlowReader(self.run.flow, self.args.out, self.shortener,
                                               self.args.out.isatty())

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
            report = {} if early else self.run.report()  # a failed engine's maps went with it
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

    def _write(self, report, early):
        from .modes import write_report  # modes imports this module
        lost = losses_of(report) + self.missed.losses()
        if self.flow is not None:
            lost = flow_losses(report, self.flow.rows) + lost
            if self.flow.read_error is not None:
                lost.insert(0, "the engine's flow could not be read from there on: "
                               + shown(repr(self.flow.read_error)))
        if early:
            lost.insert(0, f"pymemtrace-engine ended on its own (status {self.run.proc.returncode})"
                           " while the target ran: what it had traced went with it")
        rows = report.get("leaks" if self.args.report == "leaks" else "summary", [])
        entries = entries_of(rows, self.shortener)
        named = (native.symbolize(report.get("native_libraries", []),
                                  {e["native_key"] for e in entries})
                 if self.native_caller else {})
        for e in entries:
            key = e.pop("native_key")
            if self.native_caller:
                e["native"] = named.get(key)
        ended = statuses(report.get("processes", []))
        setid = {int(p["pid"]): "set-user-ID or set-group-ID"
                 for p in report.get("processes", []) if p.get("setid")}

        def write(view):
            if self.flow is not None:  # written as it came; then which processes left it
                if self.flow.write_error:
                    raise self.flow.write_error
                for pid, what in sorted(setid.items()):
                    said = f"PID {pid} {processes.not_traced_since(what)}"
                    print(f"pymemtrace-trace: {said}", file=sys.stderr)
                    self.args.out.write(said + "\n")
                return
            if view.form != "text":
                reports.write_entries(self.args.out, self.args.report, view, entries)
            else:
                reports.write_text(self.args.out, self.args.report, view, entries, ended)
        return write_report(self.args, lost, write, setid=setid, not_seen=self.not_seen)
