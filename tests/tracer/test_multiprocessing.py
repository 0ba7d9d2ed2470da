#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python multiprocessing under bpftrace: with start methods fork, forkserver and spawn, worker
processes that allocate through cMemLeak all survive and are traced.

bpftrace is attached by path to cMemLeak's alloc and pyalloc probes (system-wide: it sees the
workers however they were started). The parent imports cMemLeak, waits until its own semaphores
are set, allocates (the probe sites' first hit in the parent: with 5-byte sites on a kernel with
the uprobe nop5 optimisation, `fork` workers then inherit a call into a trampoline they do not
have, die on their first allocation, and the pool waits forever), then:
  - a Pool of 2 maps 6 tasks; each allocates 3 blocks of a size unique to the task; the results
    must come back within 60 s;
  - 2 Process workers do the same; each must exit with code 0 within 60 s.
Checked: every task's 3 allocations are traced, from the pid that ran it (a worker, not the
parent), with pyalloc's Python location in the task's function.

Usage: test_multiprocessing.py PATH/TO/cMemLeak.so PYTHONPATH_DIR
Exits 77 (skipped) when not root or bpftrace is missing. Runs Debian's /usr/bin/python3.
"""
import os
import pathlib
import select
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "support"))
import tracing  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
METHODS = ("fork", "forkserver", "spawn")
TIMEOUT = 120  # the whole workload, per start method

WORKLOAD = '''\
import multiprocessing
import os
import sys

from pymemtrace import cMemLeak

BLOCKS = 3


def task(size):
    blocks = []
    for _ in range(BLOCKS):
        blocks.append(cMemLeak.CMalloc(size))  # TASK ALLOCATION
    return os.getpid(), size, [b.size for b in blocks]


def process_main(size, queue):
    queue.put(task(size))


if __name__ == "__main__":
    method = sys.argv[1]
    print("ready", os.getpid(), flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(2)
    first = cMemLeak.CMalloc(1234)  # the sites' first hit, in the parent, before any fork
    context = multiprocessing.get_context(method)
    pool = context.Pool(2)
    try:
        results = pool.map_async(task, [3000 + i for i in range(6)]).get(timeout=60)
    except multiprocessing.TimeoutError:
        print("pool timeout", flush=True)
        pool.terminate()
        sys.exit(1)
    pool.close()
    pool.join()
    for pid, size, sizes in results:
        print("pool", pid, size, *sizes, flush=True)
    queue = context.Queue()
    workers = [context.Process(target=process_main, args=(3100 + i, queue)) for i in range(2)]
    for worker in workers:
        worker.start()
    got = []
    for worker in workers:
        try:
            got.append(queue.get(timeout=60))
        except Exception:
            print("process timeout", flush=True)
    for worker in workers:
        worker.join(timeout=60)
        print("exitcode", worker.pid, worker.exitcode, flush=True)
    for pid, size, sizes in got:
        print("process", pid, size, *sizes, flush=True)
    print("parent", os.getpid(), flush=True)
'''


def program(library):
    probe = f"usdt:{library}:pymemtrace"
    return f'''
{probe}:alloc /arg1 >= 1234 && arg1 < 3200/ {{ printf("alloc %d %lu\\n", pid, arg1); }}
{probe}:pyalloc /arg1 >= 1234 && arg1 < 3200/ {{ printf("pyalloc %d %lu %s %d\\n", pid, arg1,
                                                   str(arg4), arg5); }}
'''


def readline(proc, timeout):
    """One line of the workload's stdout, or '' after `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(method, script, library, pythonpath, session):
    """Runs the workload with `method`; returns (exit code, stdout lines, stderr)."""
    proc = subprocess.Popen([PYTHON, str(script), method], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": pythonpath},
                            start_new_session=True)  # one process group: workers included
    try:
        first = readline(proc, 60).split()
        if first[:1] != ["ready"]:
            kill_group(proc)
            out, err = proc.communicate()
            return None, [" ".join(first)] + out.splitlines(), err
        if not tracing.wait_armed(session, proc.pid, [library]):
            kill_group(proc)
            out, err = proc.communicate()
            return None, ["bpftrace did not arm the probes in the parent"], err
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.returncode, out.splitlines(), err
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        return None, out.splitlines() + [f"timeout: the workload took over {TIMEOUT} s"], err
    finally:
        kill_group(proc)  # nothing of ours outlives the run


