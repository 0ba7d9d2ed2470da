# SPDX-License-Identifier: MIT
"""pymemtrace-trace: where in your Python code your extension allocates, how much, and what it
never frees, from the pymemtrace USDT probes, with bpftrace.

    pymemtrace-trace [OPTIONS] -- COMMAND [ARG...]   trace COMMAND from its first allocation
    pymemtrace-trace [OPTIONS] -p PID                 attach to a running process; Ctrl-C detaches

The command line: its options, what they ask to be traced, and the program that traces it; the
tracing itself is in `modes`.
"""
import argparse
import os
import shutil
import stat
import sys
import tempfile

from . import (elf, engine, engine_trace, flamegraph_html, install_hints, native, procfs,
               programs, pythonbinary, safe_open, stacks, targets)
from .aliases import FileAliases
from .errors import LOSS, Failure
from .names import shown
from .output import ReportFile
from .request import Request



def parse_args(argv):
    """The checked Request argv makes; a usage error (exit 2) if it is not one."""
    command = []
    if "--" in argv:
        index = argv.index("--")
        argv, command = argv[:index], argv[index + 1:]
    parser = argparse.ArgumentParser(
        prog="pymemtrace-trace",
        usage="%(prog)s [OPTIONS] -- COMMAND [ARG...]\n       %(prog)s [OPTIONS] -p PID",
        description="Trace the pymemtrace probes of a Python process with bpftrace and report "
                    "allocations by Python file, line and function.",
        epilog=install_hints.pkg_config_hint(), formatter_class=install_hints.HelpFormatter)
    parser.add_argument("-p", "--pid", type=int, help="attach to this running process")
    parser.add_argument("--report", choices=("flow", "summary", "leaks", "folded", "html"),
                        default="summary",
                        help="flow: one line per event; summary (default): bytes by Python "
                             "location, largest first; leaks: what is still allocated at the "
                             "end; folded, html: the summary as --format folded or html")
    parser.add_argument("--format", choices=("text", "json", "folded", "html"),
                        help="how summary and leaks are written: text (default), json (every "
                             "location), folded (collapsed stacks for flamegraph.pl, inferno, "
                             "speedscope), html (a page with a flame graph and a table; needs "
                             "-o FILE)")
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument("--top", type=int, default=20, metavar="N",
                        help="the text report's first N locations (default 20; 0: all)")
    parser.add_argument("--depth", type=int, default=1, metavar="N",
                        help="group summary and leaks by the innermost N Python frames (1 to 16; "
                             "default 1, the innermost frame alone)")
    parser.add_argument("--native", action="store_true",
                        help="name the C or C++ function, file and line that called the "
                             "allocator beside the Python frames (summary and leaks of the py* "
                             "probes; libraries built with this pymemtrace's headers, -g for "
                             "lines)")
    parser.add_argument("--histograms", action="store_true",
                        help="add size histograms per Python file and function, and per domain, "
                             "to the text summary")
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
                             "probes) or python-probes (CPython's function__entry/return/line; "
                             "CPython fails code whose file or function name is not UTF-8 with "
                             "SystemError while they are enabled: docs/security.md)")
    parser.add_argument("--libc", action="store_true",
                        help="trace libc malloc/calloc/realloc/free (py_flow_malloc_free.bt)")
    parser.add_argument("--object-allocator", action="store_true",
                        help="trace Python's public PyObject_*/PyMem_Raw* functions "
                             "(py_object_*_WITH_PYMALLOC.bt)")
    parser.add_argument("--lib", action="append", default=[], metavar="PATH",
                        help="a library with pymemtrace probes, or a directory searched for "
                             "them (repeatable); default: those the command's Python can import")
    parser.add_argument("--strlen", type=int, default=128,
                        help="bytes of file and function names read (BPFTRACE_STRLEN); default "
                             "128, the most two names may take in one event on the 512-byte BPF "
                             "stack. A longer path is shown cut, ending in '...'")
    parser.add_argument("--max-entries", type=int, default=65536,
                        help="entries per bpftrace map (live blocks, locations); default 65536")
    parser.add_argument("--perf-pages", type=int, default=1024,
                        help="perf buffer pages per CPU for flow lines (BPFTRACE_PERF_RB_PAGES); "
                             "default 1024. The engine's flow ring buffer holds as many bytes "
                             "for all CPUs")
    parser.add_argument("--allow-loss", action="store_true",
                        help=f"accept an incomplete report (a full map, lost flow events): it "
                             f"still says what it lost, but the exit status is not {LOSS}")
    parser.add_argument("--no-follow", dest="follow", action="store_false",
                        help="trace only the command (or PID), not the processes it forks "
                             "(by default they are traced too, and theirs)")
    parser.add_argument("--per-process", action="store_true",
                        help="a summary or leak report per process (by default one for all "
                             "the processes traced; JSON entries then carry their pids)")
    parser.add_argument("--interval", type=float, metavar="SECONDS",
                        help="with --report leaks: every SECONDS, the live bytes and blocks by "
                             "location, with their growth since the first snapshot (a text "
                             "table, or a JSON line with --json); the peak at the end")
    parser.add_argument("--all", action="store_true",
                        help="trace every process that maps the --lib libraries, those started "
                             "later too, until Ctrl-C or SIGTERM; a report per PID and its "
                             "command line")
    parser.add_argument("--engine", choices=("auto", "libbpf", "bpftrace"), default="auto",
                        help="what traces: libbpf, pymemtrace-engine (compiled BPF attached to "
                             "the traced processes only; summary and leaks at --depth 1, read "
                             "at one instant, and their flow through a ring buffer), or "
                             "bpftrace (every report). auto: libbpf for every run it can "
                             "make, bpftrace for the others")
    parser.add_argument("--attach-by", choices=("path", "pid"), default=None,
                        help="how the engine attaches the libraries named or found beforehand. "
                             "path (a command's default): before the command runs, in every "
                             "process that maps them, keeping only the traced processes' "
                             "events: a forked child misses nothing, but another process "
                             "mapping the same library meanwhile pays a trap per allocation, as "
                             "with bpftrace. pid (-p's default): in the traced processes only: "
                             "nobody else pays, but a child's first events may be missed (a "
                             "stated loss)")
    parser.add_argument("--keep-program", action="store_true",
                        help="save a copy of the generated bpftrace program and say where")
    parser.add_argument("--user", metavar="USER",
                        help="run COMMAND as USER (name or number); default: the user who ran "
                             "sudo (SUDO_UID), else the runner's own user. Tracing stays root")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the report (or the flow) to FILE, apart from the traced "
                             "command's own output. FILE is opened as the user the report is "
                             "for (sudo's, --user's), replaced only by a finished report and "
                             "never reached through another user's symbolic link")
    args = parser.parse_args(argv)
    args.command = command
    if args.all:
        if args.pid is not None or command:
            parser.error("--all traces every process that maps the libraries: give no -p PID "
                         "and no COMMAND")
        if not args.lib:
            parser.error("--all needs the libraries to watch: --lib PATH or --lib DIR")
        if (args.frames != "probes" or args.libc or args.object_allocator
                or args.python_call_stack):
            parser.error("--all traces the pymemtrace probes only (the default --frames probes)")
        if args.user is not None:
            parser.error("--user applies to a COMMAND the runner starts, not to --all")
        args.per_process = True
    elif (args.pid is not None) == bool(command):
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
    report_format(parser, args)
    if not 1 <= args.depth <= 16:
        parser.error(f"--depth {args.depth}: give 1 to 16 frames")
    if args.depth > 1 and (args.report == "flow" or args.libc or args.object_allocator
                           or args.frames != "probes" or args.interval is not None):
        parser.error("--depth N > 1 groups the summary and leak reports of the py* probes: not "
                     "with flow, --libc, --object-allocator, --frames python-probes or "
                     "--interval (yet)")
    if args.native and (args.report == "flow" or args.libc or args.object_allocator
                        or args.frames != "probes" or args.interval is not None or args.all):
        parser.error("--native names the C caller in the summary and leak reports of the py* "
                     "probes: not with flow, --libc, --object-allocator, --frames "
                     "python-probes, --interval or --all")
    if args.attach_by is not None and (args.all or args.engine == "bpftrace"):
        parser.error("--attach-by chooses how pymemtrace-engine attaches: --all and bpftrace "
                     "attach by path always; leave it out")
    if args.interval is not None:
        if args.report != "leaks" or args.format not in ("text", "json"):
            parser.error("--interval takes snapshots of the live blocks: use it with --report "
                         "leaks, as text or --json")
        if (args.frames != "probes" or args.libc or args.object_allocator) and (
                args.engine == "bpftrace"):  # its scripts in these modes have no live map
            parser.error("--interval with --frames python-probes, --libc or --object-allocator "
                         "is made by pymemtrace-engine: leave out --engine bpftrace")
        if not 0.1 <= args.interval <= 86400:
            parser.error(f"--interval {args.interval}: give 0.1 to 86400 seconds")
    return Request.from_arguments(args)


