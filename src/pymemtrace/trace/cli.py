# SPDX-License-Identifier: MIT
"""pymemtrace-trace: where in your Python code your extension allocates, how much, and what it
never frees, from the pymemtrace USDT probes, with bpftrace.

    pymemtrace-trace [OPTIONS] -- COMMAND [ARG...]   trace COMMAND from its first allocation
    pymemtrace-trace [OPTIONS] -p PID                 attach to a running process; Ctrl-C detaches

The command line, and the two ways of tracing (a command the runner starts, a running process).
"""
import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import elf, procfs, programs, reports, scripts, targets
from .aliases import FileAliases
from .errors import Failure
from .names import shown
from .output import ReportFile
from .session import BpftraceSession, SessionError

LOSS = 3  # the exit status of a run whose report lost data (unless --allow-loss)


def parse_args(argv):
    command = []
    if "--" in argv:
        index = argv.index("--")
        argv, command = argv[:index], argv[index + 1:]
    parser = argparse.ArgumentParser(
        prog="pymemtrace-trace",
        usage="%(prog)s [OPTIONS] -- COMMAND [ARG...]\n       %(prog)s [OPTIONS] -p PID",
        description="Trace the pymemtrace probes of a Python process with bpftrace and report "
                    "allocations by Python file, line and function.")
    parser.add_argument("-p", "--pid", type=int, help="attach to this running process")
    parser.add_argument("--report", choices=("flow", "summary", "leaks"), default="summary",
                        help="flow: one line per event; summary (default): totals and size "
                             "histograms; leaks: what is still allocated at the end")
    parser.add_argument("--json", action="store_true", help="summary and leaks as JSON")
    parser.add_argument("--full-file-path", "--full-path", action="store_true",
                        dest="full_file_path",
                        help="whole Python file paths (the scripts' full_file_path, the D "
                             "scripts' -D FULL_FILE_PATH)")
    parser.add_argument("--python-call-stack", "--call-stack", action="store_true",
                        dest="python_call_stack",
                        help="also CALL/RTN lines of Python functions (the scripts' "
                             "python_call_stack, -D PYTHON_CALL_STACK); needs CPython's "
                             "probes")
    parser.add_argument("--frames", choices=("probes", "python-probes"), default="probes",
                        help="where the Python location comes from: probes (default: the py* "
                             "probes) or python-probes (CPython's function__entry/return/line)")
    parser.add_argument("--libc", action="store_true",
                        help="trace libc malloc/calloc/realloc/free (py_flow_malloc_free.bt)")
    parser.add_argument("--object-allocator", action="store_true",
                        help="trace Python's public PyObject_*/PyMem_Raw* functions "
                             "(py_object_*_WITH_PYMALLOC.bt)")
    parser.add_argument("--lib", action="append", default=[], metavar="PATH",
                        help="a library with pymemtrace probes (repeatable)")
    parser.add_argument("--strlen", type=int, default=128,
                        help="bytes of file and function names read (BPFTRACE_STRLEN); default "
                             "128, the most two names may take in one event on the 512-byte BPF "
                             "stack. A longer path is shown cut, ending in '...'")
    parser.add_argument("--max-entries", type=int, default=65536,
                        help="entries per bpftrace map (live blocks, locations); default 65536")
    parser.add_argument("--perf-pages", type=int, default=1024,
                        help="perf buffer pages per CPU for flow lines (BPFTRACE_PERF_RB_PAGES); "
                             "default 1024")
    parser.add_argument("--allow-loss", action="store_true",
                        help=f"accept an incomplete report (a full map, lost flow events): it "
                             f"still says what it lost, but the exit status is not {LOSS}")
    parser.add_argument("--keep-program", action="store_true",
                        help="save a copy of the generated bpftrace program and say where")
    parser.add_argument("--user", metavar="USER",
                        help="run COMMAND as USER (name or number); default: the user who ran "
                             "sudo (SUDO_UID), else the runner's own user. Tracing stays root")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the report (or the flow) to FILE, apart from the traced "
                             "command's own output. FILE is replaced only by a finished report "
                             "and never written through a symbolic link")
    args = parser.parse_args(argv)
    args.command = command
    if (args.pid is not None) == bool(command):
        parser.error("give either -p PID or -- COMMAND [ARG...]")
    # The most that fits the 512-byte BPF stack with two names in one event (measured, bpftrace
    # 0.17): the scripts on CPython's own probes keep more on the stack.
    most = 136 if (args.frames == "python-probes" or args.libc or args.object_allocator) else 152
    if not 1 <= args.strlen <= most:
        parser.error(f"--strlen {args.strlen}: give 1 to {most} (more does not fit the 512-byte "
                     "BPF stack with these probes)")
    if args.max_entries < 1:
        parser.error(f"--max-entries {args.max_entries}: give a positive number of map entries")
    if args.perf_pages < 1 or args.perf_pages & (args.perf_pages - 1):
        parser.error(f"--perf-pages {args.perf_pages}: give a power of two")
    if args.pid is not None and args.pid <= 0:
        parser.error(f"-p {args.pid}: a process ID is a positive number")
    if args.user is not None and args.pid is not None:
        parser.error("--user applies to a COMMAND the runner starts, not to -p PID")
    if args.libc and args.object_allocator:
        parser.error("--libc and --object-allocator are separate views: choose one")
    if args.json and args.report == "flow":
        parser.error("--json applies to --report summary and leaks")
    return args


