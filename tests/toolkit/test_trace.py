# SPDX-License-Identifier: MIT
"""toolkit/pymemtrace-trace's reports on real processes with real bpftrace. Run through
tests/support/run_pytest.py (exit 77 when not root or without bpftrace).

Expected locations are computed from examples/ex_dtrace.py's source, expected pointers and sizes
from what the example prints (`Created CMalloc size=1477 buffer=0x...`).
Environment: PYTHONPATH=<builddir>/src (so the example imports cMemLeak and the runner finds it).
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import pytest  # noqa: E402
from source_lines import line_in_function  # noqa: E402

RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")
EXAMPLE = os.path.join(ROOT, "examples", "ex_dtrace.py")
PYTHON = "/usr/bin/python3"  # Debian's, built --with-dtrace
SCENARIOS = {"cmalloc": ("create_cmalloc_list", "CMalloc", 0),
             "pyrawmalloc": ("create_pyrawmalloc_list", "PyRawMalloc", 1),
             "pymalloc": ("create_pymalloc_list", "PyMalloc", 2),
             "pyobjectmalloc": ("create_pyobjectmalloc_list", "PyObjectMalloc", 3)}
FLOW = re.compile(r"^\s*(\d+)\s+(\S*):(\d+)\s+-> (\S*) ?(malloc|free|realloc)\(([^)]*)\)"
                  r"(?: pntr (0x[0-9a-f]+))?(?: domain (-?\d+))?$")
CREATED = re.compile(r"^(?:Created|Leaked) (\w+) size=(\d+) buffer=0x([0-9a-f]+)$")
POPPED = re.compile(r"^Pop'd (\w+) size=(\d+) buffer=0x([0-9a-f]+)$")


def allocation_line(function, cls):
    """The line of `cMemLeak.<cls>(` inside `function` of the example."""
    return line_in_function(open(EXAMPLE).read(), function, f"cMemLeak.{cls}(")


def run(args, timeout=180, **kwargs):
    """Runs the runner; its report is read from -o, apart from the command's own output
    (one stdout would interleave the two). Returns the CompletedProcess with .report."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "report")
        result = subprocess.run([PYTHON, RUNNER, "-o", path, *args], capture_output=True,
                                text=True, timeout=timeout, **kwargs)
        result.report = open(path).read() if os.path.exists(path) else ""
    return result


def flow_events(text):
    events = []
    for line in text.splitlines():
        match = FLOW.match(line)
        if match:
            pid, file, lineno, func, op, args, ret, dom = match.groups()
            events.append({"file": file, "line": int(lineno), "function": func, "op": op,
                           "args": args, "ret": ret and int(ret, 16),
                           "domain": None if dom is None else int(dom)})
    return events


def check_flow(name, result):
    function, cls, domain = SCENARIOS[name]
    line = allocation_line(function, cls)
    output = result.stdout.splitlines()
    created = [(int(m[2]), int(m[3], 16)) for m in map(CREATED.match, output) if m]
    popped = [int(m[3], 16) for m in map(POPPED.match, output) if m]
    events = flow_events(result.report)
    allocs = {e["ret"]: e for e in events if e["op"] == "malloc"}
    frees = {int(e["args"], 16) for e in events if e["op"] == "free"}
    assert len(created) == 4 and len(popped) == 4, result.stdout
    for size, buffer in created:
        event = allocs.get(buffer)
        assert (event is not None and event["file"] == "ex_dtrace.py" and event["line"] == line
                and event["function"] == function and event["args"] == str(size)
                and event["domain"] == domain), \
            f"malloc({size}) of 0x{buffer:x} at ex_dtrace.py:{line} {function} domain {domain}: {event}"
    for buffer in popped:
        assert buffer in frees, f"free(0x{buffer:x}) not reported:\n{result.report}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_flow_shows_every_allocation_and_free_at_its_python_line(name):
    result = run(["--report", "flow", "--", PYTHON, EXAMPLE, name])
    assert result.returncode == 0, result.stderr[-300:]
    check_flow(name, result)


@pytest.mark.parametrize("name", ["cmalloc", "pyobjectmalloc"])
def test_flow_from_cpythons_own_probes_gives_the_same_lines(name):
    result = run(["--report", "flow", "--frames", "python-probes", "--", PYTHON, EXAMPLE, name])
    assert result.returncode == 0, result.stderr[-300:]
    check_flow(name, result)


