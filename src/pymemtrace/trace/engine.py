# SPDX-License-Identifier: MIT
"""pymemtrace-engine (docs/engine.md) run for the runner: started on PIDs and libraries, it yields
what the engine says, as dicts, in order: `ready` once every probe is attached (release a held
command then), `attached` for each forked process, and last the `report`.

    with EngineRun(pids=[pid], libraries=[lib]) as run:
        run.ready()               # the ready line
        ...                       # the command runs
        run.stop()                # or let every traced process end
        report = run.report()     # summary, leaks, counters, loss, processes

Standard library only. The engine's errors (exit 2, one line) become errors.Failure."""
import atexit
import json
import os
import signal
import subprocess

from .errors import Failure

ENGINE = "pymemtrace-engine"
DETACH_SECONDS = 10  # the engine's detach after its report: 250-350 ms measured


def find_engine():
    """The engine root may run: the one installed in the bindir of the prefix this package was
    installed into (<prefix>/lib/python3/dist-packages/pymemtrace/trace -> <prefix>/bin), else,
    in a source tree, the build's (build/src/engine/). None if neither is there. Failure if the
    one found could be replaced by a user other than root: root runs it."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "..", "..", "..", "..", "..", "bin", ENGINE),
                      os.path.join(here, "..", "..", "..", "build", "src", "engine", ENGINE)):
        candidate = os.path.realpath(candidate)
        if os.access(candidate, os.X_OK):
            only_root_can_replace(candidate)
            return candidate
    return None


def only_root_can_replace(path):
    """Failure unless root owns the file at `path` (real path) and every directory above it, and
    no one else may write any of them (a directory only under the sticky bit)."""
    parts = path
    while True:
        info = os.stat(parts)
        writable = info.st_mode & 0o022 and not (os.path.isdir(parts) and info.st_mode & 0o1000)
        if info.st_uid != 0 or writable:
            raise Failure(f"{ENGINE} at {parts!r} could be replaced by a user other than root "
                          f"(owner uid {info.st_uid}, mode {info.st_mode & 0o7777:o})",
                          "build or install pymemtrace as root, in directories only root writes")
        if parts == "/":
            return
        parts = os.path.dirname(parts)


class EngineRun:
    """One run of the engine; a context manager that never leaves it running."""

    def __init__(self, pids, libraries, engine=None, allow_loss=False, max_live=None,
                 setid_stop=False, interval_ms=None, every_process=False, depth=1,
                 max_locations=None, native_caller=False, flow_bytes=None, batch=False,
                 follow=True, histograms=False, targets_later=False, python_frames=None,
                 allocator=None, libc=None, by_path=False, python_call_stack=False,
                 report_signals=False, stops_from_parent=False):
        engine = engine or find_engine()
        if engine is None:
            raise Failure(f"{ENGINE} was not found beside the runner",
                          "build it (meson compile -C build; tools/install-deps.sh installs "
                          "libbpf-dev, libelf-dev, bpftool and clang) or install pymemtrace")
        argv = [engine]
        # targets_later: started before its targets are known, it loads its programs while the
        # runner finds them, then takes them on its stdin (name_targets).
        self.targets_later = targets_later
        if targets_later:
            argv += ["--targets-fd", "0"]
        for pid in pids:
            argv += ["--pid", str(int(pid))]
        for library in libraries:
            argv += ["--lib", os.fspath(library)]
        if allow_loss:
            argv.append("--allow-loss")
        if max_live is not None:
            argv += ["--max-live", str(int(max_live))]
        if setid_stop:  # a process that execs a set-ID program is not traced from then on
            argv.append("--setid-stop")
        if interval_ms is not None:  # a snapshot line every interval
            argv += ["--interval-ms", str(int(interval_ms))]
        if every_process:  # every process that maps the libraries (pids: none)
            argv.append("--all")
        if depth > 1:  # locations are Python stacks of `depth` frames
            argv += ["--depth", str(int(depth))]
        if max_locations is not None:  # rows of the summary and snapshots, names, stacks
            argv += ["--max-locations", str(int(max_locations))]
        if native_caller:  # rows keyed by the C caller too (native.py names it)
            argv.append("--native")
        # The flow (engine_flow.py): every event, on a pipe of its own; `flow` is its read end.
        self.flow_bytes, self.flow = flow_bytes, None
        if batch:  # the py* events read in batches from the targets' rings (issue 23)
            argv.append("--batch")
        if not follow:  # what the traced processes fork is not traced
            argv.append("--no-follow")
        if histograms:  # the summary by size bucket too (the text summary's histograms)
            argv.append("--histograms")
        if python_frames is not None:  # the plain probes, located by this Python's own probes
            argv += ["--python-frames", os.fspath(python_frames)]
        if allocator is not None:  # (prefix, domain): that Python's own allocator functions
            argv += ["--allocator", allocator[0], "--allocator-domain", str(int(allocator[1]))]
        if libc is not None:  # --allocator libc: the C library the traced processes map
            argv += ["--allocator-library", os.fspath(libc)]
        if by_path:  # the libraries in every process that maps them, traced processes' kept
            argv.append("--by-path")
        if python_call_stack:  # CPython's calls and returns in the flow too
            argv.append("--python-call-stack")
        if report_signals:  # a `signal` line for each stop signal to the command or the runner
            argv.append("--report-signals")
        if stops_from_parent:  # a unit's stop reaching every process leaves it to the runner
            argv.append("--stops-from-parent")
        self.argv = argv
        self.proc = None
        self.returncode = None

    def __enter__(self):
        # stderr is the engine's one-line errors: read whole once it ended (it writes nothing else).
        # Its own session, as bpftrace's: Ctrl-C at the terminal reaches the command, and the
        # runner stops the engine. It dies with the runner (SIGKILL included), which detaches
        # every probe.
        # It dies with the runner (--die-with: PR_SET_PDEATHSIG, set by the engine itself), so
        # that the spawn runs no Python in the child and needs no ctypes (start-up).
        argv, kept = [*self.argv, "--die-with", str(os.getpid())], ()
        if self.flow_bytes is not None:
            self.flow, write_end = os.pipe2(os.O_CLOEXEC)
            kept = (write_end,)
            argv = [*argv, "--flow-fd", str(write_end), "--flow-buffer", str(int(self.flow_bytes))]
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.PIPE if self.targets_later
                                         else subprocess.DEVNULL, start_new_session=True,
                                         pass_fds=kept)
        finally:
            for fd in kept:  # the engine's now: the flow ends when the engine closes it
                os.close(fd)
        return self

    def name_targets(self, pids, libraries):
        """targets_later: the processes and libraries to trace, once known (the engine is
        loading meanwhile). An `end` line closes them: a command forked since holds the pipe
        until it execs."""
        lines = [f"pid {int(pid)}\n" for pid in pids]
        for library in libraries:
            path = os.fspath(library)
            if "\n" in path:  # never from the runner: its libraries are /proc/self/fd aliases
                raise ValueError(f"a library path with a newline: {path!r}")
            lines.append(f"lib {path}\n")
        try:
            self.proc.stdin.write("".join(lines + ["end\n"]).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the engine failed: its error line is read with its ready line

    def end_later(self):
        """The wait for the engine's detach, at the runner's exit: after the report was written,
        and a report file linked in (output.py), which the user need not wait for."""
        atexit.register(self.__exit__, None, None, None)

    def __exit__(self, failing, *_exc):
        if self.proc.stdout.closed:
            return  # ended already (end_later, then an exit)
        # After its report the engine detaches (kernel grace periods, 250-350 ms here): waited
        # for, so that the target's probes are gone when the runner ends. On a failure, or an
        # engine that does not end, a kill detaches them just as well.
        if failing is not None and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=DETACH_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self.proc.stdout.close()
        self.proc.stderr.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.flow is not None:
            os.close(self.flow)
            self.flow = None

    def lines(self):
        """The engine's JSON lines, as dicts, until its stdout ends; then Failure if it failed."""
        for line in self.proc.stdout:
            yield json.loads(line)  # its own output: names inside are JSON strings, data
        self._ended()

    def _ended(self):
        self.returncode = self.proc.wait()
        if self.returncode not in (0, 3):
            message = self.proc.stderr.read().decode("utf-8", "replace").strip()
            prefix = f"{ENGINE}: "
            message = message[len(prefix):] if message.startswith(prefix) else message
            # The engine's line says what is wrong and how to fix it, after the last colon.
            what, _, fix = message.rpartition(": ")
            raise Failure(what or message or f"{ENGINE} ended with status {self.returncode}",
                          fix if what else "run it with --verbose for libbpf's messages")

    def next_line(self, event):
        """The next line of `event`; the others before it are skipped. Failure if the engine
        ended first."""
        for line in self.lines():
            if line.get("event") == event:
                return line
        raise Failure(f"{ENGINE} ended before its {event} line",
                      "run it with --verbose for libbpf's messages")

    def ready(self):
        return self.next_line("ready")

    def stop(self):
        """One graceful stop: the report follows."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def report(self):
        """The report (after a stop, or once every traced process ended); its `complete` is
        False, and the engine's status 3, when it states a loss. Returned as soon as it is read:
        the engine detaches after writing it, and leaving the `with` block waits for that."""
        return self.next_line("report")
