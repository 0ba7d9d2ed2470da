#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""toolkit/pymemtrace-trace on real processes with real bpftrace (root; exit 77 otherwise).

Expected locations are computed from examples/ex_dtrace.py's source, expected pointers and sizes
from what the example prints (`Created CMalloc size=1477 buffer=0x...`).
Environment: PYTHONPATH=<builddir>/src (so the example imports cMemLeak and the runner finds it).
"""
import ast
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
from tracing import require_tracer  # noqa: E402

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

failures = []


def check(condition, what):
    print(("ok: " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)
    return condition


def allocation_line(function, cls):
    """The line of `cMemLeak.<cls>(...)` inside `function` of the example."""
    tree = ast.parse(open(EXAMPLE).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for call in ast.walk(node):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == cls):
                    return call.lineno
    raise LookupError(f"no cMemLeak.{cls}() in {function}")


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


def check_flow(name, result, label):
    function, cls, domain = SCENARIOS[name]
    line = allocation_line(function, cls)
    output = result.stdout.splitlines()
    created = [(int(m[2]), int(m[3], 16)) for m in map(CREATED.match, output) if m]
    popped = [int(m[3], 16) for m in map(POPPED.match, output) if m]
    events = flow_events(result.report)
    allocs = {e["ret"]: e for e in events if e["op"] == "malloc"}
    frees = {int(e["args"], 16) for e in events if e["op"] == "free"}
    check(len(created) == 4 and len(popped) == 4, f"{label}: example made and popped 4 blocks")
    for size, buffer in created:
        event = allocs.get(buffer)
        check(event is not None and event["file"] == "ex_dtrace.py" and event["line"] == line
              and event["function"] == function and event["args"] == str(size)
              and event["domain"] == domain,
              f"{label}: malloc({size}) of 0x{buffer:x} at ex_dtrace.py:{line} {function} "
              f"domain {domain} (got {event})")
    for buffer in popped:
        check(buffer in frees, f"{label}: free(0x{buffer:x}) reported")


def main():
    require_tracer()
    env = dict(os.environ)

    # 1. flow, per scenario, with the py* probes and with CPython's probes.
    for name in SCENARIOS:
        result = run(["--report", "flow", "--", PYTHON, EXAMPLE, name])
        check(result.returncode == 0, f"flow {name}: exit 0 ({result.stderr.strip()[-300:]})")
        check_flow(name, result, f"flow {name}")
    for name in ("cmalloc", "pyobjectmalloc"):
        result = run(["--report", "flow", "--frames", "python-probes", "--", PYTHON, EXAMPLE, name])
        check(result.returncode == 0, f"python-probes {name}: exit 0 ({result.stderr[-300:]})")
        check_flow(name, result, f"python-probes flow {name}")

    # 2. summary: totals by location equal the bytes allocated; the text histogram agrees.
    for name, size in (("cmalloc", 1477), ("pymalloc", 700)):
        function, cls, domain = SCENARIOS[name]
        line = allocation_line(function, cls)
        result = run(["--report", "summary", "--json", "--", PYTHON, EXAMPLE, name,
                      "--size", str(size), "--count", "5"])
        entries = json.loads(result.report)
        mine = [e for e in entries if e["file"] == "ex_dtrace.py" and e["line"] == line]
        check(len(mine) == 1 and mine[0]["count"] == 5 and mine[0]["bytes"] == 5 * size
              and mine[0]["function"] == function and mine[0]["domain"] == domain,
              f"summary {name}: 5 x {size} bytes at ex_dtrace.py:{line} ({mine})")
        text = run(["--report", "summary", "--", PYTHON, EXAMPLE, name, "--size", str(size),
                    "--count", "5"]).report
        check(f"ex_dtrace.py, {function}, bytes total = {5 * size}" in text,
              f"summary {name}: histogram total {5 * size}")
        bucket = 1 << (size.bit_length() - 1)
        check(re.search(rf"^\s+{bucket} \|@+\s+5$", text, re.M) is not None,
              f"summary {name}: 5 in the {bucket} bucket")

    # 3. leaks: N leaked blocks of the right size at the right line, nothing else there.
    line = allocation_line("create_leaks", "CMalloc")
    result = run(["--report", "leaks", "--json", "--", PYTHON, EXAMPLE, "leak", "--count", "7",
                  "--size", "333"])
    entries = json.loads(result.report)
    mine = [e for e in entries if e["file"] == "ex_dtrace.py"]
    check(len(mine) == 1 and mine[0]["line"] == line and mine[0]["count"] == 7
          and mine[0]["bytes"] == 7 * 333 and mine[0]["function"] == "create_leaks",
          f"leaks: exactly 7 x 333 bytes at ex_dtrace.py:{line} ({mine})")
    result = run(["--report", "leaks", "--json", "--", PYTHON, EXAMPLE, "cmalloc"])
    entries = json.loads(result.report)
    check(not [e for e in entries if e["file"] == "ex_dtrace.py"], "leaks: cmalloc leaks nothing")

    # 4. -p on a waiting process: attach, Enter, work, Ctrl-C the runner; the process goes on.
    target = subprocess.Popen([PYTHON, EXAMPLE, "cmalloc", "--wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)
    tracer = subprocess.Popen([PYTHON, RUNNER, "--report", "summary", "--json", "-p",
                               str(target.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    attached = tracer.stderr.readline()
    check("tracing PID" in attached, f"-p: runner attached ({attached.strip()})")
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
    rest, _ = target.communicate(timeout=60)
    check(target.returncode == 0, f"-p: the traced process exited 0 (got {target.returncode})")
    check(tracer.returncode == 0, f"-p: the runner exited 0 on Ctrl-C ({err.strip()[-300:]})")
    entries = json.loads(out[out.index("["):]) if "[" in out else []
    line = allocation_line("create_cmalloc_list", "CMalloc")
    mine = [e for e in entries if e["file"] == "ex_dtrace.py" and e["line"] == line]
    check(len(mine) == 1 and mine[0]["count"] == 4 and mine[0]["bytes"] == 4 * 1477,
          f"-p: 4 x 1477 bytes at ex_dtrace.py:{line} ({mine})")

    # 5. exit status passed through; errors exit 2 with their fix.
    cmalloc = None
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        directory = os.path.join(entry, "pymemtrace")
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.startswith("cMemLeak") and name.endswith(".so"):
                    cmalloc = os.path.join(directory, name)
    result = run(["--", PYTHON, "-c", "import sys; sys.exit(3)"])
    check(result.returncode == 3, f"exit status 3 passed through (got {result.returncode})")
    cases = [
        ("no such PID", ["-p", "999999"], None, "no process"),
        ("command fails to start", ["--", "/nonexistent/command"], None, "cannot start"),
        ("--lib without probes", ["--lib", "/bin/true", "--", PYTHON, "-c", "pass"], None,
         "no pymemtrace probes"),
        ("no bpftrace", ["--", PYTHON, "-c", "pass"], {"PATH": "/nonexistent"},
         "apt-get install bpftrace"),
    ]
    # A Python without DTrace: pyenv's, or the first python3 on PATH when it has none.
    no_dtrace = [p for p in [shutil.which("python3", path=os.environ.get("PATH"))]
                 + sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3"))
                 if p and subprocess.run([p, "-c", "import sysconfig, sys; sys.exit(1 if "
                                          "sysconfig.get_config_var('WITH_DTRACE') else 0)"]
                                         ).returncode == 0]
    if no_dtrace:
        cases.append(("Python without DTrace", ["--frames", "python-probes", "--",
                                                no_dtrace[0], "-c", "pass"], None,
                      "/usr/bin/python3"))
    else:
        print("note: no Python without DTrace here; that error case is not exercised")
    for what, args, extra_env, expected in cases:
        case_env = dict(env, **(extra_env or {}))
        result = run(args, env=case_env)
        check(result.returncode == 2 and expected in result.stderr and "fix:" in result.stderr,
              f"error '{what}': exit 2 with '{expected}' ({result.returncode}: "
              f"{result.stderr.strip()[:200]})")
    if shutil.which("setpriv"):
        result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 PYTHON, RUNNER, "--", PYTHON, "-c", "pass"],
                                capture_output=True, text=True, timeout=60)
        check(result.returncode == 2 and "root" in result.stderr,
              f"error 'not root': exit 2 ({result.stderr.strip()[:200]})")

    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
