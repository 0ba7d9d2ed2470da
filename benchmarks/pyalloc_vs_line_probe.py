#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What knowing the Python location of an allocation costs: pymemtrace's pyalloc against the
seed's way (following CPython's own line probes). One run, as root, with bpftrace, on a Python
built --with-dtrace (Debian's /usr/bin/python3):

    sudo python3 benchmarks/pyalloc_vs_line_probe.py [--python /usr/bin/python3] [-n 100000]

Builds a tiny extension (its C source is below) whose `alloc(size)` mallocs and frees through
pymemtrace_malloc/pymemtrace_free, and times, inside the process, N calls made from three nested
Python functions, in four ways:
  untraced          no tracer
  alloc             bpftrace counting pymemtrace:alloc
  pyalloc           bpftrace aggregating pymemtrace:pyalloc by file, function, line
  line+alloc        bpftrace keeping the location per thread from python:function__entry and
                    python:line, and counting pymemtrace:alloc by it (the seed's way)
bpftrace attaches with -p to the already running process, so no other process is slowed.
Prints seconds and the ratio to untraced; compare ratios within one run, not across machines.
"""
import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))
from tracing import BpftraceSession, require_tracer  # noqa: E402  (the runner's session)

EXTENSION = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pymemtrace/python.h>

static PyObject *alloc(PyObject *self, PyObject *arg)
{
    size_t size = PyLong_AsSize_t(arg);
    (void)self;
    if (size == (size_t)-1 && PyErr_Occurred())
        return NULL;
    pymemtrace_free(pymemtrace_malloc(size));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"alloc", alloc, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "bench_ext", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_bench_ext(void) { return PyModule_Create(&def); }
"""

WORKLOAD = r"""
import sys, time
import bench_ext

def level3(i):
    bench_ext.alloc(64 + i % 64)

def level2(i):
    level3(i)

def level1(n):
    for i in range(n):
        level2(i)

print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter()
level1(int(sys.argv[1]))
print(f"{time.perf_counter() - start:.6f}", flush=True)
"""


def programs(so, python_binary):
    where = f"""
usdt:{python_binary}:python:function__entry,
usdt:{python_binary}:python:line {{ @file[tid] = str(arg0); @func[tid] = str(arg1); @line[tid] = arg2; }}
"""
    return [
        ("untraced", None),
        ("alloc", f"usdt:{so}:pymemtrace:alloc {{ @allocs = count(); }}"),
        ("pyalloc", f"usdt:{so}:pymemtrace:pyalloc {{ @[str(arg3), str(arg4), arg5] = count(); }}"),
        ("line+alloc", where + f"usdt:{so}:pymemtrace:alloc "
                               "{ @[@file[tid], @func[tid], @line[tid]] = count(); }"),
    ]


def build(python, workdir):
    include = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('INCLUDEPY'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    source = os.path.join(workdir, "bench_ext.c")
    with open(source, "w") as out:
        out.write(EXTENSION)
    so = os.path.join(workdir, "bench_ext.so")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-isystem", include,
                    "-I", os.path.join(HERE, "..", "include"), source, "-o", so], check=True)
    with open(os.path.join(workdir, "workload.py"), "w") as out:
        out.write(WORKLOAD)
    return so


def run(python, workdir, n, program):
    proc = subprocess.Popen([python, os.path.join(workdir, "workload.py"), str(n)], cwd=workdir,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    session = (BpftraceSession(program, options=["-p", str(proc.pid)]).start() if program
               else None)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    seconds = float(proc.stdout.readline())
    proc.wait()
    summary = ""
    if session:
        session.stop()
        lines = [line for line in session.lines + session.map_lines() if line.strip()]
        summary = max(lines, key=lambda line: int(line.rsplit(" ", 1)[-1]) if line.rsplit(" ", 1)[-1].isdigit() else -1)
    return seconds, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("-n", type=int, default=100000)
    options = parser.parse_args()
    require_tracer()
    python = os.path.realpath(shutil.which(options.python) or options.python)
    version, dtrace = subprocess.run(
        [python, "-c", "import sys, sysconfig; print(sys.version.split()[0], sysconfig.get_config_var('WITH_DTRACE') or 0)"],
        capture_output=True, text=True, check=True).stdout.split()
    if dtrace != "1":
        sys.exit(f"{python} is not built --with-dtrace: it has no python:line probe to compare with")
    workdir = tempfile.mkdtemp(prefix="pmtbench")
    try:
        so = build(python, workdir)
        print(f"{python} {version}, N={options.n}")
        base = None
        for name, program in programs(so, python):
            seconds, summary = run(python, workdir, options.n, program)
            base = base or seconds
            print(f"{name:<11} {seconds:8.3f} s  {seconds / base:7.1f}x  {summary}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
