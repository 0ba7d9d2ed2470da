# SPDX-License-Identifier: MIT
"""Python locations in the py* probes, on every CPython 3.8-3.15, under real bpftrace.

For each interpreter: build locate_ext.c against its headers, run workload.py untraced (nothing
breaks, no semaphore set), then run it again while bpftrace is attached by path to the built
extension, and check that every pyalloc, pyrealloc and pyfree of that process names the file,
function and line of the tagged line that made it (pointers matched with the ones Python got),
and "" with line 0 where no Python location exists (a C thread with no thread state, the GIL
released by the plain PyEval_SaveThread, a C atexit callback, and sub-interpreters on 3.8-3.11);
the GIL released through pymemtrace_save_thread gives the line that released it; that the lookup survives its
own allocations (an allocator hook) and keeps a pending exception; and that the interpreter
exits 0. Every test runs once per interpreter; an interpreter that is absent is skipped with the
reason, one present must pass.

With a request for depth (pystack16 attached too), the py* probes' `stack` record must hold the
stack CPython's frame objects show, innermost first, at most 16 frames, with content ids that
are equal for equal stacks and differ for different callers; without one, `stack` is 0.

With PYMEMTRACE_PYTHONS=sid the interpreters are Debian unstable's 3.14 and 3.15 in the root
tools/sid-root.sh builds (once, cached): the extension is built there (its gcc, its headers, a
copy of include/), run there, and traced from the host by its path, as a container's would be.
The root must build, and each interpreter must be there: those are failures, not skips.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace); CC names the
C compiler of the host's builds (tests/locations/meson.build sets it).
"""
import collections
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.normpath(os.path.join(HERE, "..", "..", "include"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from runner import pid_report  # noqa: E402
from source_lines import line_of, tagged_lines  # noqa: E402
from tracing import BpftraceSession  # noqa: E402

PYENV = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
PATTERNS = [("Debian 3.11", "/usr/bin/python3")] + [
    (f"pyenv 3.{minor}", f"{PYENV}/versions/3.{minor}.*/bin/python3") for minor in range(8, 14)]
SID_ROOT_SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "sid-root.sh"))
SID_VERSIONS = ("3.14", "3.15")
SOURCES = ("workload.py", "in_subinterpreter.py", "depth_workload.py", "leak_workload.py")
NOWHERE = ("", "", 0)
# Two 128-byte str() fit bpftrace 0.17's 512-byte BPF stack; paths are kept short anyway.
os.environ["BPFTRACE_STRLEN"] = "128"

PROGRAM = """
usdt:{so}:pymemtrace:pyalloc {{
    printf("EV|pyalloc|%d|%lu|0|%lu|%d|%s|%s|%d\\n", pid, arg0, arg1, arg2, str(arg3), str(arg4), arg5);
    printf("ST|%d|%lu\\n", pid, *(uint64 *)(reg("sp") + 8));
}}
usdt:{so}:pymemtrace:pyrealloc {{
    printf("EV|pyrealloc|%d|%lu|%lu|%lu|-1|%s|%s|%d\\n", pid, arg0, arg1, arg2, str(arg3), str(arg4), arg5);
    printf("ST|%d|%lu\\n", pid, *(uint64 *)(reg("sp") + 8));
}}
usdt:{so}:pymemtrace:pyfree {{
    printf("EV|pyfree|%d|%lu|0|0|%d|%s|%s|%d\\n", pid, arg0, arg1, str(arg2), str(arg3), arg4);
    printf("ST|%d|%lu\\n", pid, arg5);
}}
"""
# The record (location.h): u32 depth, u32 requested, then 16 frames of 40 bytes: u64 id, u64
# stack, char *filename, char *function, i32 lineno. x86-64: the 7th argument is on the stack.
DEPTH_PROGRAM = """
usdt:{so}:pymemtrace:pystack16 {{ @requests = count(); }}
usdt:{so}:pymemtrace:pyalloc /arg2 == 2/ {{
    $r = *(uint64 *)(reg("sp") + 8);
    $h = $r != 0 ? *(uint64 *)$r : (uint64)0;
    printf("REC|%d|%lu|%lu|%d|%d|%s|%s|%d\\n", pid, arg0, arg1, $h & 0xffffffff, $h >> 32,
           str(arg3), str(arg4), arg5);
    $i = (uint64)0;
    unroll(16) {{
        if ($r != 0) {{
            $p = $r + 8 + $i * 40;
            printf("FR|%d|%lu|%d|%lu|%lu|%d|%s|%s\\n", pid, arg0, $i, *(uint64 *)$p,
                   *(uint64 *)($p + 8), *(int32 *)($p + 32), str(*(uint64 *)($p + 16)),
                   str(*(uint64 *)($p + 24)));
        }}
        $i++;
    }}
}}
"""