@pytest.mark.parametrize("name, size", [("cmalloc", 1477), ("pymalloc", 700)])
def test_summary_totals_and_histogram_by_location(name, size):
    function, cls, domain = SCENARIOS[name]
    line = allocation_line(function, cls)
    args = ["--", PYTHON, EXAMPLE, name, "--size", str(size), "--count", "5"]
    entries = json.loads(run(["--report", "summary", "--json", *args]).report)
    mine = [e for e in entries if e["file"] == "ex_dtrace.py" and e["line"] == line]
    assert (len(mine) == 1 and mine[0]["count"] == 5 and mine[0]["bytes"] == 5 * size
            and mine[0]["function"] == function and mine[0]["domain"] == domain), \
        f"5 x {size} bytes at ex_dtrace.py:{line}: {mine}"
    text = run(["--report", "summary", "--histograms", *args]).report
    assert f"ex_dtrace.py, {function}, bytes total = {5 * size}" in text, text
    bucket = 1 << (size.bit_length() - 1)
    assert re.search(rf"^\s+{bucket} \|@+\s+5$", text, re.M), f"5 in the {bucket} bucket:\n{text}"


def test_leaks_are_exactly_the_blocks_never_freed():
    line = allocation_line("create_leaks", "CMalloc")
    result = run(["--report", "leaks", "--json", "--", PYTHON, EXAMPLE, "leak", "--count", "7",
                  "--size", "333"])
    mine = [e for e in json.loads(result.report) if e["file"] == "ex_dtrace.py"]
    assert (len(mine) == 1 and mine[0]["line"] == line and mine[0]["count"] == 7
            and mine[0]["bytes"] == 7 * 333 and mine[0]["function"] == "create_leaks"), mine
    result = run(["--report", "leaks", "--json", "--", PYTHON, EXAMPLE, "cmalloc"])
    assert not [e for e in json.loads(result.report) if e["file"] == "ex_dtrace.py"], result.report