def report_format(parser, args):
    """args.format from --format, --json or --report folded/html (the summary in that form);
    args.report is then flow, summary or leaks, what is traced."""
    forms = {args.format} - {None}
    if args.json:
        forms.add("json")
    if args.report in ("folded", "html"):
        forms.add(args.report)
        args.report = "summary"
    if len(forms) > 1:
        parser.error(f"choose one report format, not {' and '.join(sorted(forms))}")
    args.format = forms.pop() if forms else "text"
    args.json = args.format == "json"
    if args.format != "text" and args.report == "flow":
        parser.error(f"--report flow is text only: {args.format} applies to summary and leaks")
    if args.format == "html" and not args.output:
        parser.error("--report html writes a page: give -o FILE.html")
    if args.top < 0:
        parser.error(f"--top {args.top}: give a number of locations, 0 for all")


def run(argv):
    request = parse_args(argv)
    if os.geteuid() != 0:
        raise Failure("tracing needs root (BPF programs attach uprobes)",
                      "run it as root, e.g. sudo " + " ".join([sys.argv[0]] + argv))
    # Whom the report is for (the sudo user, --user; None: root); the command runs as them too.
    reader = targets.CommandUser.choose(request.user, os.environ)
    user = None if request.pid is not None or request.all else reader
    # Before tracing: a missing flame graph library is said now, not after the run.
    scripts = flamegraph_html.scripts() if request.format == "html" else None
    report_file = ReportFile(request.output, reader) if request.output else None
    request = request.writing_to(report_file.stream if report_file else sys.stdout, scripts)
    aliases = FileAliases()
    try:
        status = trace(request, user, aliases)
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
            raise Failure(f"-o {shown(request.output)}: the report could not be written: "
                          f"{error.strerror}", "give -o a writable path") from None
        finally:
            report_file.close()
    return status


