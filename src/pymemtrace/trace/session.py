# SPDX-License-Identifier: MIT
"""One bpftrace program running in the background: the one session class of the runner, the
tracer tests and the benchmarks.

    with BpftraceSession(program, positional=[pid]) as session:   # returns once BEGIN has run
        ...                                                          # the traced work
        session.wait_for(lambda lines: len(lines) >= 3)
    session.lines, session.maps, session.lost, session.errors

Each `printf` arrives whole (`on_printf` sees it as printed, `lines` holds its lines). By default
bpftrace runs with `-f json` and each printed map arrives as a dict in `maps`. With
`framed_rows=True` it writes text, which it formats several times faster than JSON (a flow of
printf rows then loses nothing at rates where JSON loses most): every printf of the program is
framed between a secret tag drawn for the session, so a row is whole however many newlines the
names it prints hold, and no name can forge a row or a line of bpftrace's own (a name cannot
hold a tag it never sees: the program is readable by root only). Then only maps of integers
(`@name: 5`, `@name[key]: 5`) reach `maps`. With `framed_rows="json"` the printfs are framed
the same way in JSON output (for programs whose maps only JSON gives whole): a printf reaches
`on_printf` only as the one row its tags enclose; one that is not (`unframed` counts them) is
not a row of the program. The program is held in a memfd and named
by a /proc/<our PID>/fd/N path, so nothing is left on disk; bpftrace gets SIGKILL if this process
dies (PR_SET_PDEATHSIG), so it never outlives its owner and never leaves probes attached.

bpftrace 0.17 runs BEGIN before it attaches USDT probes (measured: 5-16 ms before the target sees
its semaphores set), so `start()` returning does not mean "armed": see procfs.wait_armed.
"""
import ctypes
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time

from . import bpftrace_binary

READY_MARKER = "__pymemtrace_session_ready__"
# bpftrace 0.17's JSON writes a byte >= 0x80 of a string as a sign-extended escape, \uffffffc3
# for 0xc3 (a backslash before it doubled, as JSON escapes its own): read back as that byte.
_SIGNED_BYTE = re.compile(r"(?<!\\)((?:\\\\)*)\\uffffff([89a-f][0-9a-f])")
# bpftrace's stderr lines that are harmless here (see docs/toolkit.md).
HARMLESS = re.compile(r"RLIMIT_MEMLOCK|available_filter_functions|^\s*$")
# `printf("FORMAT"` in a bpftrace program: its format, escapes included.
_PRINTF = re.compile(r'printf\("((?:[^"\\]|\\.)*)"')
# bpftrace's own text output between rows: lost events, maps of integers, the attach count.
_LOST = re.compile(r"^Lost (\d+) events$")
_SCALAR = re.compile(r"^(@\w+): (-?\d+)$")
_KEYED = re.compile(r"^(@\w+)\[(.*)\]: (-?\d+)$")
_OWN_TEXT = re.compile(r"^(Attaching \d+ probes?\.\.\.)?$")


class SessionError(RuntimeError):
    """bpftrace ended, or failed, before its BEGIN ran: its message is the error's."""


