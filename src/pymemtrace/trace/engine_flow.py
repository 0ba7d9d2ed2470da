# SPDX-License-Identifier: MIT
"""The flow from pymemtrace-engine (--flow-fd; src/engine/flow.hpp): its binary frames read on a
thread as they come, every event written as the bpftrace flow's row (reports.Shortener.row, with
the event text of scripts.PROBE_EVENTS, or of the allocator family's functions for --libc and
--object-allocator), the target's names escaped. Standard library only."""
import operator
import os
import struct
import threading

from . import scripts

HEADER = struct.Struct("=II")  # frame type, payload bytes
NAMES = struct.Struct("=QiIII")  # id, line, truncated, file bytes, function bytes; then the bytes
EVENT = struct.Struct("=QQQQQIIIi")  # engine.h's struct engine_event
FRAME_NAMES, FRAME_EVENTS = 1, 2
KINDS = ("pyalloc", "pyrealloc", "pyfree")  # enum engine_event_kind
ALLOCATOR_KINDS = ("malloc", "calloc", "realloc", "free")  # then --allocator's calls
# --python-call-stack's kinds (engine.h's EVENT_CALL, EVENT_RTN): their name in the report's
# counters and losses, the arrow and word of their rows, as scripts.CALL_LINE and RETURN_LINE
# print `-> CALL f (depth N)` and `<- RTN  f (depth N)`; the record's size is the depth.
CALL_KINDS = {7: ("call", "->", "CALL "), 8: ("rtn", "<-", "RTN  ")}
# struct engine_event's fields by the names scripts.PROBES gives the probes' arguments.
FIELDS = {"ptr": 1, "new_ptr": 1, "old_ptr": 2, "size": 3, "domain": 8}
# ... and by the names scripts.KEPT gives the allocator functions' (engine.h: calloc's count in
# old_ptr, realloc's block given in old_ptr, the block returned in ptr).
ALLOCATOR_FIELDS = {"malloc": {"size": 3, "ret": 1}, "calloc": {"count": 2, "size": 3, "ret": 1},
                    "realloc": {"ptr": 2, "size": 3, "ret": 1}, "free": {"ptr": 1}}
# What each kind does to the blocks the flow showed (unseen_frees): allocates, moves, frees, or
# nothing (a Python call or return).
ALLOCATES, MOVES, FREES, NO_BLOCK = 0, 1, 2, 3
ROLES = (ALLOCATES, MOVES, FREES, ALLOCATES, ALLOCATES, MOVES, FREES, NO_BLOCK, NO_BLOCK)
NOWHERE = ("", "", 0)  # location 0: no Python frame
UNNAMED = ("?", "?", 0)  # names the full names map refused (the report's names_full)
BEGIN = scripts.BEGIN_LINE.replace("\\n", "\n")
END = scripts.END_LINE.replace("\\n", "\n")


def _event_text(event, fields):
    """(format, values) of an event's text after the function, from the printf format the
    scripts print it with (`malloc(%lu) pntr 0x%lx domain %d`, a scripts.Event) in Python's %
    terms, and a getter of its values from an EVENT tuple (`fields`: their indexes by name)."""
    text = event.format()
    text = text[text.index(" -> %s ") + len(" -> %s "):-len("\\n")]
    values = event.values(fields)
    return text.replace("%lu", "%d").replace("%lx", "%x"), operator.itemgetter(*values)


EVENT_TEXTS = tuple(_event_text(scripts.PROBE_EVENTS[probe[2:]], FIELDS) for probe in KINDS)
DEPTH = operator.itemgetter(3)  # a call's or return's depth: the record's size


def event_texts(family):
    """The event texts by kind of a flow: the py* kinds', then those of the allocator `family`'s
    functions (a scripts.Family: --libc, --object-allocator) if any."""
    if family is None:
        return EVENT_TEXTS
    return EVENT_TEXTS + tuple(_event_text(scripts._family_event(family, call),
                                           ALLOCATOR_FIELDS[call]) for call in ALLOCATOR_KINDS)


def end_text(family):
    """What follows a flow's events: the END line, and for libc's the titles of its END tables
    (as scripts._callers_end prints them; the bpftrace runner shows their titles only)."""
    if family is None or not family.callers:
        return END
    return END + "\n".join(f"Python malloc byte distributions {title}:\n"
                           for title, _name, _total in scripts.CALLERS)


