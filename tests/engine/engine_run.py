# SPDX-License-Identifier: MIT
"""The engine at work for a test: runs pymemtrace-engine, collects its JSON lines as they come
(ready, attached, the report) and its stderr, and waits for one of them."""
import contextlib
import json
import os
import queue
import signal
import subprocess
import threading

PYTHON = "/usr/bin/python3"  # Debian's, which cMemLeak is built for
# Options every run of the py* programs gets: ["--batch"] when the suite runs batched (conftest).
PY_OPTIONS = []
HERE = os.path.dirname(os.path.abspath(__file__))


def workload(name):
    return os.path.join(HERE, name)


def start_python(argv, pythonpath, **kwargs):
    """Debian's Python running argv, with the built package on its path and pipes to talk to."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([PYTHON, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, text=True, **kwargs)


@contextlib.contextmanager
def bystander_beside_target(pythonpath):
    """Another user's Python allocating through the same library (bystander.py) beside a FIFO
    target of ours (fifo_workload.py): yields (bystander, its pid, the target's pid). At the end
    the bystander is asked to finish (its stdin closes) and waited for: its `returncode` says
    whether it ended normally; the target is killed."""
    from other_user import other_user  # tests/support, on the path of every engine test
    with other_user() as user:
        env = ["env", f"PYTHONPATH={pythonpath}", PYTHON, workload("bystander.py")]
        bystander = user.popen(env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        target = start_python([workload("fifo_workload.py"), "100"], pythonpath)
        try:
            yield bystander, int(bystander.stdout.readline()), int(target.stdout.readline())
        finally:
            bystander.stdin.close()
            bystander.wait(timeout=30)
            target.kill()
            target.wait()


class EngineRun:
    def __init__(self, engine, pids, libraries, extra=()):
        argv = [engine]
        for pid in pids:
            argv += ["--pid", str(pid)]
        for library in libraries:
            argv += ["--lib", library]
        if "--plain" not in extra:
            argv += PY_OPTIONS
        self.proc = subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        self.stderr = ""
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self):
        self.stderr = self.proc.stderr.read()

    def wait_for(self, event, timeout=30, **fields):
        """The first JSON line of `event` (with `fields`) not yet returned; fails on timeout or
        when the engine ended first."""
        for line in self.seen:
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                self.seen.remove(line)
                return line
        while True:
            try:
                text = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {event} line from the engine in {timeout} s; "
                                     f"seen {self.seen}") from None
            if text is None:
                self._stderr_reader.join(5)
                raise AssertionError(f"the engine ended (exit {self.proc.wait()}) before a "
                                     f"{event} line; stderr: {self.stderr}")
            line = json.loads(text)
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                return line
            self.seen.append(line)

    def signal(self, number=signal.SIGINT):
        self.proc.send_signal(number)

    def report(self, timeout=60):
        """The report line, once the engine ended; (report, exit status, other lines)."""
        report = self.wait_for("report", timeout=timeout)
        returncode = self.proc.wait(timeout=timeout)
        rest = []
        while True:
            text = self.lines.get(timeout=timeout)
            if text is None:
                break
            rest.append(json.loads(text))
        self._stderr_reader.join(5)
        return report, returncode, self.seen + rest

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def held_command(engine, argv, pythonpath, libraries, before_release=lambda pid: None,
                 extra=()):
    """Runs Debian's Python on argv, a command that waits for a line on stdin before it imports
    cMemLeak, under the engine (with options `extra`): released once the engine is ready, traced
    until it ends. before_release(pid) runs between the two. Returns (its pid, the ready line,
    the report, the engine's status, the engine's stderr)."""
    target = start_python(argv, pythonpath)
    run = EngineRun(engine, [target.pid], libraries, extra)
    try:
        ready = run.wait_for("ready")
        before_release(target.pid)
        target.stdin.write("go\n")
        target.stdin.flush()
        report, returncode, _ = run.report()  # the engine ends when its process has
    finally:
        run.close()
        target.kill()
        target.wait()
    return target.pid, ready, report, returncode, run.stderr


def semaphores(pid, library, probes=("pyalloc", "pyrealloc", "pyfree")):
    """{probe: value} of the semaphores of `library` as mapped in process `pid`."""
    from pymemtrace.trace import elf, procfs  # the tests put the source tree on sys.path
    addresses = procfs.runtime_addresses(pid, library, elf.semaphore_addresses(library, probes))
    assert addresses, f"process {pid} has not mapped {library}"
    values = {}
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for name, address in addresses.items():
            mem.seek(address)
            values[name] = int.from_bytes(mem.read(2), "little")
    return values


def entries(report, key, pid=None):
    """{(file, function, line, domain): (count, bytes)} of report[key], of one process."""
    found = {}
    for entry in report[key]:
        if pid is not None and entry["pid"] != pid:
            continue
        where = (entry["file"], entry["function"], entry["line"], entry["domain"])
        count, total = found.get(where, (0, 0))
        found[where] = (count + entry["count"], total + entry["bytes"])
    return found