def check(method, code, out, events, failures, task_line):
    before = len(failures)

    def fail(what):
        failures.append(f"{method}: {what}")

    if code != 0:
        fail(f"the workload exited {code}: {out}")
        return False
    rows = [line.split() for line in out]
    parent = int(next(r[1] for r in rows if r[0] == "parent"))
    tasks = [(r[0], int(r[1]), int(r[2])) for r in rows if r[0] in ("pool", "process")]
    exitcodes = [(int(r[1]), r[2]) for r in rows if r[0] == "exitcode"]
    if len([t for t in tasks if t[0] == "pool"]) != 6 or len(tasks) != 8:
        fail(f"expected 6 pool results and 2 process results: {out}")
    if [c for _, c in exitcodes] != ["0", "0"]:
        fail(f"Process workers' exit codes {exitcodes}, expected 0 and 0")
    allocs = events["alloc"]
    pyallocs = events["pyalloc"]
    if (parent, 1234) not in [(p, s) for p, s, *_ in allocs]:
        fail(f"the parent's allocation (pid {parent}) was not traced")
    workers = set()
    for kind, pid, size in tasks:
        if pid == parent:
            fail(f"{kind} task of size {size} ran in the parent")
        workers.add(pid)
        traced = sum(1 for p, s in allocs if (p, s) == (pid, size))
        located = [e for e in pyallocs if (e[0], e[1]) == (pid, size)]
        if traced != 3:
            fail(f"{kind} task of size {size} in worker {pid}: {traced} alloc events, expected 3")
        if len(located) != 3 or any(e[2:] != ["task", str(task_line)] for e in located):
            fail(f"{kind} task of size {size} in worker {pid}: pyalloc events {located}, "
                 f"expected 3 in task at line {task_line}")
    print(f"{'ok' if len(failures) == before else 'FAIL'}: {method}: parent {parent}, {len(workers)} worker "
          f"pids, {len(tasks)} tasks, {sum(1 for p, _ in allocs if p in workers)} worker "
          f"allocations traced, Process exit codes {[c for _, c in exitcodes]}")
    return True


def main():
    tracing.require_tracer()
    library = os.path.realpath(sys.argv[1])
    pythonpath = sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory(prefix="pmt-multiprocessing-") as tmp:
        script = pathlib.Path(tmp) / "mp_workload.py"
        script.write_text(WORKLOAD)
        task_line = 1 + WORKLOAD.splitlines().index(
            "        blocks.append(cMemLeak.CMalloc(size))  # TASK ALLOCATION")
        for method in METHODS:
            session = tracing.BpftraceSession(program(library)).start()
            try:
                code, out, err = run(method, script, library, pythonpath, session)
                tasks = sum(1 for line in out if line.split()[:1] in (["pool"], ["process"]))
                # Wait for the events of every task (3 alloc + 3 pyalloc each) and the parent's.
                session.wait_for(lambda lines: len(tracing.events(lines, "alloc"))
                                 >= 3 * tasks + 1, timeout=10)
            finally:
                lines = session.stop()
            events = {
                "alloc": [(int(e[0]), int(e[1])) for e in tracing.events(lines, "alloc")],
                "pyalloc": [[int(e[0]), int(e[1]), *e[2:]]
                            for e in tracing.events(lines, "pyalloc")],
            }
            before = len(failures)
            check(method, code, out, events, failures, task_line)
            if len(failures) > before and err.strip():
                failures.append(f"{method}: workload stderr:\n{err}")
    if failures:
        print("\n".join("FAIL: " + f for f in failures), file=sys.stderr)
        sys.exit(1)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
