# SPDX-License-Identifier: MIT
"""Reports from what bpftrace printed: the maps of the summary and leaks scripts, or a flow
replayed (summary and leaks paired by pointer), as text (tables), JSON, folded stacks or an html
page. Knows nothing of how the events were collected."""
import collections
import json
import os
import re
import sys

from . import folded, flamegraph_html, processes, tables
from .locations import as_json, domain_name, ranked  # noqa: F401  (domain_name: reports' API)
from .names import shown

# How a summary or leaks report is written: form text, json, folded or html; the text's first
# `top` locations (0: all) and its histograms; what the run lost (the page states it); the
# JavaScript an html page inlines (flamegraph_html.scripts()); one table per process or one
# for all (processes.combine); the command line of each PID (--all; None otherwise); JSON on one
# line, {"type": "report", ...} (--interval: the report follows the snapshots' JSON lines);
# the processes no longer traced since they exec'd a set-ID program ({pid: what}); what the
# report cannot see in the traced libraries (unseen.not_seen's sentences, shown in every form).
View = collections.namedtuple("View", "form top histograms lost scripts per_process commands "
                                      "json_lines setid not_seen",
                              defaults=("text", 20, False, (), None, False, None, False, {}, ()))


class Shortener:
    """Basenames for file paths in flow lines and map keys, unless --full-file-path. Locations that
    differ only by directory then merge, as they would have in the D scripts' basename()."""

    # `->` an event or a CALL, `<-` an RTN (--python-call-stack)
    FLOW_PREFIX = re.compile(r"^(?P<pid>\s*\d+) (?P<file>.*?):(?P<line>-?\d+)\s*(?P<arrow>->|<-) ",
                             re.S)

    KEPT = 4096  # files remembered: a flow names few files in many rows; a flood of new
    # names is shortened afresh each time, not kept

    def __init__(self, enabled, strlen):
        self.enabled = enabled
        self.strlen = strlen
        self._files = {}

    def file(self, path):
        short = self._files.get(path)
        if short is None:
            if len(os.fsencode(path)) >= self.strlen - 1:  # cut by bpftrace: basename unknown
                short = path + "..."
            else:
                short = os.path.basename(path) if self.enabled else path
            if len(self._files) < self.KEPT:
                self._files[path] = short
        return short

    def row(self, pid, file, line, rest, arrow="->"):
        """A flow row as the scripts print it (scripts.LOCATION: PID, file, line), the file
        shortened, then `-> ` (`<- ` for a return) and `rest` (the function and the event); one
        escaped line, whatever characters the target's names hold. The bpftrace flow's rows and
        the engine's (engine_flow) both come from here."""
        return shown(f"{pid:>6} {self.file(file):>16}:{line:<4} {arrow} {rest}") + "\n"

    def event_row(self, event):
        """One printf of a flow, to show, if it is an event row (it holds names from the target:
        it stays one escaped row, whatever characters they hold); None for the scripts' own
        text."""
        text = event[:-1] if event.endswith("\n") else event
        match = self.FLOW_PREFIX.match(text)
        if not match:
            return None
        return self.row(match["pid"], match["file"].strip(), match["line"], text[match.end():],
                        match["arrow"])

    def maps(self, maps):
        """The report's maps with files shortened and equal keys merged."""
        merged = dict(maps)
        if "@alloc" in maps:
            table = {}
            for key, stats in maps["@alloc"].items():
                pid, file, *rest = alloc_key(key)
                short = ",".join([pid, self.file(file), *rest])
                if short in table:
                    stats = {"count": table[short]["count"] + stats["count"],
                             "total": table[short]["total"] + stats["total"]}
                table[short] = stats
            merged["@alloc"] = table
        if "@live" in maps:
            merged["@live"] = {ptr: [v[0], v[1], self.file(v[2]), v[3], v[4]]
                               for ptr, v in maps["@live"].items()}
        return merged