class FlowReader:
    """Reads the engine's flow from `fd` until it ends, writing rows to `out` (flushed after
    each batch when `at_once`: a terminal). `rows`: the rows written; `write_error`,
    `read_error`: why writing or reading rows stopped, if it did (the pipe is drained all the
    same, so the engine never waits on us)."""

    KEPT = 4096  # row templates remembered, by (pid, location, kind)

    def __init__(self, fd, out, shortener, at_once, unseen, family=None):
        self.fd, self.out, self.shortener, self.at_once = fd, out, shortener, at_once
        # --libc, --object-allocator: the scripts.Family whose calls the flow holds
        self.texts, self.end = event_texts(family), end_text(family)
        self.unseen = unseen  # an unseen_frees.UnseenFrees: frees it does not show
        self.rows = 0  # event rows read, shown or not
        self.names = {}  # location id -> (file, function, line): each sent once, at most
        # the engine's --max-locations (65,536 by default)
        self.templates = {}  # (pid, location, kind) -> _template's
        self.write_error = None
        self.read_error = None  # why reading stopped, if it did (the rows after it are lost)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join()

    def _read(self):
        self._write(BEGIN)
        pending = b""
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            if self.read_error is not None:
                continue  # drained all the same: the engine must never wait on a full pipe
            try:
                pending = self._add_frames(pending + chunk if pending else chunk)
            except Exception as error:  # noqa: BLE001 (any: stated, and the pipe still drained)
                self.read_error = error
        self._write(self.end)

    def _add_frames(self, data):
        """Writes the rows of the whole frames in `data`; returns the rest."""
        at, rows, hidden = 0, [], [0]
        try:
            while len(data) - at >= HEADER.size:
                kind, size = HEADER.unpack_from(data, at)
                start = at + HEADER.size
                if len(data) - start < size:
                    break  # the rest of the frame comes with the next chunk
                if kind == FRAME_NAMES:
                    self._add_names(data, start)
                elif kind == FRAME_EVENTS:
                    hidden[0] += self._add_rows(memoryview(data)[start:start + size], rows)
                at = start + size
        finally:  # the rows made before a frame that could not be read too
            self.rows += len(rows) + hidden[0]
            self._write("".join(rows))
        return data[at:]

    def _add_names(self, data, at):
        location, line, _truncated, file_bytes, function_bytes = NAMES.unpack_from(data, at)
        at += NAMES.size
        file = data[at:at + file_bytes].decode("utf-8", "surrogateescape")
        at += file_bytes
        function = data[at:at + function_bytes].decode("utf-8", "surrogateescape")
        self.names[location] = (file, function, line)

    def _add_rows(self, records, rows):
        """Appends the rows of `records` to `rows`; returns how many frees it did not show."""
        templates, unseen, hidden = self.templates, self.unseen, 0
        for event in EVENT.iter_unpack(records):
            role = ROLES[event[7]]
            if role == ALLOCATES:
                unseen.allocated(event[5], event[1])
            elif role == MOVES:
                unseen.moved(event[5], event[2], event[1], event[3])
            elif role == FREES and not unseen.shows_free(event[5], event[1]):
                hidden += 1
                continue
            template = templates.get((event[5], event[4], event[7]))  # pid, location, kind
            if template is None:
                template = self._template(event[5], event[4], event[7])
            rows.append(template[0] % template[1](event))
        return hidden

    def _template(self, pid, location, kind):
        """(a %-format of the whole row but for the event's numbers, their getter): PID, file,
        line, `->`, the function, then the event text (the numbers are all a row computes)."""
        file, function, line = (NOWHERE if location == 0 else
                                self.names.get(location, UNNAMED))
        if kind in CALL_KINDS:
            return self._call_template(pid, location, kind, file, function, line)
        text, values = self.texts[kind]
        beginning = self.shortener.row(pid, file, line, function + " ")[:-1]
        template = (beginning.replace("%", "%%") + text + "\n", values)
        if len(self.templates) < self.KEPT:
            self.templates[(pid, location, kind)] = template
        return template

    def _call_template(self, pid, location, kind, file, function, line):
        """_template's for a call or a return (--python-call-stack): the depth is its number."""
        _name, arrow, word = CALL_KINDS[kind]
        beginning = self.shortener.row(pid, file, line, word + function + " ", arrow)[:-1]
        template = (beginning.replace("%", "%%") + "(depth %d)\n", DEPTH)
        if len(self.templates) < self.KEPT:
            self.templates[(pid, location, kind)] = template
        return template

    def _write(self, text):
        if not text or self.write_error is not None:
            return
        try:
            self.out.write(text)
            if self.at_once:
                self.out.flush()
        except OSError as error:
            self.write_error = error  # finish() reports it: the flow is incomplete
