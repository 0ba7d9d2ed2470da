# SPDX-License-Identifier: MIT
"""--libc and --object-allocator: summary and leaks replayed from the flow of events, a row at a
time as it arrives, in tables no larger than --max-entries (what is refused is a stated loss).

A row is one printf of the program, whole (the session frames each: see session.frame_printfs):
it is read as one event however many newlines, spaces or `->` its names hold, and never becomes
two. Its PID is the first field and its event the last, both printed by BPF; the names between
can only misplace their own event. A row that starts with a PID and is neither an event nor a
CALL/RTN line is counted (`unparsed`) and stated as a loss."""
import re

# `%6d %16s:%-4d -> %s OP(ARGS) [pntr |X returns ]0x.. [domain N]`: the function is whatever
# lies between `-> ` and the last event that ends the row.
EVENT_ROW = re.compile(
    r"^\s*(?P<pid>\d+) (?P<file>.*?):(?P<line>\d+)\s*-> (?P<func>.*) (?P<op>\w+)\((?P<args>[^)]*)\)"
    r"(?: (?:pntr|\w+ returns) (?P<ret>0x[0-9a-f]+))?(?: domain (?P<domain>-?\d+))?$", re.S)
# --python-call-stack: `%6d %16s:%-4d -> CALL %s (depth %d)` and `<- RTN  %s (depth %d)`.
CALL_ROW = re.compile(r"^\s*\d+ .*:\d+\s*(?:-> CALL|<- RTN ) .* \(depth -?\d+\)$", re.S)
STARTS_WITH_PID = re.compile(r"^\s*\d+ ")


def parse_row(row, default_domain=-1):
    """One row (a printf, its newline removed) -> an event dict; None for the scripts' own rows;
    False for a row that has a PID but is not an event."""
    match = EVENT_ROW.match(row)
    if not match:
        if STARTS_WITH_PID.match(row) and not CALL_ROW.match(row):
            return False
        return None
    op = match["op"].lower()
    args = [a.strip() for a in match["args"].split(",")] if match["args"] else []
    event = {"pid": int(match["pid"]), "file": match["file"].strip(), "line": int(match["line"]),
             "function": match["func"],
             "domain": int(match["domain"]) if match["domain"] else default_domain,
             "ret": int(match["ret"], 16) if match["ret"] else 0}
    try:
        if op.endswith("realloc"):
            event.update(kind="realloc", old=int(args[0], 16), size=int(args[1]))
        elif op.endswith("calloc"):
            event.update(kind="alloc", size=int(args[0]) * int(args[1]))
        elif op.endswith("malloc"):
            event.update(kind="alloc", size=int(args[0]))
        elif op.endswith("free"):
            event.update(kind="free", ptr=int(args[0], 16))
        else:
            return False
    except (IndexError, ValueError):
        return False
    return event


def _bucket(size):
    """The size's power of two (0 for 0), as bpftrace's hist() draws it."""
    return 0 if size == 0 else 1 << (size.bit_length() - 1)


class FlowReplay:
    """Summary entries, live blocks and size histograms of a flow, fed a row at a time (`add`);
    frees paired by pointer, per process (a forked child holds its parent's pointers). At most
    `limit` locations and `limit` live blocks are kept: an allocation at a new location or a
    block beyond that is counted as refused, and `losses()` says so."""

    def __init__(self, limit, default_domain=-1, shortener=None):
        self.limit, self.default_domain, self.shortener = limit, default_domain, shortener
        self.summary = {}  # (pid, file, line, function, domain) -> entry
        self.live = {}  # (pid, ptr) -> (size, location key)
        self.sizes = {}  # (file, function) -> {bucket: count}
        self.unparsed = 0
        self.refused_locations = 0  # allocations not counted: the table of locations was full
        self.refused_blocks = 0  # blocks not recorded: the table of live blocks was full

    def add(self, text):
        """One printf of the program; returns whether it was an event row."""
        event = parse_row(text[:-1] if text.endswith("\n") else text, self.default_domain)
        if event is False:
            self.unparsed += 1
        if not event:
            return False
        if self.shortener is not None:
            event["file"] = self.shortener.file(event["file"])
        pid, kind = event["pid"], event["kind"]
        if kind in ("alloc", "realloc") and event["ret"]:
            if kind == "realloc":
                self.live.pop((pid, event["old"]), None)
            key = (pid, event["file"], event["line"], event["function"], event["domain"])
            entry = self.summary.get(key)
            if entry is None:
                if len(self.summary) >= self.limit:
                    self.refused_locations += 1
                    return True
                entry = self.summary[key] = {"pid": pid, "file": key[1], "line": key[2],
                                             "function": key[3], "domain": key[4],
                                             "count": 0, "bytes": 0}
            entry["count"] += 1
            entry["bytes"] += event["size"]
            buckets = self.sizes.setdefault((key[1], key[3]), {})
            buckets[_bucket(event["size"])] = buckets.get(_bucket(event["size"]), 0) + 1
            if (pid, event["ret"]) in self.live or len(self.live) < self.limit:
                self.live[(pid, event["ret"])] = (event["size"], key)
            else:
                self.refused_blocks += 1
        elif kind == "realloc" and event["size"] == 0:
            self.live.pop((pid, event["old"]), None)
        elif kind == "free":
            self.live.pop((pid, event["ptr"]), None)
        return True

    def summary_entries(self):
        return sorted(self.summary.values(), key=_order)

    def leak_entries(self):
        groups = {}
        for size, key in self.live.values():
            entry = groups.setdefault(key, {"pid": key[0], "file": key[1], "line": key[2],
                                            "function": key[3], "domain": key[4],
                                            "count": 0, "bytes": 0})
            entry["count"] += 1
            entry["bytes"] += size
        return sorted(groups.values(), key=_order)

    def histograms(self):
        """{(file, function): (bytes, [{min, count}...])} of the allocations counted."""
        totals = {}
        for entry in self.summary.values():
            key = (entry["file"], entry["function"])
            totals[key] = totals.get(key, 0) + entry["bytes"]
        return {key: (totals.get(key, 0), [{"min": low, "count": count}
                                           for low, count in sorted(buckets.items())])
                for key, buckets in self.sizes.items()}

    def losses(self):
        """What the replay lost, in words with the option that avoids it."""
        lost = []
        if self.unparsed:
            lost.append(f"{self.unparsed} event rows could not be read")
        if self.refused_locations:
            lost.append(f"{self.refused_locations} allocations were not counted: the runner's "
                        f"table of locations was full (--max-entries {self.limit}); raise "
                        "--max-entries")
        if self.refused_blocks:
            lost.append(f"{self.refused_blocks} blocks were not recorded: the runner's table "
                        f"of live blocks was full (--max-entries {self.limit}); raise "
                        "--max-entries")
        return lost


def _order(entry):
    return (-entry["bytes"], entry["file"], entry["line"])
