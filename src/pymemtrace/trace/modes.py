# SPDX-License-Identifier: MIT
"""The two ways of tracing: a command the runner starts (forked, held on a pipe until bpftrace
runs, dropped to its user, released) and a running process (-p); how either stops (signals),
and what their exit status says."""
import contextlib
import ctypes
import os
import select
import shutil
import signal
import sys
import time

from . import processes, procfs, replay, reports, scripts, stacks, stop_relay, unseen
from .errors import LOSS, Failure
from .missed_libraries import MissedLibraries
from .names import shown
from .session import BpftraceSession, SessionError
from .snapshots import MapWatch, Snapshots
from .unseen_frees import UnseenFrees, say_unseen_frees

SETID_PREFIX = scripts.SETID_LINE.split("%")[0]


class Stop:
    """A stop request: SIGINT, SIGTERM or SIGHUP. With -p and --all tracing ends and the report
    is printed; the target is never signalled. In command mode the signal is passed on to the
    command, as sudo and tini do, and tracing goes on until it exits, so its shutdown is in the
    report (SIGINT from the terminal reaches the command itself, in our process group, and is
    not passed on a second time; off a terminal the command has its own process group, so a
    signal to ours reaches it only as the request we pass on).

    Copies of a request within REPEAT seconds are one request: coreutils timeout, systemd and
    supervisors signal the runner and its process group at once. A request after that ends the
    runner at once, without a report (the tracer dies with it). The handler takes no lock: one
    that did (threading.Event.set) could run while the main thread held that same lock inside
    Event.wait, and deadlock the runner (seen: a runner stuck for good after SIGTERM).

    When the tracer reports who signalled whom (`check_with`), a request is passed on only if
    the command did not get it itself (stop_relay: systemd's KillMode=control-group signals
    both), decided by the main loop within tens of milliseconds (`pass_on`)."""

    REPEAT = stop_relay.SAME_REQUEST

    def __init__(self):
        self.signal, self.at, self.command, self.relay = None, None, None, None
        # Written by the handler when a decision is pending: wakes the main loop's select.
        self.wake, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, self._set)

    def pass_to(self, pidfd):
        """Command mode: stop requests go to the command, by its pidfd (a PID could name another
        process once the command is reaped; its pidfd cannot)."""
        self.command = pidfd

    def check_with(self, log, command_pid):
        """Command mode with the tracer's stop_relay.SignalLog: requests the command got itself
        are not passed on again. Until this is called, every request is passed on at once."""
        self.relay = stop_relay.Relay(log, os.getpid(), command_pid)

    def pass_on(self, final=False):
        """Passes a pending request on to the command once stop_relay says so; `final`: the
        runner stops waiting for the command, so an undecided request goes now. Returns whether
        a decision is still pending."""
        if self.relay is None:
            return False
        try:
            os.read(self.wake, 64)  # the handler's wake-ups: seen
        except BlockingIOError:
            pass
        decided = self.relay.decide(time.monotonic(), final)
        if decided:
            self._send(self.signal)
        return decided is None

    def _set(self, number, _frame):
        if self.command is not None and number == signal.SIGINT and _from_terminal():
            return  # Ctrl-C: the kernel gave it to the command too, which decides
        now = time.monotonic()
        if self.signal is not None:
            if now - self.at < self.REPEAT:
                return  # the same request again
            os.write(2, b"pymemtrace-trace: stopped at once, no report\n")
            os._exit(128 + number)  # the tracer dies with us (PR_SET_PDEATHSIG)
        self.signal, self.at = number, now
        if self.command is None:
            return
        if self.relay is None:
            self._send(number)
            return
        self.relay.requested(number, now)  # the main loop decides (pass_on)
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # already awake

    def _send(self, number):
        try:
            signal.pidfd_send_signal(self.command, number)
        except OSError:
            pass  # it has just ended: the runner reports that

    def wait(self, seconds, ended=None):
        """Sleeps up to `seconds`, less once a stop signal came or the process of the pidfd
        `ended` exited (it turns readable then)."""
        deadline = time.monotonic() + seconds
        while self.signal is None and time.monotonic() < deadline:
            step = min(0.05, max(0.0, deadline - time.monotonic()))
            if ended is None:
                time.sleep(step)
            elif select.select([ended], [], [], step)[0]:
                return

    def __bool__(self):
        return self.signal is not None


