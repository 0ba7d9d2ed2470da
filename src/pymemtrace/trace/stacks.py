# SPDX-License-Identifier: MIT
"""`--depth N` (N > 1): summary and leaks keyed by Python stacks of N frames.

The py* probes' `stack` argument points at the thread's stack record (include/pymemtrace/
location.h) while a tracer is attached to `pystack4` or `pystack16`. Frame N - 1 of the record
holds the id of the innermost N frames, mixed by the target from the frames' content, so the
programs here key their maps by numbers only (the BPF stack is 512 bytes: N frames of names
cannot be a key): @stack_alloc[pid, stack id, domain, size bucket] = stats(size) and
@stack_live[pid, ptr] = (size, domain, stack id). The names of a stack are printed once per
process, the first time its id is seen, one printf per name (STACK_FILE, STACK_FUNCTION), so a
name is whatever follows the fixed fields of its own printf. Depth 1 keeps the toolkit scripts.

Standard library only; the program is made of scripts.py's parts (BEGIN, following children,
the size bucket, END) and checked by aliases like every program of the runner."""
import os
import re

from . import elf, native, scripts

MAX_DEPTH = 16  # PYMEMTRACE_STACK_FRAMES
FRAME_BYTES, FRAMES_AT = 40, 8  # struct pymemtrace_frame; frames[] in struct pymemtrace_stack
STACK_FILE = "dtrace:::STACK_FILE"  # pid stack-id frame line file
STACK_FUNCTION = "dtrace:::STACK_FUNCTION"  # pid stack-id frame function
_FILE_ROW = re.compile(rf"^{STACK_FILE} (\d+) (-?\d+) (\d+) (-?\d+) (.*)$", re.S)
_FUNCTION_ROW = re.compile(rf"^{STACK_FUNCTION} (\d+) (-?\d+) (\d+) (.*)$", re.S)
_U64 = (1 << 64) - 1  # bpftrace prints a map key's u64 signed, a printf's %lu unsigned


NATIVE_AT = FRAMES_AT + FRAME_BYTES * MAX_DEPTH  # the record's `native` field (--native)


def request(depth):
    """The request probe for `depth` frames: the target walks no deeper than asked."""
    return "pystack4" if depth <= 4 else "pystack16"


def _native_key(index):
    """$nat = the native caller of the event (native.py's key: library `index`, offset); 0 when
    the record has none."""
    return ["$nat = (uint64)0;",
            *scripts._block("if ($r != 0)", [f"$nat = *(uint64 *)($r + {NATIVE_AT});"]),
            f"if ($nat != 0) {{ $nat = $nat | ((uint64){index} << {native.LIBRARY_SHIFT}); }}"]


def with_records(libraries, depth, native_caller=False):
    """(those of `libraries` that can fill a stack record: they have the request probe for
    `depth`, and pynative for `native_caller`; the others, built with older headers, whose py*
    probes carry no record or no native caller)."""
    able, unable = [], []
    wanted = {("pymemtrace", request(depth))} | ({("pymemtrace", "pynative")} if native_caller
                                                 else set())
    for library in libraries:
        names = {(probe.provider, probe.name) for probe in elf.probes(library)}
        (able if wanted <= names else unable).append(library)
    return able, unable


def _record_argument(probe, machine=None):
    """The expression of the py* probe's `stack` argument. x86-64: pyalloc's and pyrealloc's
    seventh argument is on the stack, which bpftrace 0.17 will not read as arg6."""
    index = {"pyalloc": 6, "pyrealloc": 6, "pyfree": 5}[probe]
    if index == 6 and (machine or os.uname().machine) in ("x86_64", "AMD64"):
        return '*(uint64 *)(reg("sp") + 8)'
    return f"arg{index}"


def _stack_id(probe, depth, machine=None):
    """$sid = the id of the innermost `depth` frames (0: no record, a record filled for a
    shallower request, or no Python frame); $r = the record."""
    return [f"$r = (uint64){_record_argument(probe, machine)};",
            "$sid = (uint64)0;",
            *scripts._block("if ($r != 0)", [
                "// requested (the high half) may be another tracer's smaller request",
                *scripts._block(f"if ((*(uint64 *)$r >> 32) >= {depth})", [
                    f"$sid = *(uint64 *)($r + {FRAMES_AT + FRAME_BYTES * (depth - 1) + 8});"]),
            ])]