def alloc_key(key):
    """[pid, file, function, line, domain, bucket] of an @alloc key, as text. bpftrace joins map
    keys with ','; a file name may hold commas, the other parts never do."""
    pid, rest = key.split(",", 1)
    return [pid, *rest.rsplit(",", 4)]


def alloc_rows(maps):
    """@alloc's rows: (pid, file, function, line, domain, bucket, count, bytes); bucket is the
    size's power of two, -1 for size 0."""
    for key, stats in maps.get("@alloc", {}).items():
        pid, file, function, line, domain, bucket = alloc_key(key)
        yield (int(pid), file, function, int(line), int(domain), int(bucket),
               int(stats["count"]), int(stats["total"]))


def entries_from_maps(maps):
    """summary entries, one per process and location: pid, file, function, line, domain, with
    count and bytes summed over sizes."""
    merged = {}
    for pid, file, function, line, domain, _bucket, count, total in alloc_rows(maps):
        entry = merged.setdefault((pid, file, function, line, domain), {
            "pid": pid, "file": file, "line": line, "function": function, "domain": domain,
            "count": 0, "bytes": 0})
        entry["count"] += count
        entry["bytes"] += total
    return sorted(merged.values(), key=lambda e: (-e["bytes"], e["file"], e["line"]))


def bucket_hist(counts):
    """{bucket: count} -> histogram buckets as bpftrace's hist() prints them."""
    return [{"min": 0 if b < 0 else 1 << b, "max": 0 if b < 0 else (2 << b) - 1, "count": c}
            for b, c in sorted(counts.items())]


def size_dists(rows):
    """The text summary's histograms from rows (file, function, domain, bucket, count, bytes),
    bucket the size's power of two (-1 for 0): ({(file, function): (bytes, buckets)},
    {domain: (bytes, buckets)}), as tables.histogram_lines takes them. Whichever engine
    counted the rows, and at whatever depth (the innermost frame's file and function)."""
    totals, domain_totals = collections.Counter(), collections.Counter()
    by_function, by_domain = {}, {}
    for file, function, domain, bucket, count, total in rows:
        totals[file, function] += total
        domain_totals[domain] += total
        for table, key in ((by_function, (file, function)), (by_domain, domain)):
            counts = table.setdefault(key, collections.Counter())
            counts[bucket] += count
    return ({key: (totals[key], bucket_hist(c)) for key, c in by_function.items()},
            {d: (domain_totals[d], bucket_hist(c)) for d, c in by_domain.items()})