def _from_terminal():
    """Whether our process group is the foreground one of our terminal: a SIGINT then came from
    Ctrl-C, which the kernel delivered to the command too."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


class Trace:
    """One run of bpftrace for the runner: flow printfs shown as they come or kept for replay,
    maps kept for the report."""

    def __init__(self, program, pid, plan, request, libraries=()):
        self.plan, self.request, self.program = plan, request, program
        self.target = pid  # the PID whose recording a leaks report stops (the runner's: --all)
        # Instrumented libraries the target maps that the program does not name: a loss.
        self.missed = MissedLibraries(libraries)
        # What the py* reports cannot see in those libraries, said with every report form.
        self.not_seen = (tuple(unseen.not_seen(libraries))
                         if plan.script.startswith("pymemtrace_") and libraries else ())
        self.write_error = None
        self.rows = 0  # event rows received
        self.shortener = reports.Shortener(not request.full_file_path, request.strlen)
        # What a report needs of the printfs, kept as they come in tables bounded by
        # --max-entries (never the printfs themselves): a flow replayed into summary and
        # leaks, or the names of --depth's stacks.
        self.replay = (replay.FlowReplay(request.max_entries, plan.flow_domain, self.shortener)
                       if plan.kind == "flowlog" and request.report != "flow" else None)
        native_caller = request.native
        self.stacks = (stacks.Stacks(request.max_entries, self.shortener,
                                     list(libraries) if native_caller else None)
                       if request.depth > 1 or native_caller else None)
        self.setid = {}  # {pid: what it exec'd} (scripts.SETID_LINE): not traced from then on
        # A command's stop signals, as the program's signal clause reports them (modes.Stop).
        self.signal_log = None
        if stop_relay.commanded(request):
            self.signal_log = stop_relay.SignalLog()
            program += stop_relay.bpftrace_clause(os.getpid())
        self.unseen = UnseenFrees(request.max_entries) if request.report == "flow" else None
        # Rows reach a terminal as they come; a file or pipe gets them a buffer at a time (a
        # flush per row would cost more than the rest of a row's handling).
        self.show_at_once = request.out.isatty()
        env = dict(os.environ, BPFTRACE_STRLEN=str(request.strlen),
                   BPFTRACE_MAP_KEYS_MAX=str(request.max_entries))
        env.setdefault("BPFTRACE_PERF_RB_PAGES", str(request.perf_pages))
        # Every printf is a row framed by the session's secret tag. A flow's rows come as
        # text, which bpftrace writes several times faster than JSON; the other reports need
        # its maps, which only JSON gives whole (--libc's histograms have names for keys).
        self.session = BpftraceSession(program, positional=[pid, *plan.words], env=env,
                                       ready_marker="dtrace:::BEGIN", on_printf=self._printf,
                                       framed_rows=True if plan.kind == "flow" else "json")
        # --all: {pid: command line}, read when a process makes its first event (PROCESS_LINE).
        self.commands = {} if request.all else None
        # --interval: the snapshot announced by SNAPSHOT_LINE, filled by the maps printed next.
        self.snapshots, self.pending = None, None
        if request.interval:
            self.snapshots = Snapshots(request.out, request.format, request.top,
                                       request.per_process, self.shortener, request.max_entries)
            self.session.maps = MapWatch(self._maps)

    def _maps(self, printed):
        if self.pending is not None:
            self.pending.update(printed)
            if "@live_refused" in printed:
                self._snapshot()

    def _snapshot(self):
        pending, self.pending = self.pending, None
        if pending is not None:
            self.snapshots.add(pending.get("@live"), pending.get("@live_refused", 0))

    def _printf(self, text):
        if self.signal_log is not None and text.startswith(stop_relay.BPFTRACE_PREFIX):
            self.signal_log.add_row(text)
            return
        if self.snapshots is not None:
            self._snapshot()  # @live_refused is not printed until set: a printf ends a snapshot
            if text == "dtrace:::SNAPSHOT\n":
                self.pending = {}
                return
            if text == "\ndtrace:::END\n":
                # The report's @live is what END prints next, and bpftrace prints nothing for
                # an empty map: the last snapshot's must not stand for it.
                dict.pop(self.session.maps, "@live", None)
        if self.commands is not None and text.startswith("dtrace:::PROCESS "):
            pid = int(text.split()[1])
            if len(self.commands) >= self.request.max_entries:  # bounded over a long run
                self.commands.pop(next(iter(self.commands)))
            self.commands[pid] = processes.command_line(pid)
            return
        if text.startswith(SETID_PREFIX):
            self._setid(text)
            return
        if self.stacks is not None and self.stacks.add(text):
            return
        if self.replay is not None:
            self.rows += self.replay.add(text)
            return
        row = self.shortener.event_row(text)
        if row is not None:
            self.rows += 1
            if self.unseen is not None and not self._shown(text):
                return
        if self.request.report == "flow" and self.write_error is None:
            try:
                self.request.out.write(text if row is None else row)
                if self.show_at_once:
                    self.request.out.flush()
            except OSError as error:
                self.write_error = error  # reported by finish(): the flow is incomplete

    def _shown(self, row):
        """Whether an event row is shown: not a free of a block the flow never showed
        allocated (unseen_frees)."""
        event = replay.parse_row(row[:-1] if row.endswith("\n") else row)
        if not event:
            return True
        if event["kind"] == "alloc":
            self.unseen.allocated(event["pid"], event["ret"])
        elif event["kind"] == "realloc":
            self.unseen.moved(event["pid"], event["old"], event["ret"], event["size"])
        elif event["kind"] == "free":
            return self.unseen.shows_free(event["pid"], event["ptr"])
        return True

    def _setid(self, text):
        """A traced process exec'd a set-user-ID or set-group-ID program: the script stopped
        tracing it (scripts.SETID_LINE); said when it happens and in the report."""
        try:
            pid, user = (int(word) for word in text.split()[1:3])
        except ValueError:
            return
        if len(self.setid) < self.request.max_entries:
            self.setid[pid] = processes.SETID_WHAT[bool(user)]
        said = (f"PID {pid} exec'd a {processes.SETID_WHAT[bool(user)]} program: not traced "
                "from then on")
        print(f"pymemtrace-trace: {said}", file=sys.stderr)
        if self.request.report == "flow" and self.write_error is None:
            try:
                self.request.out.write(said + "\n")  # where it happens in the flow
                if self.show_at_once:
                    self.request.out.flush()
            except OSError as error:
                self.write_error = error

    def start(self):
        try:
            self.session.start()
        except SessionError as error:
            raise Failure("bpftrace could not attach:\n  " + str(error).replace("\n", "\n  "),
                          "see the bpftrace error above; run with --keep-program to inspect "
                          "the program") from None

    def ended_early(self):
        """Whether bpftrace ended on its own while the target still ran (checked then)."""
        return not self.session.alive()

    def alive(self):
        return self.session.alive()

    def wait_armed(self, pid, libraries):
        """Whether process `pid` sees every semaphore the program attaches set (bpftrace 0.17 runs
        BEGIN before it arms USDT probes)."""
        return procfs.wait_armed(pid, self.program, libraries)

    def pause(self):
        """Before the maps are read at a stop: the leaks script records no more allocations of
        the target (its frees still come in)."""
        if self.plan.kind == "leaks" and self.session.alive():
            stop_recording(self.target)
            time.sleep(0.2)  # the frees in flight

    def drain(self):
        self.session.drain()

    def settle(self):
        """After the command ended: bpftrace's perf buffers may still hold its last frees."""
        time.sleep(0.2)

    def stop(self):
        self.session.stop()

    def finish(self, early=False):
        """Detaches, then writes the report; returns what it lost (reports.losses, and all that
        came after bpftrace ended `early`), which the report and standard error both state."""
        self.session.stop()
        session = self.session
        if self.snapshots is not None:
            self._snapshot()
        for line in session.errors:
            print(f"bpftrace: {shown(line)}", file=sys.stderr)
        lost = reports.losses(self.plan, session.maps, session.lost, self.request.max_entries,
                              self.rows)
        if self.replay is not None:
            lost += self.replay.losses()
        if self.stacks is not None:
            lost += self.stacks.losses(session.maps)
        if session.unframed:
            lost.append(f"{session.unframed} printfs of bpftrace were not rows of the program")
        if self.plan.script.startswith("pymemtrace_"):  # the plans that attach to libraries
            lost += self.missed.losses()
        if early:
            lost.insert(0, f"bpftrace ended on its own (status {session.proc.returncode}) while "
                           "the target ran: nothing after that was traced")

        def write(view):
            if self.write_error:
                raise self.write_error  # the flow could not be written: said as the report's
            collected = self.replay if self.replay is not None else self.stacks
            reports.report(self.request.out, self.plan, self.request.report, self.request.json,
                           dict(session.maps), collected, self.shortener, view)
            if self.unseen is not None:
                say_unseen_frees(self.unseen, self.request.out)
        return write_report(self.request, lost, write, self.commands, self.snapshots, self.setid,
                            self.not_seen)


