# SPDX-License-Identifier: MIT
"""Reports over time (--interval): every interval the leaks script prints its live blocks
(scripts.SNAPSHOT_LINE, then @live and @live_refused); each print becomes a snapshot, the live
bytes and blocks by location, written at once as a ranked text table or one JSON line, with each
location's growth since the first snapshot. At the end, the peak: the largest total of live
bytes seen at a snapshot, and the locations that held it.

What is kept stays bounded however long the run: the first snapshot's bytes by location (for the
growth) and the peak's entries, each at most one entry per location; no snapshot is kept once
written."""
import datetime
import json
import time

from . import processes, reports, tables
from .locations import as_json, ranked


def _key(entry):
    return (entry.get("pid"), entry["file"], entry["line"], entry["function"], entry["domain"])


class Snapshots:
    """Snapshots written to `out` as they come: `form` text or json (lines), the text's first
    `top` locations, merged over processes unless `per_process`; `shortener`: reports.Shortener.
    add() runs on the session's reader thread, peak() once tracing has stopped."""

    def __init__(self, out, form, top, per_process, shortener, max_entries):
        self.out, self.form, self.top = out, form, top
        self.per_process, self.shortener, self.max_entries = per_process, shortener, max_entries
        self.first = None  # {location: bytes} of the first snapshot
        self.started = None
        self.number = 0
        self.peak_snapshot = None  # (total bytes, number, time, entries)
        self.refused = 0
        self.write_error = None

    def add(self, live, refused=0):
        """One snapshot from a print of @live ({"pid,ptr": [size, domain, file, function, line]})."""
        entries = reports.leaks_from_live(self.shortener.maps({"@live": live or {}})["@live"])
        self.add_entries(entries, refused, time.time())

    def add_entries(self, entries, refused, now):
        """One snapshot of leak entries (reports.leaks_from_live's shape, files shortened) live
        at the instant `now` (time.time()'s clock)."""
        if self.started is None:
            self.started = now
        self.number += 1
        entries = ranked(processes.combine(entries, self.per_process))
        if self.first is None:
            self.first = {_key(e): e["bytes"] for e in entries}
        for e in entries:
            e["growth"] = e["bytes"] - self.first.get(_key(e), 0)
        total = sum(e["bytes"] for e in entries)
        if self.peak_snapshot is None or total > self.peak_snapshot[0]:
            self.peak_snapshot = (total, self.number, now, entries)
        newly_refused = int(refused or 0) > self.refused
        self.refused = max(self.refused, int(refused or 0))
        try:
            self._write(self.number, now, entries, newly_refused)
        except OSError as error:  # said by the report at the end (it cannot be written either)
            self.write_error = error

    def _when(self, moment):
        return {"time": round(moment, 3),
                "seconds": round(moment - self.started, 3)}

    def _write(self, number, moment, entries, newly_refused):
        blocks, total = sum(e["count"] for e in entries), sum(e["bytes"] for e in entries)
        if self.form == "json":
            line = {"type": "snapshot", "snapshot": number, **self._when(moment),
                    "bytes": total, "blocks": blocks, "refused": self.refused,
                    "entries": [dict(as_json(e), growth=e["growth"]) for e in entries]}
            self.out.write(json.dumps(line) + "\n")
        else:
            stamp = datetime.datetime.fromtimestamp(moment).isoformat(" ", "seconds")
            lines = [f"{'' if number == 1 else chr(10)}Snapshot {number}, {stamp} "
                     f"(+{moment - self.started:.1f} s): {total} bytes in {blocks} blocks live"]
            if newly_refused:
                lines.append(f"   INCOMPLETE: {self.refused} blocks were not recorded: the map of "
                             f"live blocks is full (--max-entries {self.max_entries}); raise "
                             "--max-entries")
            lines += tables.snapshot_lines(entries, self.top, self.per_process)
            self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def write_peak(self):
        """The peak: written after the final report (text) or as the last JSON line."""
        if self.write_error is not None:
            raise self.write_error
        if self.peak_snapshot is None:
            if self.form != "json":
                self.out.write("\nPeak: no snapshot was taken (the run was shorter than the "
                               "interval)\n")
            return
        total, number, moment, entries = self.peak_snapshot
        blocks = sum(e["count"] for e in entries)
        if self.form == "json":
            line = {"type": "peak", "snapshot": number, **self._when(moment), "bytes": total,
                    "blocks": blocks, "snapshots": self.number,
                    "entries": [dict(as_json(e), growth=e["growth"]) for e in entries]}
            self.out.write(json.dumps(line) + "\n")
            return
        stamp = datetime.datetime.fromtimestamp(moment).isoformat(" ", "seconds")
        lines = [f"\nPeak: {total} bytes in {blocks} blocks live, at snapshot {number} of "
                 f"{self.number} ({stamp}), held by:"]
        lines += tables.snapshot_lines(entries, self.top, self.per_process)
        self.out.write("\n".join(lines) + "\n")


class MapWatch(dict):
    """BpftraceSession.maps that also hands each print of maps to `on_print`: the session adds
    each printed map with maps.update() (on its reader thread)."""

    def __init__(self, on_print):
        super().__init__()
        self.on_print = on_print

    def update(self, data=(), **more):
        super().update(data, **more)
        self.on_print(dict(data, **more))