class BpftraceSession:
    def __init__(self, program, positional=(), env=None, ready_marker=None, on_printf=None,
                 options=(), framed_rows=False):
        """`program`: bpftrace source. `positional`: its $1, $2... `ready_marker`: a printf of
        the program's own BEGIN that says it ran (the toolkit scripts print `dtrace:::BEGIN`);
        when None, the program's BEGIN (or a new one) first prints READY_MARKER, unseen. `on_printf(text)`: called on
        the reader thread for each printf instead of collecting `lines`. `options`: more
        bpftrace options. `framed_rows`: text output with tagged rows (see above); every printf
        of the program must end its line; "json": the same framing, JSON output."""
        if ready_marker is None:
            # bpftrace 0.17 takes one BEGIN: the marker goes first into the program's own.
            marker = f'printf("{READY_MARKER}\\n");'
            begin = re.search(r"^BEGIN\s*\{", program, re.M)
            program = (program[:begin.end()] + f" {marker}" + program[begin.end():] if begin
                       else f"BEGIN {{ {marker} }}\n{program}")
            ready_marker = READY_MARKER
        self._tag = None
        if framed_rows:
            self._tag = "pmt" + secrets.token_hex(8)
            program = frame_printfs(program, self._tag)
        self._text = framed_rows is True
        self.program = program
        self.positional = [str(p) for p in positional]
        self.env = env
        self.options = list(options)
        self.ready_marker = ready_marker
        self.on_printf = on_printf
        self.proc = None
        self.lines = []
        self.maps = {}
        self.lost = 0
        self.unframed = 0  # framed JSON: printfs that were not one whole row (never, but counted)
        self.errors = []
        self.last_output = time.monotonic()
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._threads = []
        self._program_fd = None

    # -- running ------------------------------------------------------------------------------

    def start(self, timeout=120.0):
        """Starts bpftrace; returns once its BEGIN has run. SessionError with bpftrace's message
        if it ends or errs first, or takes longer than `timeout`."""
        self._program_fd = os.memfd_create("pymemtrace-program")
        os.write(self._program_fd, self.program.encode())
        # Its own session: a Ctrl-C at the terminal reaches its owner only.
        output = [] if self._text else ["-f", "json"]
        self.proc = subprocess.Popen(
            [bpftrace_binary.path(), *output, "-B", "line", *self.options,
             f"/proc/{os.getpid()}/fd/{self._program_fd}", *self.positional],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
            start_new_session=True, preexec_fn=deaf_to_unit_stops(die_with(os.getpid())))
        reader = self._read_framed if self._text else self._read_json
        for target in (reader, self._read_stderr):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._ended.is_set() or self.proc.poll() is not None or time.monotonic() > deadline:
                break
        if not self._ready.is_set() or self.proc.poll() is not None:
            time.sleep(0.2)  # the rest of its error message
            self.stop()
            raise SessionError("\n".join(self.errors[-15:]) or
                               f"bpftrace exited with status {self.proc.returncode}")
        return self

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate(lines) is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.lines)):
                return True
            time.sleep(0.05)
        return predicate(list(self.lines))

    def drain(self, quiet=1.0, limit=120.0):
        """Waits until bpftrace has printed nothing for `quiet` seconds: its perf buffer may
        still hold events when the traced process ends, and bpftrace drops them on SIGINT."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.poll() is None:
            if time.monotonic() - self.last_output >= quiet:
                return
            time.sleep(0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, limit=120.0, quiet=3.0):
        """Detaches (SIGINT, as Ctrl-C) and returns the lines printed. bpftrace 0.17 can miss a
        lone SIGINT that lands just before it blocks in epoll_wait, and then waits for an event
        an idle target never makes (seen about once in 30 runs): the SIGINT is sent again after
        `quiet` seconds without output. Not sooner: a second SIGINT while bpftrace drains its
        buffers and prints its maps makes it quit without them."""
        deadline = time.monotonic() + limit
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.proc.send_signal(signal.SIGINT)
            sent = time.monotonic()
            while self.proc.poll() is None and time.monotonic() < deadline:
                if time.monotonic() - max(sent, self.last_output) >= quiet:
                    break  # silent since the signal: missed, send it again
                try:
                    self.proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._program_fd is not None:
            os.close(self._program_fd)
            self._program_fd = None
        return list(self.lines)

    def map_lines(self):
        """The maps bpftrace printed, as its text output writes them: `@name[key]: value`."""
        lines = []
        for name, value in self.maps.items():
            if not isinstance(value, dict):
                lines.append(f"{name}: {value}")
                continue
            for key, item in value.items():
                if isinstance(item, dict):  # stats()
                    item = (f"count {item['count']}, average {item['average']}, "
                            f"total {item['total']}")
                lines.append(f"{name}[{key}]: {item}")
        return lines

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and (self.proc.poll() is None or self._program_fd is not None):
            self.stop()

    # -- reading ------------------------------------------------------------------------------

    def _printf(self, data):
        if not self._ready.is_set() and self.ready_marker in data:
            self._ready.set()
            if self.ready_marker == READY_MARKER:
                return
        if self.on_printf is not None:
            self.on_printf(data)
        else:
            self.lines.extend(data.splitlines())

    def _read_framed(self):
        """Text output, read in chunks and cut at the tags: in `TAG row TAG\\n TAG row TAG\\n`
        the pieces between tags are rows and bpftrace's own text by turns (a newline, or its
        lines between two rows), whatever newlines a row holds."""
        tag = self._tag.encode()
        pending, in_row, after_row = b"", False, False
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            self.last_output = time.monotonic()
            pieces = (pending + chunk).split(tag)
            # The last piece may be cut short (a row, a line, even a tag): kept for the next chunk.
            *done, pending = pieces
            for piece in done:
                if in_row:
                    self._printf(piece.decode("utf-8", "surrogateescape") + "\n")
                    after_row = True
                else:
                    self._own_text(piece[1:] if after_row else piece)
                in_row = not in_row
            if in_row:
                pending = tag + pending
                in_row = False
        if pending:
            self._own_text(pending)
        self._ended.set()

    def _own_text(self, text):
        """bpftrace's own lines, printed between rows (raw bytes)."""
        for line in text.decode("utf-8", "replace").splitlines():
            lost, scalar, keyed = _LOST.match(line), _SCALAR.match(line), _KEYED.match(line)
            if lost:
                self.lost += int(lost[1])
            elif scalar:
                self.maps[scalar[1]] = int(scalar[2])
            elif keyed:
                self.maps.setdefault(keyed[1], {})[keyed[2]] = int(keyed[3])
            elif not _OWN_TEXT.match(line):
                self.errors.append(line)

    def _read_json(self):
        for line in self.proc.stdout:
            line = line.decode("utf-8", "surrogateescape")
            self.last_output = time.monotonic()
            try:
                event = json.loads(_SIGNED_BYTE.sub(r"\1\\u00\2", line))
                if "\\uffffff" in line:
                    event = _bytes_as_utf8(event)
            except ValueError:
                if line.strip():
                    self.errors.append(line.rstrip("\n"))
                continue
            kind, data = event.get("type"), event.get("data")
            if kind == "printf":
                self._printf_json(data)
            elif kind in ("map", "hist", "stats", "lhist"):
                self.maps.update(data)
            elif kind == "lost_events":
                self.lost += int(data.get("events", 0)) if isinstance(data, dict) else int(data)
        self._ended.set()

    def _printf_json(self, data):
        """A printf of JSON output: with framing, the one row between its tags."""
        if self._tag is None:
            return self._printf(data)
        if not isinstance(data, str):
            self.unframed += 1
            return None
        tag = self._tag
        if not (data.startswith(tag) and data.endswith(tag + "\n")
                and len(data) >= 2 * len(tag) + 1 and tag not in data[len(tag):-len(tag) - 1]):
            self.unframed += 1
            return None
        return self._printf(data[len(tag):-len(tag) - 1] + "\n")

    def _read_stderr(self):
        for line in self.proc.stderr:
            line = line.decode("utf-8", "replace").rstrip("\n")
            match = re.search(r"Lost (\d+) events", line)
            if match:
                self.lost += int(match.group(1))
            elif not HARMLESS.search(line):
                self.errors.append(line)