def write_report(request, lost, write, commands=None, snapshots=None, setid=None, not_seen=()):
    """Writes a report through `write(view)`, then what it lost, in the report and on standard
    error; returns `lost`. Whichever engine traced, the report is written the same way."""
    try:
        if snapshots is not None and snapshots.number and not request.json:
            print(file=request.out)  # the report apart from the last snapshot
        view = reports.View(request.format, request.top, request.histograms, tuple(lost),
                            request.scripts, request.per_process, commands,
                            snapshots is not None, setid or {}, not_seen)
        write(view)
        if lost and request.format == "text" and request.report != "flow":
            print("\nINCOMPLETE: " + "; ".join(lost), file=request.out)
        if snapshots is not None:
            snapshots.write_peak()
        request.out.flush()
    except OSError as error:
        where = f"-o {shown(request.output)}" if request.output else "standard output"
        raise Failure(f"the report could not be written to {where}: {error.strerror}",
                      "give -o a writable file") from None
    for what in lost:
        print(f"pymemtrace-trace: {'warning' if request.allow_loss else 'error'}: the "
              f"report is incomplete: {what}", file=sys.stderr)
    return lost


def exit_status(lost, request, status):
    """The run's exit status: LOSS when the report lost data and the user did not allow it."""
    if lost and not request.allow_loss:
        print(f"pymemtrace-trace: exit {LOSS}: give --allow-loss to accept an incomplete report",
              file=sys.stderr)
        return LOSS
    return status


