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

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace) with
--cmemleak PATH --pythonpath DIR (tests/tracer/meson.build passes them). Runs Debian's
/usr/bin/python3; each start method passes or fails on its own.
"""
import os
import pathlib
import select
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "support"))
import tracing  # noqa: E402
from source_lines import line_of  # noqa: E402

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


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """The workload script, and the line of task() that allocates."""
    script = tmp_path_factory.mktemp("pmt-multiprocessing-") / "mp_workload.py"
    script.write_text(WORKLOAD)
    return script, line_of(WORKLOAD, "# TASK ALLOCATION")


@pytest.fixture(scope="module", params=METHODS)
def finished(request, workload, cmemleak, pythonpath):
    """The workload run under bpftrace with one start method; it must have finished, exit 0.
    Returns its parent pid, [(kind, worker pid, size)] tasks, [(pid, exit code)] Process
    workers, [(pid, size)] alloc events, [[pid, size, function, line]] pyalloc events and the
    line of task() that allocates."""
    method = request.param
    script, task_line = workload
    session = tracing.BpftraceSession(program(cmemleak)).start()
    try:
        code, out, err = run(method, script, cmemleak, pythonpath, session)
        tasks = sum(1 for line in out if line.split()[:1] in (["pool"], ["process"]))
        # Wait for the events of every task (3 alloc + 3 pyalloc each) and the parent's.
        session.wait_for(lambda lines: min(len(tracing.events(lines, "alloc")),
                                           len(tracing.events(lines, "pyalloc")))
                         >= 3 * tasks + 1, timeout=10)
    finally:
        lines = session.stop()
    assert code == 0, f"{method}: the workload exited {code}: {out}\nworkload stderr:\n{err}"
    rows = [line.split() for line in out]
    return {
        "method": method,
        "stderr": err,
        "parent": int(next(r[1] for r in rows if r[0] == "parent")),
        "tasks": [(r[0], int(r[1]), int(r[2])) for r in rows if r[0] in ("pool", "process")],
        "exitcodes": [(int(r[1]), r[2]) for r in rows if r[0] == "exitcode"],
        "allocs": [(int(e[0]), int(e[1])) for e in tracing.events(lines, "alloc")],
        "pyallocs": [[int(e[0]), int(e[1]), *e[2:]] for e in tracing.events(lines, "pyalloc")],
        "task_line": task_line,
        "out": out,
    }


def test_every_pool_task_and_process_worker_returns_its_result(finished):
    kinds = [kind for kind, _, _ in finished["tasks"]]
    assert kinds.count("pool") == 6 and len(kinds) == 8, \
        f"{finished['method']}: expected 6 pool results and 2 process results: {finished['out']}"


def test_process_workers_exit_0(finished):
    codes = [code for _, code in finished["exitcodes"]]
    assert codes == ["0", "0"], \
        f"{finished['method']}: Process workers' exit codes {finished['exitcodes']}, expected 0 " \
        f"and 0\nworkload stderr:\n{finished['stderr']}"


def test_the_parents_allocation_before_starting_workers_is_traced(finished):
    assert (finished["parent"], 1234) in finished["allocs"], \
        f"{finished['method']}: the parent's allocation (pid {finished['parent']}) was not " \
        f"traced: {finished['allocs']}"


def test_every_task_runs_in_a_worker_not_in_the_parent(finished):
    in_parent = [task for task in finished["tasks"] if task[1] == finished["parent"]]
    assert not in_parent, \
        f"{finished['method']}: tasks ran in the parent ({finished['parent']}): {in_parent}"


def test_every_allocation_of_a_worker_is_traced_with_the_workers_pid(finished):
    wrong = {}
    for kind, pid, size in finished["tasks"]:
        traced = finished["allocs"].count((pid, size))
        if traced != 3:
            wrong[f"{kind} task of size {size} in worker {pid}"] = traced
    assert not wrong, f"{finished['method']}: alloc events per task, expected 3 each: {wrong}"


def test_every_allocation_of_a_worker_is_located_in_task(finished):
    expected = ["task", str(finished["task_line"])]
    wrong = {}
    for kind, pid, size in finished["tasks"]:
        located = [e for e in finished["pyallocs"] if (e[0], e[1]) == (pid, size)]
        if len(located) != 3 or any(e[2:] != expected for e in located):
            wrong[f"{kind} task of size {size} in worker {pid}"] = located
    assert not wrong, \
        f"{finished['method']}: pyalloc events, expected 3 each in task at line " \
        f"{finished['task_line']}: {wrong}"