def _names_once(depth):
    """The frames' names of a stack id seen for the first time in this process."""
    printing = []
    for index in range(depth):
        at = FRAMES_AT + FRAME_BYTES * index
        printing += [
            scripts._printf(f"{STACK_FILE} %d %lu {index} %d %s\\n",
                            ["pid", "$sid", f"*(int32 *)($r + {at + 32})",
                             f"str(*(uint64 *)($r + {at + 16}))"]),
            scripts._printf(f"{STACK_FUNCTION} %d %lu {index} %s\\n",
                            ["pid", "$sid", f"str(*(uint64 *)($r + {at + 24}))"])]
    return scripts._block("if ($sid != 0 && @stack_seen[pid, $sid] == 0)",
                          ["@stack_seen[pid, $sid] = 1;", *printing])


def _summary(lang, depth, machine, index=None):
    clauses = []
    for probe in ("pyalloc", "pyrealloc"):
        args = lang.args(probe)
        domain = args.get("domain", "(int64)-1")  # pyrealloc carries none
        clauses.append(lang.clause(lang.pymemtrace(probe), [
            *_stack_id(probe, depth, machine), *_names_once(depth),
            *(_native_key(index) if index is not None else []),
            *scripts._bt_size_bucket(args["size"]),
            f"@stack_alloc[pid, $sid, {'$nat, ' if index is not None else ''}{domain}, $bucket]"
            f" = stats({args['size']});",
            "@alloc_events = count();"]))
    return clauses, ["print(@stack_alloc);", "print(@alloc_events);"]


def _keep(ptr, size, domain, native=False):
    return [f"@stack_live[pid, {ptr}] = ({size}, {domain}, $sid{', $nat' if native else ''});",
            f"@live_domain[pid, {ptr}] = {domain} + 2;",
            f"if (@live_domain[pid, {ptr}] == 0) {{ @live_refused = count(); }}"]


def _forget(ptr):
    return [f"delete(@stack_live[pid, {ptr}]);", f"delete(@live_domain[pid, {ptr}]);"]


def _leaks(lang, depth, machine, index=None):
    alloc, move, free = (lang.args(probe) for probe in ("pyalloc", "pyrealloc", "pyfree"))
    nat, keyed = (_native_key(index), True) if index is not None else ([], False)
    clauses = [
        lang.clause(lang.pymemtrace("pyalloc"), [
            *_stack_id("pyalloc", depth, machine), *_names_once(depth), *nat,
            *_keep(alloc["ptr"], alloc["size"], alloc["domain"], keyed)],
            condition="@stopping == 0"),
        lang.clause(lang.pymemtrace("pyrealloc"), [
            f"$domain = @live_domain[pid, {move['old_ptr']}] - 2;",
            "if ($domain < -1) { $domain = -1; }",
            *_forget(move["old_ptr"]), *_stack_id("pyrealloc", depth, machine),
            *_names_once(depth), *nat, *_keep(move["new_ptr"], move["size"], "$domain", keyed)]),
        lang.clause(lang.pymemtrace("pyfree"), _forget(free["ptr"])),
    ]
    return clauses, ["print(@stack_live);", "print(@live_refused);"]


def _native_clauses(report, depth, libraries, everyone, machine):
    """--native: each library's clauses apart, so that each event's key names its library (its
    index in `libraries`), and the request for the native caller."""
    clauses, printing = [], []
    if report == "leaks":
        clauses.append(scripts._bt_stop_recording())
    for index, library in enumerate(libraries):
        lang = scripts._Lang("bt", scripts.BtProbes([library], None, None), everyone,
                             whole_paths=True)
        made, printing = (_summary if report == "summary" else _leaks)(lang, depth, machine,
                                                                       index)
        clauses += made
    lang = scripts._Lang("bt", scripts.BtProbes(libraries, None, None), everyone,
                         whole_paths=True)
    clauses.append(lang.clause(lang.pymemtrace("pynative"), ["@native_requests = count();"],
                               comment="Never fires: attached, it asks for the native caller."))
    return clauses, printing