def trace_pid(request, run, libraries):
    """-p: `run` (a Trace, or an engine_trace.EngineTrace) on a running process."""
    stop = Stop()
    try:
        run.start()
        if not run.wait_armed(request.pid, libraries):
            print(f"pymemtrace-trace: warning: the probes' semaphores of PID {request.pid} are not "
                  "all set after 30 s; events may be missing", file=sys.stderr)
        print(f"pymemtrace-trace: tracing PID {request.pid}; Ctrl-C to stop", file=sys.stderr)
        with _pidfd(request.pid) as ended:  # its end is seen at once, not at the next poll
            while not stop and run.alive() and procfs.process_alive(request.pid):
                run.missed.check(request.pid)
                stop.wait(0.2, ended)
        run.missed.check(request.pid)
        early = not stop and run.ended_early() and procfs.process_alive(request.pid)
        if run.plan.kind in ("flow", "flowlog") and not stop:
            run.drain()
        run.pause()
    finally:
        run.stop()
    return exit_status(run.finish(early), request, 0)


@contextlib.contextmanager
def _pidfd(pid):
    """A pidfd of `pid`, or None if it has already gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def trace_all(request, program, plan, libraries=(), run=None):
    """--all: every process that maps the libraries, already running or started later, until
    Ctrl-C or SIGTERM, traced by `run` (an engine_trace.EngineTrace) or by bpftrace running
    `program`. $1 is the runner's own PID: only the tgkill that stops recording names it."""
    stop = Stop()
    run = run or Trace(program, os.getpid(), plan, request, libraries)
    try:
        run.start()
        if isinstance(run, Trace):
            time.sleep(0.1)  # bpftrace 0.17 arms USDT probes 5-16 ms after BEGIN
        print("pymemtrace-trace: tracing every process that maps the libraries; Ctrl-C to stop",
              file=sys.stderr)
        while not stop and run.alive():
            stop.wait(0.2)
        early = not stop and run.ended_early()
        run.pause()
    finally:
        run.stop()
    return exit_status(run.finish(early), request, 0)


