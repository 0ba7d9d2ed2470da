# SPDX-License-Identifier: MIT
"""Whether a stop request the runner got in command mode is passed on to the command: only if
the command did not get the same request itself. systemd's default KillMode=control-group (and
anything that signals every process of a cgroup, or a `pkill -f` matching both) sends the
runner and the command the same signal, microseconds to milliseconds apart, in either order; a
`kill` of the runner alone, `docker stop` of an entry point or coreutils `timeout` (the command
has a process group of its own) reach the runner only.

The engine (--report-signals, signals.bpf.h), or bpftrace (`bpftrace_clause`), says who sent
each SIGINT, SIGTERM and SIGHUP to the runner or the command, and when (CLOCK_MONOTONIC, as
time.monotonic), as `signal` records the SignalLog keeps. The runner's own copy
names the sender; a copy from that sender to the command up to a second before it (the same
request: Stop.REPEAT) or up to AFTER seconds after it means the command has it. The decision
waits for the engine's word on the runner's copy at most OWN_COPY_WAIT seconds; without it the
request is passed on (the command must never miss a stop request only the runner got). A request
the command itself sent the runner (`kill $PPID`) is not sent back to it, as sudo does not."""
import threading

AFTER = 0.05  # how late the sender's copy to the command may come: a loop over a unit's processes
OWN_COPY_WAIT = 0.25  # the engine's record of the runner's own copy: normally within a few ms
SAME_REQUEST = 1.0  # copies within a second are one request (modes.Stop.REPEAT)
KEPT = 256  # records kept: a few per request


# A row of bpftrace_clause: signal, to, sender, time_ns.
BPFTRACE_LINE = "dtrace:::SIGNAL %d %d %d %llu\\n"
BPFTRACE_PREFIX = BPFTRACE_LINE.split("%")[0]


def commanded(request):
    """Whether the run traces a command the runner starts, which it passes stop requests on to
    (modes.Stop): the tracer then says who sent each stop signal."""
    return bool(request.command) and request.pid is None and not request.all


def bpftrace_clause(runner):
    """The clause a bpftrace program of a command ($1) gets: a row for each stop signal made for
    the command or for the runner (PID `runner`), with its sender (the task it was made in)."""
    return ("\ntracepoint:signal:signal_generate\n"
            "/(args->sig == 1 || args->sig == 2 || args->sig == 15)"
            f" && (args->pid == $1 || args->pid == {int(runner)})/\n"
            "{\n"
            f'\tprintf("{BPFTRACE_LINE}", args->sig, args->pid, pid, nsecs);\n'
            "}\n")


class SignalLog:
    """The engine's `signal` lines, as its reader thread gets them (bounded)."""

    def __init__(self):
        self._lock = threading.Lock()  # taken by the reader and the main loop, never a handler
        self._records = []

    def add(self, line):
        """An engine's `signal` line (a dict)."""
        self._keep((int(line["time_ns"]) / 1e9, int(line["signal"]), int(line["pid"]),
                    int(line["sender"])))

    def add_row(self, text):
        """A bpftrace row of BPFTRACE_LINE."""
        try:
            number, to, sender, time_ns = (int(word) for word in text.split()[1:5])
        except ValueError:
            return
        self._keep((time_ns / 1e9, number, to, sender))

    def _keep(self, record):
        with self._lock:
            self._records.append(record)
            del self._records[:-KEPT]

    def records(self):
        """(time, signal, to, sender) of each stop signal seen so far."""
        with self._lock:
            return list(self._records)


class Relay:
    """One pending request at a time: `requested` by the signal handler (no lock, no I/O), then
    `decide` from the main loop."""

    def __init__(self, log, runner, command):
        self.log, self.runner, self.command = log, runner, command
        self.pending = None  # (signal number, time.monotonic() when the handler ran)

    def requested(self, number, at):
        self.pending = (number, at)

    def decide(self, now, final=False):
        """True: pass the pending request on now; False: the command got it itself (or none is
        pending); None: not known yet, ask again within a few ms. `final`: the loop is ending,
        so an undecided request is passed on."""
        if self.pending is None:
            return False
        number, at = self.pending
        records = self.log.records()
        own = [r for r in records if r[1] == number and r[2] == self.runner
               and at - SAME_REQUEST <= r[0] <= at]
        if not own:
            if final or now - at >= OWN_COPY_WAIT:
                return self._done(True)  # the engine did not see it: passed on all the same
            return None
        sent_at, sender = own[-1][0], own[-1][3]
        if sender == self.command:
            return self._done(False)  # the command's own request to the runner: not sent back
        if any(r[1] == number and r[2] == self.command and r[3] == sender
               and sent_at - SAME_REQUEST <= r[0] <= sent_at + AFTER for r in records):
            return self._done(False)
        if final or now >= max(sent_at, at) + AFTER:
            return self._done(True)
        return None

    def _done(self, relay):
        self.pending = None
        return relay