def trace(request, user, aliases):
    procfs.mount_tracefs()
    env = dict(os.environ)
    if request.pid is not None:
        if not os.path.exists(f"/proc/{request.pid}"):
            raise Failure(f"no process with PID {request.pid}",
                          "check the PID (ps -ef | grep python)")
        if not procfs.process_alive(request.pid):
            raise Failure(f"PID {request.pid} has exited (a zombie: its parent has not reaped it)",
                          "give the PID of a running process")
        target_exe = f"/proc/{request.pid}/exe"
    elif not request.all:  # --all: no target; the libraries are given (--lib)
        if user:
            env = user.environ(env)
        target_exe = shutil.which(request.command[0], path=env.get("PATH"))
        if target_exe is None:
            raise Failure(f"cannot start the command: {shown(request.command[0])!r} not found or "
                          "not executable", "check the command and PATH")

    python, pymalloc = None, True
    if (request.frames == "python-probes" or request.libc or request.object_allocator
            or request.python_call_stack):
        python, pymalloc = python_with_probes(target_exe, aliases, request.object_allocator)
    plan = programs.choose_script(request, pymalloc)
    setid = programs.for_another_user(user, os.environ)
    # The engine loads its programs while the libraries are checked and found (start-up,
    # docs/engine.md); it is told its targets once the command is forked.
    early = engine_trace.start_early(request, plan, setid)
    try:
        return trace_with(request, user, aliases, env, python, plan, setid, early)
    except BaseException as failure:
        if early is not None:  # never left running: its load is of no use now
            early.__exit__(type(failure), failure, failure.__traceback__)
        raise