def frame_printfs(program, tag):
    """`program` with the output of each printf between two `tag`s: `TAG...TAG\\n`."""
    def frame(match):
        body = match[1]
        if not body.endswith("\\n"):
            raise ValueError(f"a framed printf must end its line: {match[0]}")
        return f'printf("{tag}{body[:-2]}{tag}\\n"'
    return _PRINTF.sub(frame, program)


def _bytes_as_utf8(value):
    """A decoded event whose characters U+0080-U+00FF stand for raw bytes (see _SIGNED_BYTE),
    with those bytes read as UTF-8; bytes that are not UTF-8 become surrogate escapes (lossless;
    names.shown shows them as \\xNN)."""
    if isinstance(value, str):
        return value.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return {_bytes_as_utf8(key): _bytes_as_utf8(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_bytes_as_utf8(item) for item in value]
    return value


def deaf_to_unit_stops(preexec):
    """For Popen's preexec_fn: `preexec`, then SIGTERM and SIGHUP blocked in the child (a mask
    exec keeps). bpftrace ends on SIGTERM, and its owner stops it by SIGINT: a stop that
    reaches every process of a unit (systemd's KillMode=control-group: SIGTERM, then SIGHUP
    with SendSIGHUP=) would end it before the command it traces, whose shutdown the report
    holds. SIGKILL still ends it, as the owner's death does (die_with)."""
    def run():
        preexec()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})
    return run


def die_with(owner):
    """For Popen's preexec_fn: the child gets SIGKILL when `owner` dies (PR_SET_PDEATHSIG), and
    exits at once if `owner` is already gone."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def bind():
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != owner:
            os._exit(1)
    return bind
