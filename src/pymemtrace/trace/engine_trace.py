# SPDX-License-Identifier: MIT
"""The summary and leak reports of the py* probes from pymemtrace-engine (docs/engine.md): the
same run interface as modes.Trace (start, alive, ended_early, pause, stop, drain, finish), so
`modes` holds, releases and waits for the traced processes the same way whichever engine traces.

Which runs it takes (`takes`): the plain summary or leaks of the py* probes, at --depth 1, without
--interval, --all or --histograms; the others stay on bpftrace."""
import os

from . import engine, reports, unseen
from .missed_libraries import MissedLibraries

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
    "batch_overwritten": "{} events were overwritten in a thread's buffer before they were read",
    "batch_unread": "{} events (at least) were left in the buffers of processes that ended "
                    "before they could be read",
    "batch_rings_full": "{} thread buffers could not be followed: too many threads or libraries",
    "batch_unordered": "{} frees read before their allocations could not be remembered; raise "
                       "--max-entries",
}


def takes(args, plan):
    """Whether the engine makes this run's report: --engine libbpf, or auto with -p. A forked
    child is attached once the engine sees the fork, and what it allocates before that is lost
    (a stated loss, docs/engine.md); bpftrace follows forks with no window, so auto leaves it
    commands, which fork more often than they are forked into. The engine follows forks always:
    not with --no-follow."""
    able = (plan.script in ("pymemtrace_summary", "pymemtrace_leaks") and args.depth == 1
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
               int(row["domain"]))
        entry = merged.setdefault(key, dict(zip(("pid", "file", "function", "line", "domain"),
                                                key), count=0, bytes=0))
        entry["count"] += int(row["count"])
        entry["bytes"] += int(row["bytes"])
    return sorted(merged.values(), key=lambda e: (-e["bytes"], -e["count"], e["file"],
                                                  e["line"]))


def losses_of(report):
    """The engine report's losses, in words."""
    return [LOSS_WORDS.get(name, "{} events lost (" + name + ")").format(count)
            for name, count in sorted(report.get("loss", {}).items()) if count]


class EngineTrace:
    def __init__(self, pid, plan, args, libraries, engine_path=None, setid=False):
        self.plan, self.args = plan, args
        self.missed = MissedLibraries(libraries)
        self.not_seen = tuple(unseen.not_seen(libraries)) if libraries else ()
        # The engine's own loss counters are turned into words here, and the exit status is the
        # runner's (modes.exit_status): the engine itself always allows loss.
        # Not batch=True yet (issue 23): with it, tests/toolkit/test_never_harm.py's
        # test_library_found_on_pythonpath_is_not_code failed (a UnicodeEncodeError on a name).
        self.run = engine.EngineRun(pids=[pid], libraries=[os.fspath(lib) for lib in libraries],
                                    engine=engine_path, allow_loss=True, setid_stop=setid)
        self.shortener = reports.Shortener(not args.full_file_path, args.strlen)
        self.started = False

    def start(self):
        """Returns once every probe is attached (the engine's ready line)."""
        self.run.__enter__()
        self.started = True
        self.run.ready()

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
        """Nothing: the engine aggregates in the kernel and streams no events."""

    def stop(self):
        if self.alive():
            self.run.stop()

    def finish(self, early=False):
        """Stops the engine, then writes the report; returns what it lost, which the report and
        standard error both state (modes.write_report)."""
        from .modes import write_report  # modes imports this module
        self.stop()
        try:
            report = {} if early else self.run.report()  # a failed engine's maps went with it
        finally:
            self.run.__exit__(None, None, None)
        lost = losses_of(report) + self.missed.losses()
        if early:
            lost.insert(0, f"pymemtrace-engine ended on its own (status {self.run.proc.returncode})"
                           " while the target ran: what it had traced went with it")
        rows = report.get("leaks" if self.args.report == "leaks" else "summary", [])
        entries = entries_of(rows, self.shortener)
        ended = statuses(report.get("processes", []))

        def write(view):
            if view.form != "text":
                reports.write_entries(self.args.out, self.args.report, view, entries)
            else:
                reports.write_text(self.args.out, self.args.report, view, entries, ended)
        setid = {int(p["pid"]): "set-user-ID or set-group-ID"
                 for p in report.get("processes", []) if p.get("setid")}
        return write_report(self.args, lost, write, setid=setid, not_seen=self.not_seen)