def test_attaching_to_a_running_process_reports_it_and_it_goes_on():
    target = subprocess.Popen([PYTHON, EXAMPLE, "cmalloc", "--wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    tracer = subprocess.Popen([PYTHON, RUNNER, "--report", "summary", "--json", "-p",
                               str(target.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    attached = tracer.stderr.readline()
    assert "tracing PID" in attached, attached
    target.stdin.write("\n")
    target.stdin.flush()
    out_lines = []
    while len([l for l in out_lines if l.startswith("Pop'd")]) < 4:
        line_out = target.stdout.readline()
        if not line_out:
            break
        out_lines.append(line_out)
    tracer.send_signal(signal.SIGINT)
    out, err = tracer.communicate(timeout=120)
    target.communicate(timeout=60)
    assert target.returncode == 0, "the traced process did not exit 0"
    assert tracer.returncode == 0, err[-300:]
    entries = json.loads(out[out.index("["):]) if "[" in out else []
    line = allocation_line("create_cmalloc_list", "CMalloc")
    mine = [e for e in entries if e["file"] == "ex_dtrace.py" and e["line"] == line]
    assert len(mine) == 1 and mine[0]["count"] == 4 and mine[0]["bytes"] == 4 * 1477, entries


NAMESPACED = """\
mount -t tmpfs tmpfs /mnt
mkdir -p /mnt/pkg/pymemtrace
cp "$1"/pymemtrace/cMemLeak*.so "$1"/pymemtrace/__init__.py /mnt/pkg/pymemtrace/
exec /usr/bin/python3 -c '
import os, sys
sys.path.insert(0, "/mnt/pkg")
from pymemtrace import cMemLeak
print("ready", os.getpid(), flush=True); sys.stdin.readline()
kept = [cMemLeak.CMalloc(777) for _ in range(3)]
print("done", flush=True); sys.stdin.readline()'
"""


def test_a_process_in_its_own_mount_and_pid_namespaces_is_traced_from_the_host(tmp_path):
    """As in a container: the extension sits on a tmpfs only the target sees, and the target's
    PID inside is 1. -p takes the host's PID; the libraries are found through
    /proc/PID/map_files, not by their paths."""
    script = tmp_path / "target.sh"
    script.write_text(NAMESPACED)
    build_src = os.environ["PYTHONPATH"].split(os.pathsep)[0]
    target = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                               "bash", str(script), build_src], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        ready = target.stdout.readline().split()
        assert ready == ["ready", "1"], ready  # PID 1 in its own namespace
        with open(f"/proc/{target.pid}/task/{target.pid}/children") as listing:
            host_pid = int(listing.read().split()[0])  # unshare's child, exec'd into Python
        runner = subprocess.Popen([PYTHON, RUNNER, "--report", "leaks", "--json", "-p",
                                   str(host_pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        assert "tracing PID" in runner.stderr.readline()
        target.stdin.write("\n")
        target.stdin.flush()
        assert target.stdout.readline() == "done\n"
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err
        mine = [e for e in json.loads(out) if e["bytes"] == 3 * 777]
        assert len(mine) == 1 and mine[0]["count"] == 3, out
    finally:
        target.stdin.close()
        target.wait(timeout=30)


def test_the_commands_exit_status_is_passed_through():
    result = run(["--", PYTHON, "-c", "import sys; sys.exit(3)"])
    assert result.returncode == 3, result.stderr


def python_without_dtrace():
    """pyenv's Python, or the first python3 on PATH when it has no DTrace probes."""
    for path in ([shutil.which("python3", path=os.environ.get("PATH"))]
                 + sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3"))):
        if path and subprocess.run([path, "-c", "import sysconfig, sys; sys.exit(1 if "
                                    "sysconfig.get_config_var('WITH_DTRACE') else 0)"]
                                   ).returncode == 0:
            return path
    return None


ERRORS = [
    ("no such PID", ["-p", "999999"], None, "no process"),
    ("command fails to start", ["--", "/nonexistent/command"], None, "cannot start"),
    ("--lib without probes", ["--lib", "/bin/true", "--", PYTHON, "-c", "pass"], None,
     "no pymemtrace probes"),
    # No bpftrace: PATH no longer decides (test_bpftrace_from_system_directories.py).
    ("PID 0", ["-p", "0"], None, "a process ID is a positive number"),
    ("a PID whose memory map is hidden", ["-p", "1"], None, "PID 1"),
    ("--strlen 0", ["--strlen", "0", "--", PYTHON, "-c", "pass"], None, "give 1 to 152"),
    ("--max-entries 0", ["--max-entries", "0", "--", PYTHON, "-c", "pass"], None,
     "a positive number of map entries"),
    ("--max-entries -5", ["--max-entries", "-5", "--", PYTHON, "-c", "pass"], None,
     "a positive number of map entries"),
    ("-o on procfs", ["-o", "/proc/version", "--", PYTHON, "-c", "pass"], None, "/proc/version"),
    ("-o a full device", ["-o", "/dev/full", "--", PYTHON, EXAMPLE, "cmalloc"], None,
     "No space left on device"),
]


@pytest.mark.parametrize("what, args, extra_env, expected", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_exit_2_and_say_how_to_fix_them(what, args, extra_env, expected):
    """One line says what is wrong, another how to fix it: no traceback."""
    if "-o" in args:  # run() gives its own -o
        result = subprocess.run([PYTHON, RUNNER, *args], capture_output=True, text=True,
                                timeout=180)
    else:
        result = run(args, env=dict(os.environ, **(extra_env or {})))
    assert "Traceback" not in result.stderr, result.stderr
    how = "fix:" in result.stderr or "usage:" in result.stderr  # option errors show the usage
    assert result.returncode == 2 and expected in result.stderr and how, \
        f"{result.returncode}: {result.stderr.strip()[:300]}"


def test_a_bpftrace_that_fails_before_it_runs_fails_the_run_and_the_command_never_runs(
        tmp_path):
    """bpftrace cannot create maps of 2**40 entries: it exits before BEGIN. (A command goes to
    the engine by default, whose maps of locations stop at 2**24: bpftrace is asked for.)"""
    marker = tmp_path / "ran"
    result = run(["--engine", "bpftrace", "--max-entries", str(2 ** 40), "--", PYTHON, "-c",
                  f"open({str(marker)!r}, 'w').close()"])
    assert result.returncode == 2 and "bpftrace could not attach" in result.stderr, \
        result.stderr[-500:]
    assert not marker.exists(), "the command ran untraced"


def test_a_process_that_has_exited_is_an_error_not_an_empty_report():
    zombie = subprocess.Popen(["true"])  # never waited for until the end: a zombie
    time.sleep(0.5)
    try:
        result = run(["-p", str(zombie.pid)])
        assert result.returncode == 2 and "has exited" in result.stderr, result.stderr
    finally:
        zombie.wait()


def test_a_python_without_dtrace_is_an_error_when_its_probes_are_needed():
    python = python_without_dtrace()
    if python is None:
        pytest.skip("no Python without DTrace here")  # pyenv's are installed on CI machines
    result = run(["--frames", "python-probes", "--", python, "-c", "pass"])
    assert result.returncode == 2 and "/usr/bin/python3" in result.stderr, result.stderr


def test_not_root_is_an_error():
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             PYTHON, RUNNER, "--", PYTHON, "-c", "pass"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "root" in result.stderr, result.stderr