# root: "" for the host's interpreters, else the directory they run chrooted in.
Interpreter = collections.namedtuple("Interpreter", "label python version root")


def in_root(root, directory):
    """A host path under `root` as a process chrooted there sees it."""
    return "/" + os.path.relpath(directory, root) if root else directory


def run_in(root, argv, cwd=None, popen=False, **kwargs):
    """Runs argv on the host, or chrooted in `root` with cwd (a host path) as its directory; the
    process is the interpreter itself (no chroot(1) in between), so its pid is the one traced."""
    def enter_root():
        os.chroot(root)
        os.chdir(in_root(root, cwd) if cwd else "/")
    kwargs.update(cwd=cwd, preexec_fn=enter_root if root else None)
    return subprocess.Popen(argv, **kwargs) if popen else subprocess.run(argv, **kwargs)


def version_of(root, python):
    return tuple(int(part) for part in run_in(
        root, [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True, text=True, check=True).stdout.split())


def sid_interpreters():
    """3.14 and 3.15 in the Debian unstable root, built (or found cached) by tools/sid-root.sh."""
    made = subprocess.run(["bash", SID_ROOT_SCRIPT], capture_output=True, text=True)
    if made.returncode != 0:
        raise SystemExit(f"tools/sid-root.sh failed ({made.returncode}):\n{made.stderr}")
    root = made.stdout.strip().splitlines()[-1]
    params = []
    for minor in SID_VERSIONS:
        python = f"/usr/bin/python{minor}"
        assert os.path.exists(root + python), f"{root} has no {python}: rebuild it (remove it)"
        params.append(pytest.param(Interpreter(f"sid {minor}", python, version_of(root, python),
                                               root), id=f"sid-{minor}"))
    return params


def interpreters():
    """One pytest parameter per interpreter of PATTERNS: the newest match, or a skip; with
    PYMEMTRACE_PYTHONS=sid, the ones of the Debian unstable root instead."""
    if os.environ.get("PYMEMTRACE_PYTHONS") == "sid":
        return sid_interpreters()
    params = []
    for label, pattern in PATTERNS:
        found = sorted(glob.glob(pattern))
        if not found:
            params.append(pytest.param(None, id=label.replace(" ", "-"), marks=pytest.mark.skip(
                reason=f"{label}: no interpreter matches {pattern}")))
            continue
        params.append(pytest.param(Interpreter(label, found[-1], version_of("", found[-1]), ""),
                                   id=label.replace(" ", "-")))
    return params


INTERPRETERS = interpreters()
# 3.11+: the lookup's own frame object comes back through an allocator hook.
INTERPRETERS_3_11_PLUS = [p for p in INTERPRETERS if p.values[0] and p.values[0].version >= (3, 11)]


def function_names(version):
    """The function each tag's probes must name: co_qualname on 3.11+, co_name before."""
    qualified = version >= (3, 11)
    if version >= (3, 12):
        listcomp = "comprehension"  # PEP 709: comprehensions are inlined, no frame of their own
    elif qualified:
        listcomp = "comprehension.<locals>.<listcomp>"
    else:
        listcomp = "<listcomp>"
    names = {
        "nested": "outer.<locals>.inner" if qualified else "inner",
        "method": "Widget.build" if qualified else "build",
        "generator": "generator", "lambda": "<lambda>", "listcomp": listcomp,
        "non_ascii": "größe", "thread": "in_thread", "except": "while_handling", "pending_error": "with_pending_error",
        "atexit": "at_exit", "atexit_free": "at_exit", "module": "<module>", "released_gil": "main",
        "subinterpreter_malloc": "<module>", "subinterpreter_free": "<module>",
    }
    names.update((tag, "every_family") for tag in
                 ("function_malloc", "function_calloc", "function_realloc",
                  "function_realloc_null", "function_free"))
    return names


def expected_locations(interpreter, workdir):
    """{tag: (file, function, line)}; NOWHERE where there is no Python location."""
    version = interpreter.version
    lines, sub_lines = (tagged_lines(pathlib.Path(workdir, name).read_text(encoding="utf-8"))
                        for name in SOURCES[:2])
    workload, subinterpreter = (os.path.join(in_root(interpreter.root, workdir), name)
                                for name in SOURCES[:2])
    names = function_names(version)
    where = {tag: (workload, names[tag], line) for tag, line in lines.items()}
    # The exec slot runs under importlib's _call_with_frames_removed: ask the interpreter where.
    init = run_in(interpreter.root, [interpreter.python, "-c", (
        "import dis, importlib._bootstrap as b; c = b._call_with_frames_removed.__code__;"
        "print(c.co_filename, max(l for _, l in dis.findlinestarts(c) if l), sep='|')")],
        capture_output=True, text=True, check=True).stdout.strip().split("|")
    where["init"] = (init[0], "_call_with_frames_removed", int(init[1]))
    for tag in ("c_thread", "without_gil", "atexit_c"):
        where[tag] = NOWHERE
    # 3.8-3.11 know the calling thread only through PyGILState, which a sub-interpreter on a
    # thread that already has a main-interpreter thread state does not update (see python.h).
    sub_known = version >= (3, 12)
    for tag, line in sub_lines.items():
        where[tag] = (subinterpreter, names[tag], line) if sub_known else NOWHERE
    where["subinterpreter_init"] = where["init"] if sub_known else NOWHERE
    return where


def expected_events(records, where):
    """The py* events the records imply, as (probe, ptr, new_ptr, size, domain, file, function, line)."""
    events = []
    for tag, op, domain, size, ptr, new_ptr in records:
        domain, size, ptr, new_ptr = int(domain), int(size), int(ptr), int(new_ptr)
        if op in ("malloc", "calloc"):
            event = ("pyalloc", ptr, 0, size, domain)
        elif op == "realloc" and ptr == 0:
            event = ("pyalloc", new_ptr, 0, size, domain)
        elif op == "realloc":
            event = ("pyrealloc", ptr, new_ptr, size, -1)
        else:
            event = ("pyfree", ptr, 0, 0, domain)
        events.append(event + where[tag])
    return events


def parse(lines, tag):
    return [line.split("|")[1:] for line in lines if line.startswith(tag + "|")]


def build(interpreter, workdir):
    """Compile locate_ext for the interpreter into workdir (no libpython link: the interpreter has
    it), with the host's CC, or in its root with the root's gcc and a copy of include/. Returns
    why it cannot be built here, or None."""
    root, python = interpreter.root, interpreter.python
    include = run_in(root, [python, "-c",
                            "import sysconfig; print(sysconfig.get_config_var('INCLUDEPY'))"],
                     capture_output=True, text=True, check=True).stdout.strip()
    if not os.path.exists(root + os.path.join(include, "Python.h")):
        return f"no Python.h in {root}{include}"
    if root:
        shutil.copytree(INCLUDE, os.path.join(workdir, "include"))
        shutil.copy(os.path.join(HERE, "locate_ext.c"), workdir)
        compiler, source = ["gcc"], "locate_ext.c"
        ours = os.path.join(in_root(root, workdir), "include")
    else:
        compiler, ours = os.environ.get("CC", "cc").split(), INCLUDE
        source = os.path.join(HERE, "locate_ext.c")
    compiled = run_in(root, [*compiler, "-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Wpedantic",
                             "-Werror", "-shared", "-fPIC", "-pthread", "-isystem", include, "-I",
                             ours, source, "-o", "locate_ext.so"],
                      cwd=workdir, capture_output=True, text=True)
    assert compiled.returncode == 0, f"locate_ext.c does not build for {python}:\n{compiled.stderr}"
    for name in SOURCES:
        shutil.copy(os.path.join(HERE, name), workdir)
    return None


def run_workload(interpreter, workdir):
    seen_as = in_root(interpreter.root, workdir)
    return run_in(interpreter.root, [interpreter.python, os.path.join(seen_as, "workload.py"),
                                     os.path.join(seen_as, "in_subinterpreter.py")],
                  cwd=workdir, popen=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  encoding="utf-8")


class Runs:
    """Per interpreter, each made once and kept for every test that asks: locate_ext built in a
    short temporary directory (bpftrace's str() reads 128 bytes), the workload's run with no
    tracer, and its run under bpftrace."""

    def __init__(self):
        self.workdirs, self.untraced_runs, self.traced_runs = {}, {}, {}
        self.stack_arguments, self.depth_runs = {}, {}

    def workdir(self, interpreter):
        if interpreter not in self.workdirs:
            under = interpreter.root + "/tmp" if interpreter.root else None
            workdir = tempfile.mkdtemp(prefix="pmt", dir=under)
            self.workdirs[interpreter] = (workdir, build(interpreter, workdir))
        workdir, reason = self.workdirs[interpreter]
        if reason:
            pytest.skip(f"{interpreter.label} ({interpreter.python}): {reason}")
        return workdir

    def untraced(self, interpreter):
        """(exit status, stdout lines, stderr) of the workload with no tracer attached."""
        if interpreter not in self.untraced_runs:
            proc = run_workload(interpreter, self.workdir(interpreter))
            out, err = proc.communicate(timeout=120)
            self.untraced_runs[interpreter] = (proc.returncode, out.splitlines(), err)
        return self.untraced_runs[interpreter]

    def traced(self, interpreter):
        """(exit status, stdout lines, stderr, [py* events of its process]) of the workload
        under bpftrace; an event is (probe, ptr, new_ptr, size, domain, file, function, line)."""
        if interpreter not in self.traced_runs:
            workdir = self.workdir(interpreter)
            so = os.path.join(workdir, "locate_ext.so")
            with BpftraceSession(PROGRAM.format(so=so)) as session:
                proc = run_workload(interpreter, workdir)
                try:
                    out, err = proc.communicate(timeout=120)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                # bpftrace drops what is still in its buffers when stopped: wait for one event
                # per record the workload printed (the last ones come at exit).
                records = len(parse(out.splitlines(), "REC"))
                session.wait_for(lambda lines: sum(
                    1 for e in parse(lines, "EV") if int(e[1]) == proc.pid and e[5] != "16")
                    >= records, timeout=10)
                lines = session.stop()
            events = [(probe, int(ptr), int(new), int(size), int(domain), file, function, int(line))
                      for probe, pid, ptr, new, size, domain, file, function, line
                      in parse(lines, "EV") if int(pid) == proc.pid]
            self.traced_runs[interpreter] = (proc.returncode, out.splitlines(), err, events)
            self.stack_arguments[interpreter] = [int(value) for pid, value in parse(lines, "ST")
                                                 if int(pid) == proc.pid]
        return self.traced_runs[interpreter]

    def traced_with_depth(self, interpreter):
        """depth_workload.py under bpftrace with pystack16 attached: (exit status, stderr,
        {ptr: expected [[file, function, line], ...]}, {ptr: (size, depth, requested, (file,
        function, line) of the probe)}, {ptr: [(index, id, stack, line, file, function), ...]})."""
        if interpreter not in self.depth_runs:
            workdir = self.workdir(interpreter)
            so = os.path.join(workdir, "locate_ext.so")
            with BpftraceSession(DEPTH_PROGRAM.format(so=so)) as session:
                proc = run_in(interpreter.root, [interpreter.python, "depth_workload.py"],
                              cwd=workdir, popen=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, encoding="utf-8")
                out, err = proc.communicate(timeout=120)
                expected = {ptr: stack for size, ptr, stack in
                            (json.loads(line[len("STACK|"):]) for line in out.splitlines()
                             if line.startswith("STACK|"))}
                session.wait_for(lambda lines: sum(
                    1 for e in parse(lines, "FR") if int(e[0]) == proc.pid) >= 16 * len(expected),
                    timeout=10)
                lines = session.stop()
            records = {int(ptr): (int(size), int(depth), int(requested), (file, function, int(line)))
                       for pid, ptr, size, depth, requested, file, function, line
                       in parse(lines, "REC") if int(pid) == proc.pid}
            frames = collections.defaultdict(list)
            for pid, ptr, index, frame_id, stack, line, file, function in parse(lines, "FR"):
                if int(pid) == proc.pid:
                    frames[int(ptr)].append((int(index), int(frame_id), int(stack), int(line),
                                             file, function))
            self.depth_runs[interpreter] = (proc.returncode, err, expected, records,
                                            {ptr: sorted(f) for ptr, f in frames.items()})
        return self.depth_runs[interpreter]

    def traced_to_the_end(self, interpreter):
        """As traced(), for the tests that read its output: the run must have exited 0."""
        code, output, err, events = self.traced(interpreter)
        assert code == 0, f"traced run exited {code}:\n{err}"
        return output, events

    def remove(self):
        for workdir, _ in self.workdirs.values():
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def runs():
    runs = Runs()
    yield runs
    runs.remove()


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_untraced_the_workload_exits_0_and_sees_every_semaphore_clear(runs, interpreter):
    code, output, err = runs.untraced(interpreter)
    assert code == 0, f"untraced run exited {code}:\n{err}"
    assert parse(output, "ENABLED") == [["0"] * 6], \
        f"semaphores set with no tracer: {parse(output, 'ENABLED')}"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_traced_the_workload_exits_0(runs, interpreter):
    code, _, err, _ = runs.traced(interpreter)
    assert code == 0, f"traced run exited {code}:\n{err}"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_traced_the_semaphores_of_the_py_probes_are_set(runs, interpreter):
    output, _ = runs.traced_to_the_end(interpreter)
    assert parse(output, "ENABLED") == [["0", "1", "0", "1", "0", "1"]], \
        f"py* semaphores not set while traced: {parse(output, 'ENABLED')}"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_every_py_event_names_the_file_function_and_line_that_made_it(runs, interpreter):
    output, events = runs.traced_to_the_end(interpreter)
    observed = collections.Counter(event for event in events if event[4] != 16)
    where = expected_locations(interpreter, runs.workdir(interpreter))
    expected = collections.Counter(expected_events(parse(output, "REC"), where))
    missing, unexpected = expected - observed, observed - expected
    assert not missing and not unexpected, \
        "py* events differ from the workload's records:\n  missing (expected, not seen):\n    " \
        + "\n    ".join(map(str, sorted(missing.elements()))) \
        + "\n  unexpected (seen, not expected):\n    " \
        + "\n    ".join(map(str, sorted(unexpected.elements())))


def hooked(events):
    """The events of the blocks the allocator hook (domain 16) reported."""
    return [event for event in events if event[4] == 16]


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_blocks_an_allocator_hook_reports_are_located_where_python_was(runs, interpreter):
    _, events = runs.traced_to_the_end(interpreter)
    workload = os.path.join(in_root(interpreter.root, runs.workdir(interpreter)), "workload.py")
    located = [e for e in hooked(events) if e[5] == workload
               and e[6] in ("hooked", "hooked.<locals>.<listcomp>", "<listcomp>")]
    assert located, f"no hooked allocation located in hooked(): {hooked(events)[:20]}"


@pytest.mark.parametrize("interpreter", INTERPRETERS_3_11_PLUS)
def test_the_lookups_own_allocation_through_the_hook_has_no_location(runs, interpreter):
    """On 3.11+ the lookup materialises a frame object, which comes back through the hook; the
    recursion guard must report it with no location rather than look it up again."""
    _, events = runs.traced_to_the_end(interpreter)
    assert any(e[5:] == NOWHERE for e in hooked(events) if e[0] == "pyalloc"), \
        f"3.11+: no nested (guarded) lookup seen through the allocator hook: {hooked(events)[:20]}"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_without_a_request_for_depth_the_stack_argument_is_0(runs, interpreter):
    runs.traced_to_the_end(interpreter)
    arguments = runs.stack_arguments[interpreter]
    assert arguments and set(arguments) == {0}, f"stack arguments: {sorted(set(arguments))[:5]}"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_with_pystack16_the_record_holds_the_stack_cpython_shows(runs, interpreter):
    code, err, expected, records, frames = runs.traced_with_depth(interpreter)
    assert code == 0, f"depth workload exited {code}:\n{err}"
    assert len(expected) == 4, f"the workload printed {len(expected)} stacks"
    for ptr, stack in expected.items():
        size, depth, requested, probe_location = records.get(ptr, (0, -1, -1, None))
        assert (depth, requested) == (len(stack), 16), (ptr, size, depth, requested)
        assert probe_location == tuple(stack[0]), "frame 0 is not the probe's own location"
        seen = [[file, function, line] for _, _, _, line, file, function in frames[ptr]]
        assert seen == stack + [["", "", 0]] * (16 - len(stack)), (
            f"{size}-byte block: the record\n  {seen}\nCPython's frames\n  {stack}")
        ids = [frame_id for _, frame_id, _, _, _, _ in frames[ptr]]
        assert all(ids[:len(stack)]) and not any(ids[len(stack):]), ids
        keys = [key for _, _, key, _, _, _ in frames[ptr]]
        assert keys[len(stack):] == [keys[len(stack) - 1]] * (16 - len(stack)), \
            "frames past the depth do not repeat the last stack id"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_stack_ids_are_equal_for_one_caller_and_differ_between_callers(runs, interpreter):
    _, _, expected, records, frames = runs.traced_with_depth(interpreter)
    by_size = collections.defaultdict(list)
    for ptr in expected:
        by_size[records[ptr][0]].append([key for _, _, key, _, _, _ in frames[ptr]])
    (a1, a2), (b,), (deep,) = by_size[200], by_size[300], by_size[400]
    # caller_a is called from two lines of the module: equal ids up to depth 2, not at 3.
    assert a1[:2] == a2[:2] and a1[2] != a2[2], "caller_a's two allocations: stack ids by depth"
    assert a1[0] == b[0], "one frame (allocate's line) must have one id whoever called it"
    assert a1[1] != b[1], "caller_a and caller_b give one stack id at depth 2"
    assert len(set(deep)) == 16, "a stack deeper than 16 has a distinct id at every depth"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_the_runners_pid_leak_report_holds_the_kept_blocks_at_their_line(runs, interpreter):
    """`pymemtrace-trace -p` from the host, on a process of this interpreter (in its root, as a
    container's would be): the blocks it keeps, at their line, and nothing of those it freed."""
    workdir = runs.workdir(interpreter)
    target = run_in(interpreter.root, [interpreter.python, "leak_workload.py"], cwd=workdir,
                    popen=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline() == "READY\n", "the leak workload did not start"
        out = pid_report(target, ["--report", "leaks", "--json"])
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
    source = pathlib.Path(workdir, "leak_workload.py").read_text(encoding="utf-8")
    entries = json.loads(out)
    kept = [(e["count"], e["bytes"], e["file"], e["function"]) for e in entries
            if e["line"] == line_of(source, "# LEAK")]
    assert kept == [(3, 3 * 4321, "leak_workload.py", "keep_some")], \
        f"kept blocks: {kept}; report: {entries}"
    freed = [e for e in entries if e["line"] == line_of(source, "# FREED")]
    assert not freed, f"freed blocks reported as leaks: {freed}"