def stop_recording(pid):
    """Tells the leaks script to record no more allocations of process `pid` (scripts.STOP_TID):
    a tgkill, with signal 0, of a thread that cannot exist, which the process never sees."""
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall(ctypes.c_long(234), ctypes.c_long(pid), ctypes.c_long(scripts.STOP_TID),
            ctypes.c_long(0))  # SYS_tgkill on x86-64


def trace_command(request, make_run, env, user):
    """A command the runner starts, traced by `make_run(pid)` (a Trace, or an
    engine_trace.EngineTrace)."""
    # The child waits on a pipe until bpftrace has attached, then execs: nothing is missed. If
    # the runner dies first, the pipe closes and the child exits: it never runs untraced.
    executable = shutil.which(request.command[0], path=env.get("PATH")) or request.command[0]
    go_read, go_write = os.pipe()
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    stop = Stop()
    # Unless we are the terminal's foreground job (whose Ctrl-C the kernel gives the command
    # itself), the command gets a process group of its own: a signal to ours (coreutils timeout,
    # a supervisor's group kill) then reaches it once, as the stop request we pass on, not twice.
    own_group = not _from_terminal()
    child = os.fork()
    if child == 0:
        try:
            os.close(go_write)
            os.close(err_read)
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(number, signal.SIG_DFL)
            if own_group:
                os.setpgid(0, 0)
            if user:
                user.become()
            if not os.read(go_read, 1):
                os._exit(125)  # the runner went away before releasing us
            os.close(go_read)
            os.execve(executable, request.command, env)
        except OSError as error:
            os.write(err_write, f"{error.errno}:{error.strerror}".encode())
        finally:
            os._exit(127)
    os.close(go_read)
    os.close(err_write)
    if own_group:
        try:
            os.setpgid(child, child)  # as the child does: whichever runs first
        except OSError:
            pass  # it has exec'd or ended: its own call did it
    command = os.pidfd_open(child)
    stop.pass_to(command)
    run = make_run(child)
    if run.signal_log is not None:  # the tracer's word on who signalled whom
        stop.check_with(run.signal_log, child)
    status, early = None, False
    try:
        try:
            run.start()
        except Failure:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            raise
        try:
            os.write(go_write, b"g")
        except BrokenPipeError:  # the held command ended (was killed) before it was released
            _, status = os.waitpid(child, 0)
            raise Failure(f"the command (PID {child}) ended before tracing began ("
                          + (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                             else f"exit status {os.WEXITSTATUS(status)}") + "): nothing traced",
                          "run it again, and leave it running until the report") from None
        finally:
            os.close(go_write)
        started = time.monotonic()
        failure = os.read(err_read, 4096)
        os.close(err_read)
        # Until the command exits: a stop request was passed on to it, and its shutdown is
        # traced too.
        while True:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                break
            status = None
            if run.ended_early():
                early = True  # its errors and the loss are reported below
                break
            run.missed.check(child)
            deciding = stop.pass_on()  # a stop request the command may have got itself
            # Often in the first seconds, when a short command imports its extensions and may
            # end (its mappings go with it), or while a stop request is being decided; at once
            # when it ends or a request comes.
            select.select([command, stop.wake], [], [],
                          0.01 if deciding or time.monotonic() - started < 2 else 0.1)
        stop.pass_on(final=True)  # the tracer ended early: the command must get it all the same
        if run.plan.kind in ("flow", "flowlog"):
            run.drain()
        else:
            run.settle()
    finally:
        run.stop()
    if failure:
        message = failure.decode(errors="replace").split(":", 1)[-1]
        raise Failure(f"the command failed to start: {shown(request.command[0])}: {message}",
                      "check the command, its permissions and its interpreter line")
    lost = run.finish(early)
    if status is None:
        _, status = os.waitpid(child, 0)  # the tracer ended early: let the command finish
    if os.WIFSIGNALED(status):
        return exit_status(lost, request, 128 + os.WTERMSIG(status))
    return exit_status(lost, request, os.WEXITSTATUS(status))