class Stop:
    """Why the runner stops tracing: SIGTERM or SIGHUP in any mode, Ctrl-C (SIGINT) with -p. The
    target is never signalled: tracing ends, the report is printed, the target carries on.

    A second signal ends the runner at once, without a report. The handler takes no lock: one
    that did (threading.Event.set) could run while the main thread held that same lock inside
    Event.wait, and deadlock the runner (seen: a runner stuck for good after SIGTERM)."""

    def __init__(self, pid_mode):
        self.signal = None
        for number in (signal.SIGTERM, signal.SIGHUP) + ((signal.SIGINT,) if pid_mode else ()):
            signal.signal(number, self._set)
        if not pid_mode:
            # Ctrl-C at the terminal reaches the command (our process group) as usual.
            signal.signal(signal.SIGINT, lambda *_: None)

    def _set(self, number, _frame):
        if self.signal is not None:  # a second one: stop at once, with no report
            os.write(2, b"pymemtrace-trace: stopped at once, no report\n")
            os._exit(128 + number)  # bpftrace dies with us (PR_SET_PDEATHSIG)
        self.signal = number

    def wait(self, seconds):
        """Sleeps up to `seconds`, less once a stop signal came."""
        deadline = time.monotonic() + seconds
        while self.signal is None and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def __bool__(self):
        return self.signal is not None