def trace_with(request, user, aliases, env, python, plan, setid, early):
    """trace() once the plan is chosen: the libraries, then the run on the engine (`early`, if
    started) or on bpftrace."""
    # Imported once the engine is loading (start_early): not on the way to its spawn.
    from . import bpftrace_binary, interpreters
    from .modes import Trace, trace_all, trace_command, trace_pid
    libraries = []
    for lib in request.lib:
        libraries += given_libraries(lib, user, aliases)
    notes = interpreters.notes(request.command, env, user, libraries) if request.command else ()
    for note in notes:
        print(f"pymemtrace-trace: note: {note}", file=sys.stderr)
    if plan.script.startswith("pymemtrace_") and not request.all:
        libraries = with_found_libraries(request, env, user, aliases, libraries,
                                         engine_trace.finds_libraries(request, plan))
    if request.native:
        native.check_tools()
    if request.depth > 1 or request.native:
        libraries = libraries_with_records(libraries, request.depth, request.native)
    engine_path = chosen_engine(request, plan)
    libc = targets.libc_of(request.pid, aliases) if request.libc else None
    if engine_path is not None:
        def make_run(pid):
            return engine_trace.EngineTrace(pid, plan, request, libraries, engine_path, setid,
                                            loading=early, python=python, libc=libc)
        if request.all:
            return trace_all(request, None, plan, libraries, make_run(None))
    else:
        bpftrace_binary.path()  # found and checked now, not after the command started
        program = programs.make_program(plan.script, libraries, python, libc, request.follow,
                                        request.interval, request.all, depth=request.depth,
                                        setid=setid, native_caller=request.native)
        if request.keep_program:
            handle, kept = tempfile.mkstemp(prefix="pymemtrace-", suffix=".bt")
            with os.fdopen(handle, "w") as copy:
                copy.write(program)
            print(f"pymemtrace-trace: program kept in {kept}", file=sys.stderr)
        if request.all:
            return trace_all(request, program, plan, libraries)

        def make_run(pid):
            return Trace(program, pid, plan, request, libraries)
    if request.pid is not None:
        return trace_pid(request, make_run(request.pid), libraries)
    return trace_command(request, make_run, env, user)


def chosen_engine(request, plan):
    """The path of pymemtrace-engine if it makes this run's report (--engine), else None:
    bpftrace does."""
    wanted = request.engine == "libbpf" or request.attach_by is not None  # the engine by name
    if not (engine_trace.takes(request, plan) or engine_trace.takes_python_frames(request, plan)
            or engine_trace.takes_object_allocator(request, plan)):
        if wanted:
            raise Failure("pymemtrace-engine (--engine libbpf, --attach-by) makes the flow, "
                          "summary and leak reports of the py* probes, of --libc and "
                          "--object-allocator, and of --frames python-probes",
                          "leave --engine and --attach-by out: bpftrace then makes this report")
        if request.interval is not None and plan.script != "pymemtrace_leaks":
            # bpftrace's scripts of CPython's probes and the allocators keep no live map.
            raise Failure("snapshots (--interval) of --frames python-probes, --libc and "
                          "--object-allocator are made by pymemtrace-engine only, which was "
                          "not found beside the runner",
                          "build it (tools/install-deps.sh, then meson compile -C build)")
        return None
    found = engine.find_engine()
    if found is None and wanted:
        raise Failure(f"{engine.ENGINE} was not found beside the runner",
                      "build it (tools/install-deps.sh, then meson compile -C build) or "
                      "install pymemtrace")
    return found


def given_libraries(lib, user, aliases):
    """The aliases `--lib lib` names: the file, or the instrumented extensions under the
    directory. The path is walked as safe_open.walk does: a symbolic link is followed only if
    root owns it (another user's could be repointed between any check and the open), else the
    run stops and says which link."""
    try:
        handle = safe_open.walk(lib)
    except OSError as error:
        raise Failure(f"--lib {shown(lib)}: {shown(safe_open.reason(error))}",
                      "give the real path of the library or directory (realpath PATH), if you "
                      "trust every directory on it" if isinstance(error, safe_open.Refused)
                      else "give the path of a built extension, or of a directory of them"
                      ) from None
    if stat.S_ISDIR(os.fstat(handle).st_mode):  # --lib DIR: the instrumented extensions under it
        os.close(handle)
        found, scan = targets.directory_libraries(lib, user, aliases)
        if not found:
            passed = scan.said()
            raise Failure(f"--lib {shown(lib)}: no library with pymemtrace probes under it"
                          + (f" (not read: {passed})" if passed else ""),
                          BUILD_WITH_PROBES)
        return found
    try:
        alias = aliases.adopt(safe_open.regular(handle, lib), probe_elf=True)
    except OSError as error:
        raise Failure(f"--lib {shown(lib)}: {shown(safe_open.reason(error))}",
                      "give the path of the built extension") from None
    if alias is not None and elf.machine(alias) != elf.host_machine():
        raise Failure(f"--lib {shown(lib)} is built for {elf.machine_name(elf.machine(alias))}, "
                      f"not this machine's {elf.machine_name(elf.host_machine())}",
                      "give the extension built for this machine")
    if alias is None or not elf.has_pymemtrace(alias):
        raise Failure(f"--lib {shown(lib)} has no pymemtrace probes (no .note.stapsdt entry "
                      "with provider pymemtrace)",
                      "build it with the pymemtrace headers on x86-64 Linux with "
                      "<sys/sdt.h> (apt-get install systemtap-sdt-dev); check with readelf -n")
    return [alias]


