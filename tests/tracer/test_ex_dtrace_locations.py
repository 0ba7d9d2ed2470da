# SPDX-License-Identifier: MIT
"""examples/ex_dtrace.py under real bpftrace: every block a scenario allocates fires
pymemtrace:pyalloc attributed to ex_dtrace.py, the line that creates the block and the function
it is in, with the pointer and size the script prints; each block is freed, except in `leak`,
whose blocks are never freed, not even at exit.

Usage: test_ex_dtrace_locations.py PATH/TO/cMemLeak.so PYTHONPATH_DIR PATH/TO/ex_dtrace.py
Exits 77 (skipped) when not root or bpftrace is missing.
"""
import os
import pathlib
import re
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "support"))
from tracing import BpftraceSession, events, require_tracer  # noqa: E402

# scenario: (function, allocating call, domain, size)
SCENARIOS = {
    "cmalloc": ("create_cmalloc_list", "cMemLeak.CMalloc(size)", 0, 1477),
    "pyrawmalloc": ("create_pyrawmalloc_list", "cMemLeak.PyRawMalloc(size)", 1, 128),
    "pymalloc": ("create_pymalloc_list", "cMemLeak.PyMalloc(size)", 2, 128),
    "pyobjectmalloc": ("create_pyobjectmalloc_list", "cMemLeak.PyObjectMalloc(size)", 3, 128),
    "leak": ("create_leaks", "cMemLeak.CMalloc(size)", 0, 1477),
}
COUNT = 5


def allocation_line(source, function, call):
    """The line in `function` that makes a block with `call`."""
    lines = source.splitlines()
    start = lines.index(next(l for l in lines if l.startswith(f"def {function}(")))
    for number in range(start + 1, len(lines)):
        if lines[number].startswith("def "):
            break
        if call in lines[number]:
            return number + 1
    raise LookupError(f"{call} not found in {function}")


def main():
    require_tracer()
    library, pythonpath, script = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3]
    source = pathlib.Path(script).read_text()
    probe = f"usdt:{library}:pymemtrace"
    program = f'''
{probe}:pyalloc {{ printf("pyalloc %d %lu %lu %d %d %s %s\\n", pid, arg0, arg1, arg2, arg5,
                         str(arg4), str(arg3)); }}
{probe}:free {{ printf("free %d %lu %d\\n", pid, arg0, arg1); }}
'''
    failures = []
    for scenario, (function, call, domain, size) in SCENARIOS.items():
        line = allocation_line(source, function, call)
        session = BpftraceSession(program, env={**os.environ, "BPFTRACE_STRLEN": "128"}).start()
        try:
            run = subprocess.Popen([sys.executable, script, scenario, "--count", str(COUNT),
                                    "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": pythonpath})
            out, err = run.communicate("\n", timeout=120)
        finally:
            lines = session.stop()
        if run.returncode != 0:
            sys.exit(f"{scenario}: exit {run.returncode}\n{out}\n{err}")
        pid = int(re.search(r"Waiting to start tracing PID: (\d+)", out).group(1))
        created = sorted({int(m, 16) for m in
                          re.findall(r"(?:Created|Leaked) \w+ size=\d+ buffer=0x([0-9a-f]+)", out)})
        pyallocs = [e for e in events(lines, "pyalloc") if int(e[0]) == pid]
        frees = sorted(int(e[1]) for e in events(lines, "free") if int(e[0]) == pid)
        expected = [str(size), str(domain), str(line), function]
        wrong = [e for e in pyallocs if e[2:6] != expected or not e[6].endswith("ex_dtrace.py")]
        if len(pyallocs) != COUNT or wrong:
            failures.append(f"{scenario}: {len(pyallocs)} pyalloc events, expected {COUNT} at "
                            f"ex_dtrace.py:{line} in {function}; not matching: {wrong}")
        if sorted(int(e[1]) for e in pyallocs) != created or len(created) != COUNT:
            failures.append(f"{scenario}: pointers {[e[1] for e in pyallocs]} != printed {created}")
        expected_frees = [] if scenario == "leak" else created
        if frees != expected_frees:
            failures.append(f"{scenario}: frees {frees}, expected {expected_frees}")
        print(f"{scenario}: {len(pyallocs)} blocks at ex_dtrace.py:{line} in {function}, "
              f"{len(frees)} freed")
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))
    print("OK")


if __name__ == "__main__":
    main()