def bpftrace_program(report, depth, libraries, follow=True, everyone=False, machine=None,
                     setid=False, native_caller=False):
    """The bpftrace program of `report` (summary or leaks) by stacks of `depth` (2..16; 1 with
    `native_caller`) frames, its probes on `libraries` (aliases, put in probe specs as given);
    `setid`: see scripts.bpftrace_script; `native_caller`: keyed by the native caller too
    (native.py), which needs the libraries named."""
    if not (1 if native_caller else 2) <= depth <= MAX_DEPTH:
        raise ValueError(f"depth {depth}: 2 to {MAX_DEPTH} (1 is the toolkit's scripts)")
    if report not in ("summary", "leaks"):
        raise ValueError(f"--depth groups summary and leaks, not {report}")
    spec = scripts._spec(f"pymemtrace_{report}")
    lang = scripts._Lang("bt", scripts.BtProbes(libraries, None, None), everyone,
                         whole_paths=True)
    if native_caller:
        clauses, printing = _native_clauses(report, depth, libraries, everyone, machine)
    else:
        clauses, printing = (_summary if report == "summary" else _leaks)(lang, depth, machine)
        if report == "leaks":
            clauses.insert(0, scripts._bt_stop_recording())
    asking = lang.clause(lang.pymemtrace(request(depth)), ["@stack_requests = count();"],
                         comment=f"Never fires: attached, it asks the target for {depth} frames.")
    parts = ["\n".join(scripts._bt_begin(spec, everyone)),
             *("\n".join(clause) for clause in scripts._bt_follow(follow, everyone, setid)),
             "\n".join(asking), *("\n".join(clause) for clause in clauses)]
    title = scripts.SUMMARY_TITLE if report == "summary" else scripts.LEAKS_TITLE
    end = scripts._bt_end("\n".join(parts), [scripts._printf(title), *printing])
    head = [f"// pymemtrace-trace --report {report} --depth {depth}: made by "
            "src/pymemtrace/trace/stacks.py"]
    return "\n\n".join(["\n".join(head), *parts, "\n".join(end)]) + "\n"


class Stacks:
    """The frames of each (pid, stack id), from the programs' printfs as they come (`add`).

    The runner's memory is bounded by what a report can name: at most `limit` stacks
    (--max-entries: a report's map holds no more keys), each a flat list of its frames, and each
    name kept once in a table of at most MAX_NAMES. A stack beyond `limit`, or a name beyond
    MAX_NAMES, is not kept (a stack with such a name is unknown); `losses` states it when the
    report names such a stack. (A target that makes a new stack for every event had the runner
    keep every printf: 10 MB/s.)"""

    MAX_NAMES = 65536

    def __init__(self, limit, shortener=None, native_libraries=None):
        self.limit, self.shortener = limit, shortener
        self.native_libraries = native_libraries  # --native: the programs' libraries, in order
        self.frames = {}  # (pid, sid) -> [file, line, function, file, line, function, ...]
        self._names = {}  # each name once
        self.refused = 0  # name printfs not kept: a stack beyond `limit` or a name beyond MAX_NAMES

    def _name(self, text):
        name = self._names.get(text)
        if name is None and len(self._names) < self.MAX_NAMES:
            name = self._names[text] = text
        return name

    def add(self, text):
        """One printf of the program; returns whether it was a stack's name (kept or not)."""
        text = text[:-1] if text.endswith("\n") else text  # the printf's own newline
        row = _FILE_ROW.match(text)
        if row:
            pid, sid, index, line, name = row.groups()
            if self.shortener and name:
                name = self.shortener.file(name)
            slot, value = 0, int(line)
        else:
            row = _FUNCTION_ROW.match(text)
            if not row:
                return False
            pid, sid, index, name = row.groups()
            slot, value = 2, None
        key = (int(pid), int(sid) & _U64)
        frames = self.frames.get(key)
        if frames is None:
            if len(self.frames) >= self.limit:
                self.refused += 1
                return True
            frames = self.frames[key] = []
        at = 3 * int(index)
        while len(frames) <= at:
            frames += ["?", 0, "?"] if len(frames) < at else ["", 0, ""]
        kept = self._name(name)
        if kept is None:
            self.refused += 1
        frames[at + slot] = kept
        if value is not None:
            frames[at + 1] = value
        return True

    def put(self, pid, sid, frames):
        """A stack's frames [(file, line, function)...], innermost first, given whole (by
        pymemtrace-engine), kept as add() keeps them; returns whether it was kept."""
        key = (int(pid), int(sid) & _U64)
        if key not in self.frames and len(self.frames) >= self.limit:
            self.refused += 1
            return False
        flat = []
        for file, line, function in frames:
            if self.shortener and file:
                file = self.shortener.file(file)
            names = (self._name(file), self._name(function))
            if None in names:
                self.refused += 1
            flat += [names[0], int(line), names[1]]
        self.frames[key] = flat
        return True

    def stack(self, pid, sid):
        """The stack's frames (file, line, function), innermost first, without the empty ones
        past the outermost; one empty frame for no location."""
        sid &= _U64
        if sid == 0:
            return (("", 0, ""),)
        known = self.frames.get((pid, sid))
        if not known or None in known:  # its names' printfs were lost, or not kept
            return ((f"<stack {sid:016x}>", 0, ""),)
        frames = [tuple(known[at:at + 3]) for at in range(0, len(known), 3)]
        while len(frames) > 1 and frames[-1] == ("", 0, ""):
            frames.pop()
        return tuple(frames)

    def losses(self, maps):
        """The stacks a report names whose names were not kept, in words; [] when none."""
        if not self.refused:
            return []
        named = {(int(key.split(",", 2)[0]), int(key.split(",", 2)[1]) & _U64)
                 for key in maps.get("@stack_alloc", {})}
        named |= {(int(key.split(",", 1)[0]), int(value[2]) & _U64)
                  for key, value in maps.get("@stack_live", {}).items()}
        unknown = sum(1 for key in named if key[1] and (key not in self.frames
                                                        or None in self.frames[key]))
        if not unknown:
            return []
        return [f"the names of {unknown} stacks in the report are unknown: the runner keeps "
                f"at most {self.limit} stacks (--max-entries) and {self.MAX_NAMES} names, and "
                f"{self.refused} names were beyond that (others may be among the events lost); "
                "raise --max-entries"]