def python_with_probes(target_exe, aliases, need_pymalloc):
    """(alias of the target's Python binary, whether it uses pymalloc), for the options that
    need CPython's own probes; a Failure if it has none. Learned from the binary's ELF file:
    nothing of the target's is run."""
    try:
        python = aliases.open(target_exe)
    except OSError as error:
        raise Failure(f"cannot read the Python binary {shown(target_exe)}: "
                      f"{shown(safe_open.reason(error))}", "check the command") from None
    if not elf.has_python_probes(python):
        raise Failure(f"{shown(os.path.realpath(target_exe))} has no DTrace probes (it was not "
                      "built --with-dtrace), but CPython's probes are needed by --frames "
                      "python-probes, --python-call-stack, --libc and --object-allocator",
                      "run the program with Debian's /usr/bin/python3, which has them, or use "
                      "the default --frames probes")
    pymalloc = pythonbinary.uses_pymalloc(python) if need_pymalloc else True
    if pymalloc is None:
        raise Failure(f"cannot tell whether {shown(os.path.realpath(target_exe))} uses pymalloc "
                      "(its ELF section headers cannot be read)",
                      "trace it without --object-allocator, e.g. with --libc")
    return python, pymalloc


def libraries_with_records(libraries, depth, native_caller=False):
    """The libraries that fill the stack record `--depth` (and `--native`) reads. One built with
    older headers is left out, said here; if the target maps it, the report states it as not
    traced (exit 3)."""
    able, unable = stacks.with_records(libraries, depth, native_caller)
    option = "--native" if native_caller else f"--depth {depth}"
    if unable:  # a scan may find dozens: a few named, the rest counted
        named = ", ".join(shown(os.path.realpath(library)) for library in unable[:3])
        more = f" and {len(unable) - 3} more" if len(unable) > 3 else ""
        print(f"pymemtrace-trace: warning: {named}{more} "
              f"{'has' if len(unable) == 1 else 'have'} no "
              f"{'native callers' if native_caller else 'stack records'} (built with older "
              f"pymemtrace headers): not traced with {option}; rebuild them", file=sys.stderr)
    if not able:
        recorded = "native callers" if native_caller else "Python stacks"
        raise Failure(f"no library here records {recorded} for {option}",
                      "rebuild the extension with this pymemtrace's headers, or leave "
                      f"{'--native out' if native_caller else '--depth out'}")
    return able


# What an extension author does when nothing is instrumented (docs/extensions.md).
BUILD_WITH_PROBES = (
    "build your extension with pymemtrace's flags, no source change: CFLAGS=\"$(pkg-config "
    "--cflags pymemtrace-redirect)\" LDFLAGS=\"$(pkg-config --libs pymemtrace-redirect)\" pip "
    "install --no-build-isolation . (or meson: dependency('pymemtrace-redirect'); or "
    "python3 -m pymemtrace --cflags --libs); check with readelf -n EXT.so | grep pymemtrace; "
    "or pass --lib PATH or --lib DIR")


def with_found_libraries(request, env, user, aliases, libraries, engine_finds=False):
    """`libraries` (aliases) and those found in the target, each file once; a Failure if none,
    unless the engine will find them as the target maps them (`engine_finds`)."""
    known, passed = {procfs.file_identity(lib) for lib in libraries}, []
    if request.pid is not None:
        try:
            found = [alias for alias, _name in targets.mapped_libraries(request.pid, aliases)]
        except PermissionError:
            raise Failure(f"cannot read the memory map of PID {request.pid}",
                          "run as root in the target's PID namespace") from None
    else:
        # --lib given: no guess at the source tree's build (a library the command never
        # loads costs bpftrace's start-up a program of its own).
        found = targets.command_libraries(request.command, env, user, aliases,
                                          guess=not libraries, passed=passed)
    libraries = list(libraries)
    for alias in found:
        if procfs.file_identity(alias) not in known:
            known.add(procfs.file_identity(alias))
            libraries.append(alias)
    if not libraries and not engine_finds:
        where = f"PID {request.pid}" if request.pid is not None else "the command"
        not_read = targets.Scan(passed=passed).said()
        raise Failure(f"no library with pymemtrace probes found for {where}"
                      + ("" if request.pid is not None else
                         " (none under the sys.path of its Python)")
                      + (f"; not read: {not_read}" if not_read else ""),
                      BUILD_WITH_PROBES)
    return libraries


def main(argv=None):
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Failure as failure:
        print(f"pymemtrace-trace: error: {failure}\n  fix: {failure.fix}", file=sys.stderr)
        return 2