def run(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise Failure("tracing needs root (bpftrace attaches uprobes)",
                      "run it as root, e.g. sudo " + " ".join([sys.argv[0]] + argv))
    if shutil.which("bpftrace") is None:
        raise Failure("bpftrace is not installed (or not on PATH)", "apt-get install bpftrace")
    user = None if args.pid is not None else targets.CommandUser.choose(args.user, os.environ)
    report_file = ReportFile(args.output) if args.output else None
    args.out = report_file.stream if report_file else sys.stdout
    aliases = FileAliases()
    try:
        status = trace(args, user, aliases)
    except BaseException:
        if report_file:
            report_file.close()  # the unnamed file vanishes: FILE stays as it was
        raise
    finally:
        aliases.close()
    if report_file:
        try:
            report_file.commit()
        except OSError as error:
            raise Failure(f"-o {shown(args.output)}: the report could not be written: "
                          f"{error.strerror}", "give -o a writable path") from None
        finally:
            report_file.close()
    return status


def trace(args, user, aliases):
    procfs.mount_tracefs()
    env = dict(os.environ)
    if args.pid is not None:
        if not os.path.exists(f"/proc/{args.pid}"):
            raise Failure(f"no process with PID {args.pid}", "check the PID (ps -ef | grep python)")
        if not procfs.process_alive(args.pid):
            raise Failure(f"PID {args.pid} has exited (a zombie: its parent has not reaped it)",
                          "give the PID of a running process")
        target_exe = f"/proc/{args.pid}/exe"
    else:
        if user:
            env = user.environ(env)
        target_exe = shutil.which(args.command[0], path=env.get("PATH"))
        if target_exe is None:
            raise Failure(f"cannot start the command: {shown(args.command[0])!r} not found or not "
                          "executable", "check the command and PATH")

    python, pymalloc = None, True
    if (args.frames == "python-probes" or args.libc or args.object_allocator
            or args.python_call_stack):
        python, pymalloc = python_with_probes(target_exe, aliases, user, args.object_allocator)
    libraries = []
    for lib in args.lib:
        try:
            alias = aliases.open(lib, probe_elf=True)
        except OSError as error:
            raise Failure(f"--lib {shown(lib)}: {error.strerror or error}",
                          "give the path of the built extension") from None
        if alias is None or not elf.has_pymemtrace(alias):
            raise Failure(f"--lib {shown(lib)} has no pymemtrace probes (no .note.stapsdt entry "
                          "with provider pymemtrace)",
                          "build it with the pymemtrace headers on x86-64 Linux with "
                          "<sys/sdt.h> (apt-get install systemtap-sdt-dev); check with readelf -n")
        libraries.append(alias)
    plan = programs.choose_script(args, pymalloc)
    if plan.script.startswith("pymemtrace_"):
        libraries = with_found_libraries(args, env, user, aliases, libraries)
    libc = targets.libc_of(args.pid, aliases) if args.libc else None
    program = programs.make_program(plan.script, libraries, python, libc)
    if args.keep_program:
        handle, kept = tempfile.mkstemp(prefix="pymemtrace-", suffix=".bt")
        with os.fdopen(handle, "w") as copy:
            copy.write(program)
        print(f"pymemtrace-trace: program kept in {kept}", file=sys.stderr)

    if args.pid is not None:
        return trace_pid(args, program, plan, libraries)
    return trace_command(args, program, plan, env, user)


def python_with_probes(target_exe, aliases, user, need_pymalloc):
    """(alias of the target's Python binary, whether it uses pymalloc), for the options that
    need CPython's own probes; a Failure if it has none."""
    try:
        python = aliases.open(target_exe)
    except OSError as error:
        raise Failure(f"cannot read the Python binary {shown(target_exe)}: {error.strerror}",
                      "check the command") from None
    if not elf.has_python_probes(python):
        raise Failure(f"{shown(os.path.realpath(target_exe))} has no DTrace probes (it was not "
                      "built --with-dtrace), but CPython's probes are needed by --frames "
                      "python-probes, --python-call-stack, --libc and --object-allocator",
                      "run the program with Debian's /usr/bin/python3, which has them, or use "
                      "the default --frames probes")
    pymalloc = True
    if need_pymalloc:
        out = subprocess.run([python, "-c", "import sysconfig; "
                              "print(sysconfig.get_config_var('WITH_PYMALLOC'))"],
                             capture_output=True, text=True, check=False,
                             preexec_fn=user.become if user else None).stdout.strip()
        pymalloc = out != "0"
    return python, pymalloc


def with_found_libraries(args, env, user, aliases, libraries):
    """`libraries` (aliases) and those found in the target, each file once; a Failure if none."""
    known = {procfs.file_identity(lib) for lib in libraries}
    if args.pid is not None:
        try:
            found = [alias for alias, _name in targets.mapped_libraries(args.pid, aliases)]
        except PermissionError:
            raise Failure(f"cannot read the memory map of PID {args.pid}",
                          "run as root in the target's PID namespace") from None
    else:
        found = []
        for path in targets.find_command_libraries(args.command, env, user):
            try:
                alias = aliases.open(path, probe_elf=True)
            except OSError:
                continue
            if alias is not None and elf.has_pymemtrace(alias):
                found.append(alias)
    libraries = list(libraries)
    for alias in found:
        if procfs.file_identity(alias) not in known:
            known.add(procfs.file_identity(alias))
            libraries.append(alias)
    if not libraries:
        where = f"PID {args.pid}" if args.pid is not None else "the command"
        raise Failure(f"no library with pymemtrace probes found for {where}",
                      "build the project (meson setup build && meson compile -C build), "
                      "set PYTHONPATH so the target imports it, or pass --lib PATH")
    return libraries


class Trace:
    """One run of bpftrace for the runner: flow printfs shown as they come or kept for replay,
    maps kept for the report."""

    def __init__(self, program, pid, plan, args):
        self.plan, self.args = plan, args
        self.write_error = None
        self.rows = 0  # event rows received
        self.shortener = reports.Shortener(not args.full_file_path, args.strlen)
        self.flow = []
        env = dict(os.environ, BPFTRACE_STRLEN=str(args.strlen),
                   BPFTRACE_MAP_KEYS_MAX=str(args.max_entries))
        env.setdefault("BPFTRACE_PERF_RB_PAGES", str(args.perf_pages))
        self.session = BpftraceSession(program, positional=[pid, *plan.words], env=env,
                                       ready_marker="dtrace:::BEGIN", on_printf=self._printf)

    def _printf(self, text):
        if reports.Shortener.FLOW_PREFIX.match(text):
            self.rows += 1
        if self.args.report != "flow":
            self.flow.append(text)
        elif self.write_error is None:
            try:
                self.args.out.write(self.shortener.flow_row(text))
                self.args.out.flush()
            except OSError as error:
                self.write_error = error  # reported by finish(): the flow is incomplete

    def start(self):
        try:
            self.session.start()
        except SessionError as error:
            raise Failure("bpftrace could not attach:\n  " + str(error).replace("\n", "\n  "),
                          "see the bpftrace error above; run with --keep-program to inspect "
                          "the program") from None

    def finish(self):
        """Detaches, then writes the report; returns what it lost (reports.losses), which the
        report and standard error both state."""
        self.session.stop()
        session = self.session
        for line in session.errors:
            print(f"bpftrace: {shown(line)}", file=sys.stderr)
        lost = reports.losses(self.plan, session.maps, session.lost, self.args.max_entries,
                              self.rows)
        try:
            if self.write_error:
                raise self.write_error
            reports.report(self.args.out, self.plan, self.args.report, self.args.json,
                           session.maps, self.flow, self.shortener)
            if lost and not self.args.json and self.args.report != "flow":
                print("\nINCOMPLETE: " + "; ".join(lost), file=self.args.out)
            self.args.out.flush()
        except OSError as error:
            where = f"-o {shown(self.args.output)}" if self.args.output else "standard output"
            raise Failure(f"the report could not be written to {where}: {error.strerror}",
                          "give -o a writable file") from None
        for what in lost:
            print(f"pymemtrace-trace: {'warning' if self.args.allow_loss else 'error'}: the "
                  f"report is incomplete: {what}", file=sys.stderr)
        return lost


def exit_status(lost, args, status):
    """The run's exit status: LOSS when the report lost data and the user did not allow it."""
    if lost and not args.allow_loss:
        print(f"pymemtrace-trace: exit {LOSS}: give --allow-loss to accept an incomplete report",
              file=sys.stderr)
        return LOSS
    return status


def trace_pid(args, program, plan, libraries):
    stop = Stop(pid_mode=True)
    run = Trace(program, args.pid, plan, args)
    try:
        run.start()
        if not procfs.wait_armed(args.pid, program, libraries):
            print(f"pymemtrace-trace: warning: the probes' semaphores of PID {args.pid} are not "
                  "all set after 30 s; events may be missing", file=sys.stderr)
        print(f"pymemtrace-trace: tracing PID {args.pid}; Ctrl-C to stop", file=sys.stderr)
        while not stop and run.session.alive() and procfs.process_alive(args.pid):
            stop.wait(0.2)
        if plan.kind in ("flow", "flowlog") and not stop:
            run.session.drain()
        if plan.kind == "leaks" and run.session.alive():
            stop_recording(args.pid)
            time.sleep(0.2)  # the frees in flight
    finally:
        run.session.stop()
    return exit_status(run.finish(), args, 0)


def stop_recording(pid):
    """Tells the leaks script to record no more allocations of process `pid` (scripts.STOP_TID):
    a tgkill, with signal 0, of a thread that cannot exist, which the process never sees."""
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall(ctypes.c_long(234), ctypes.c_long(pid), ctypes.c_long(scripts.STOP_TID),
            ctypes.c_long(0))  # SYS_tgkill on x86-64


def trace_command(args, program, plan, env, user):
    # The child waits on a pipe until bpftrace has attached, then execs: nothing is missed. If
    # the runner dies first, the pipe closes and the child exits: it never runs untraced.
    executable = shutil.which(args.command[0], path=env.get("PATH")) or args.command[0]
    go_read, go_write = os.pipe()
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    stop = Stop(pid_mode=False)
    child = os.fork()
    if child == 0:
        try:
            os.close(go_write)
            os.close(err_read)
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(number, signal.SIG_DFL)
            if user:
                user.become()
            if not os.read(go_read, 1):
                os._exit(125)  # the runner went away before releasing us
            os.close(go_read)
            os.execve(executable, args.command, env)
        except OSError as error:
            os.write(err_write, f"{error.errno}:{error.strerror}".encode())
        finally:
            os._exit(127)
    os.close(go_read)
    os.close(err_write)
    run = Trace(program, child, plan, args)
    status = None
    try:
        try:
            run.start()
        except Failure:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            raise
        os.write(go_write, b"g")
        os.close(go_write)
        failure = os.read(err_read, 4096)
        os.close(err_read)
        while not stop:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                break
            status = None
            if not run.session.alive():
                break  # bpftrace ended on its own: its errors are reported below
            stop.wait(0.1)
        if stop and status is None:
            print(f"pymemtrace-trace: stopped by signal {stop.signal}; the command (PID {child}) "
                  "goes on, no longer traced", file=sys.stderr)
        elif plan.kind in ("flow", "flowlog"):
            run.session.drain()
        else:
            time.sleep(0.2)
    finally:
        run.session.stop()
    if failure:
        message = failure.decode(errors="replace").split(":", 1)[-1]
        raise Failure(f"the command failed to start: {shown(args.command[0])}: {message}",
                      "check the command, its permissions and its interpreter line")
    lost = run.finish()
    if status is None:
        if stop:
            return exit_status(lost, args, 128 + stop.signal)
        _, status = os.waitpid(child, 0)  # bpftrace ended early: let the command finish
    if os.WIFSIGNALED(status):
        return exit_status(lost, args, 128 + os.WTERMSIG(status))
    return exit_status(lost, args, os.WEXITSTATUS(status))


def main(argv=None):
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Failure as failure:
        print(f"pymemtrace-trace: error: {failure}\n  fix: {failure.fix}", file=sys.stderr)
        return 2