def _entry(pid, stack, domain, nat=None):
    file, line, function = stack[0]
    return {"pid": pid, "file": file, "line": line, "function": function, "domain": domain,
            "stack": [list(frame) for frame in stack], "count": 0, "bytes": 0,
            **({} if nat is None else {"native_key": nat & _U64})}


def summary_entries(maps, stacks):
    """Entries (one per process, stack, native caller with --native, and domain) and the rows
    behind them: (pid, stack, domain, bucket, count, bytes)."""
    merged, rows = {}, []
    for key, stats in maps.get("@stack_alloc", {}).items():
        parts = [int(part) for part in key.split(",")]
        nat = parts.pop(2) if len(parts) == 5 else None  # --native: pid, sid, nat, domain, bucket
        pid, sid, domain, bucket = parts
        stack = stacks.stack(pid, sid)
        entry = merged.setdefault((pid, stack, nat, domain), _entry(pid, stack, domain, nat))
        entry["count"] += int(stats["count"])
        entry["bytes"] += int(stats["total"])
        rows.append((pid, stack, domain, bucket, int(stats["count"]), int(stats["total"])))
    return list(merged.values()), rows


def leak_entries(maps, stacks):
    """Leak entries, one per process, stack and domain, from @stack_live[pid, ptr]."""
    merged = {}
    for key, (size, domain, sid, *nat) in maps.get("@stack_live", {}).items():
        pid = int(key.split(",", 1)[0])
        stack = stacks.stack(pid, int(sid))
        nat = int(nat[0]) if nat else None  # --native
        entry = merged.setdefault((pid, stack, nat, int(domain)),
                                  _entry(pid, stack, int(domain), nat))
        entry["count"] += 1
        entry["bytes"] += int(size)
    return list(merged.values())


def report(out, wanted, view, maps, stacks, ended):
    """The summary or leaks report (reports.report's forms) of a --depth program's maps, with
    the names of their `stacks` (a Stacks)."""
    from . import reports  # reports calls here: imported late, no cycle
    if wanted == "leaks":
        entries, rows = leak_entries(maps, stacks), []
    else:
        entries, rows = summary_entries(maps, stacks)
    if stacks.native_libraries is not None:
        named = native.symbolize(stacks.native_libraries,
                                 {e["native_key"] for e in entries if "native_key" in e})
        for e in entries:
            e["native"] = named.get(e.pop("native_key", 0) & _U64)
    if view.form != "text":
        reports.write_entries(out, wanted, view, entries)
        return
    if wanted == "leaks":
        reports.write_text(out, wanted, view, entries, ended)
        return
    # Histograms per innermost (file, function) and per domain, from the size buckets.
    dists, domain_dists = reports.size_dists(
        (stack[0][0], stack[0][2], domain, bucket, count, total)
        for _pid, stack, domain, bucket, count, total in rows)
    reports.write_text(out, wanted, view, entries, ended, dists=dists, domain_dists=domain_dists)