def leaks_from_live(live):
    """Leak entries, one per process and location, from @live[pid, ptr]."""
    groups = {}
    for block, value in live.items():
        pid = int(block.split(",", 1)[0])
        size, domain, file, function, line = value
        key = (pid, file, int(line), function, int(domain))
        entry = groups.setdefault(key, {"pid": pid, "file": file, "line": int(line),
                                        "function": function, "domain": int(domain),
                                        "count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += int(size)
    return sorted(groups.values(), key=lambda e: (-e["bytes"], -e["count"], e["file"], e["line"]))


def quantize(buckets, indent="   "):
    """A power-of-two histogram drawn as DTrace's quantize() draws it."""
    rows = [(int(b.get("min", 0)), int(b["count"])) for b in buckets if "min" in b]
    rows = [r for r in rows if r[0] >= 0]
    nonzero = [value for value, count in rows if count]
    lines = [f"{indent}{'value':>17}  ------------- Distribution ------------- count"]
    if not nonzero:
        return lines
    counts = dict(rows)
    total = sum(counts.values())
    low, high = min(nonzero), max(nonzero)
    value = 0 if low <= 1 else low >> 1
    values = [value] if value < low else []
    v = low
    while v <= high:
        values.append(v)
        v = 1 if v == 0 else v << 1
    values.append(v)
    for value in values:
        count = counts.get(value, 0)
        bar = "@" * int(round(40.0 * count / total)) if total else ""
        lines.append(f"{indent}{value:>17} |{bar:<40} {count}")
    return lines


def print_summary(title_lines, dists, domain_dists, entries, out, view=View()):
    """The text summary (tables): ranked locations first; histograms only if the view asks."""
    if title_lines:
        print("\n".join(title_lines), file=out)
    histograms = (tables.histogram_lines(dists, domain_dists, view.top, quantize)
                  if view.histograms else ())
    tables.write_summary(out, entries, view.top, histograms)


def print_leaks(entries, out, note="", view=View()):
    tables.write_leaks(out, entries, view.top, note)


def write_text(out, wanted, view, entries, ended, note="", dists=None, domain_dists=None):
    """A text summary or leak report of `entries` (one per process and location): one report
    for all processes, or one per process, then how each process ended."""
    groups = {None: entries}  # nothing traced: one report, which still ends with its total
    if view.per_process and entries:
        groups = {}
        for e in entries:
            groups.setdefault(e["pid"], []).append(e)
    for index, (pid, group) in enumerate(sorted(groups.items(), key=lambda g: -sum(
            e["bytes"] for e in g[1]))):
        if pid is not None:
            how = processes.how_ended(ended[pid]) if pid in ended else "still running"
            command = ("" if view.commands is None else
                       ": " + processes.command_shown(view.commands.get(pid, "")))
            print(f"{chr(10) if index else ''}== PID {pid}{command} ({how})\n", file=out)
        group = processes.combine(group, False)
        if wanted == "leaks":
            print_leaks(group, out, note, view)
        else:
            print_summary([], dists or {}, domain_dists or {}, group, out,
                          view._replace(histograms=view.histograms and pid is None))
    if view.not_seen:  # after the totals: what those totals cannot hold
        print("\n" + "\n".join(view.not_seen), file=out)
    pids = {e["pid"] for e in entries} | set(ended) | set(view.setid)
    if pids:
        print("\nProcesses traced:", file=out)
        print("\n".join(processes.process_lines(pids, ended, view.commands, view.setid)),
              file=out)


def write_entries(out, wanted, view, entries):
    """`entries` (summary or leaks, one per process and location) in a form other than text:
    complete, never cut to --top; JSON entries carry their `pid` (--per-process) or `pids`."""
    entries = processes.combine(entries, view.per_process)
    if view.form == "json":
        shown_entries = [as_json(e) for e in ranked(entries)]
        if view.commands is not None:  # --all: each entry's command line (raw; JSON escapes)
            for e in shown_entries:
                e["command"] = view.commands.get(e.get("pid"), "")
        if view.json_lines:
            json.dump({"type": "report", "report": wanted, "entries": shown_entries,
                       "not_seen": list(view.not_seen)}, out)
        else:
            json.dump(shown_entries, out, indent=1)
            _not_seen_on_stderr(view)  # a list of entries has no place for it
        print(file=out)
    elif view.form == "folded":
        folded.write(out, entries)
        _not_seen_on_stderr(view)
    elif view.form == "html":
        flamegraph_html.write(out, wanted, entries, view.lost, view.scripts, view.not_seen)
    else:
        raise ValueError(f"no report form {view.form!r}")


def _not_seen_on_stderr(view):
    for line in view.not_seen:
        print(f"pymemtrace-trace: {line}", file=sys.stderr)


def losses(plan, maps, lost_events, max_entries, rows=0):
    """What a run's report lost, each said in words with the option that avoids it; [] when it
    is complete. `rows`: the event rows of a flow received. A full map refuses new keys silently: the leaks script counts the blocks @live
    refused, the summary script counts the events @alloc should hold (a per-CPU map, it fills
    before its nominal size)."""
    lost = []
    events = int(maps.get("@flow_events", 0) or 0)
    avoid = "a larger --perf-pages, or the summary or leaks report, which aggregate in the kernel"
    if events > rows:  # the flow script counts its events: an exact count of those lost
        lost.append(f"{events - rows} of {events} events were lost (bpftrace's perf buffer was "
                    f"full; it said {lost_events}); {avoid}")
    elif lost_events and "@flow_events" not in maps:
        # The count went with the rest (bpftrace prints maps through the same perf buffer, and
        # drops what it holds at exit): bpftrace's own figure is then only a lower bound.
        lost.append(f"at least {lost_events} events were lost (bpftrace's perf buffer was "
                    f"full); {avoid}")
    refused = int(maps.get("@live_refused", 0) or 0)
    if refused:
        lost.append(f"{refused} blocks were not recorded: the map of live blocks was full "
                    f"(--max-entries {max_entries}); raise --max-entries")
    counted = sum(int(stats["count"]) for name in ("@alloc", "@stack_alloc")  # --depth: stacks
                  for stats in maps.get(name, {}).values())
    uncounted = int(maps.get("@alloc_events", 0) or 0) - counted
    if plan.kind == "summary" and uncounted > 0:
        lost.append(f"{uncounted} allocations were not counted: the map of locations was full "
                    f"(--max-entries {max_entries}); raise --max-entries")
    return lost


def report(out, plan, wanted, as_json, maps, collected, shortener, view=None):
    """Writes the `wanted` report (summary or leaks; flow was written as it came) of a run of
    `plan` (programs.Plan) from bpftrace's `maps` and what the runner `collected` from its
    printfs as they came (a replay.FlowReplay for a flow replayed, a stacks.Stacks for
    --depth), as `view` (a View; by default text, or JSON if `as_json`) says."""
    if view is None:
        view = View(form="json" if as_json else "text")
    maps = shortener.maps(maps)
    ended = processes.ended_statuses(maps)
    if "@stack_alloc" in maps or "@stack_live" in maps:  # --depth N > 1: maps keyed by stacks
        from . import stacks
        return stacks.report(out, wanted, view, maps, collected, ended)
    kind = plan.kind
    if kind == "flow":
        return
    if kind == "flowlog":
        # --libc / --object-allocator: the script prints a flow, which the runner replayed
        # into summary and leaks as it came (`collected`, a replay.FlowReplay), as the
        # original's log analyser did (lost events make them approximate; the run says so).
        if wanted == "flow":
            return
        entries = (collected.leak_entries() if wanted == "leaks"
                   else collected.summary_entries())
        if view.form != "text":
            write_entries(out, wanted, view, entries)
            return
        if wanted == "leaks":
            write_text(out, wanted, view, entries, ended,
                       " (paired by pointer from the event flow)")
            return
        write_text(out, wanted, view, entries, ended, dists=collected.histograms())
        for title, name in (("by engine caller", "@by_caller"), ):
            if maps.get(name):
                print(f"\nPython malloc byte distributions {title}:\n", file=out)
                for key, buckets in maps[name].items():
                    total = maps.get(name + "_total", {}).get(key, 0)
                    print(f"   {shown(key)}, total bytes = {total}", file=out)
                    print("\n".join(quantize(buckets)), file=out)
                    print(file=out)
        return
    if kind == "leaks":
        entries = leaks_from_live(maps.get("@live", {}))
        if view.form != "text":
            write_entries(out, wanted, view, entries)
        else:
            write_text(out, wanted, view, entries, ended)
        return
    entries = entries_from_maps(maps)
    if view.form != "text":
        write_entries(out, wanted, view, entries)
        return
    # Histograms per (file, function) and per domain, from @alloc's size buckets.
    dists, domain_dists = size_dists(
        (file, function, domain, bucket, count, total)
        for _pid, file, function, _line, domain, bucket, count, total in alloc_rows(maps))
    write_text(out, wanted, view, entries, ended, dists=dists, domain_dists=domain_dists)
