# SPDX-License-Identifier: MIT
"""Real bpftrace attached to real processes, for the tracer tests.

Every tracer test starts with `require_tracer()`: not root or no bpftrace means exit 77
(meson's "skipped") with the reason printed; .ci/run turns such a skip into a failure.

`BpftraceSession` runs one bpftrace program and knows when its probes are attached: the program
gets a `BEGIN` clause printing a marker, and bpftrace runs BEGIN only after attaching every probe.
Probes given by library path (`usdt:/path/lib.so:pymemtrace:alloc`) are system-wide, which is what
sees extensions that are dlopen'ed later (bpftrace 0.17 with -p/-c does not); tests filter on pid.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

SKIP = 77
READY_MARKER = "__pymemtrace_tracer_ready__"


def skip(reason):
    print(f"SKIP: {reason}", file=sys.stderr)
    sys.exit(SKIP)


def require_tracer():
    """Exit 77 unless this process can run bpftrace."""
    if os.geteuid() != 0:
        skip("tracer tests need root (bpftrace attaches uprobes); run as root")
    if shutil.which("bpftrace") is None:
        skip("bpftrace is not installed: apt-get install bpftrace")
    mount_tracefs()


def mount_tracefs():
    """Without tracefs, bpftrace still works but warns 'failed to detach probe'."""
    if not os.path.exists("/sys/kernel/tracing/uprobe_events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
                       stderr=subprocess.DEVNULL, check=False)


class BpftraceSession:
    """A bpftrace program running in the background, attached once `start()` returns.

    A reader thread collects its output, so a test can wait for the events it expects
    (`wait_for`) before detaching: bpftrace may drop what is still in its buffers on SIGINT."""

    def __init__(self, program, args=(), positional=(), timeout=60.0, env=None):
        """`args` are bpftrace options; `positional` its $1, $2... parameters."""
        self.program = f'BEGIN {{ printf("{READY_MARKER}\\n"); }}\n{program}'
        self.args = list(args)
        self.positional = [str(p) for p in positional]
        self.timeout = timeout
        self.env = env
        self.proc = None
        self.lines = []
        self.stderr = ""
        self._ready = threading.Event()
        self._reader = None

    def start(self):
        self.proc = subprocess.Popen(
            ["bpftrace", "-B", "line", *self.args, "-e", self.program, *self.positional],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(self.timeout) or self.proc.poll() is not None:
            self.proc.kill()
            raise RuntimeError("bpftrace did not attach:\n" + self.proc.stderr.read())
        return self

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line == READY_MARKER:
                self._ready.set()
            else:
                self.lines.append(line)
        self._ready.set()

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate(lines) is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.lines)):
                return True
            time.sleep(0.05)
        return predicate(list(self.lines))

    def stop(self):
        """Detach (SIGINT, as Ctrl-C) and return every line it printed after attaching."""
        # Repeated: bpftrace 0.17 can miss a SIGINT that lands just before it blocks in
        # epoll_wait, and then waits for an event that may never come.
        deadline = time.monotonic() + self.timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=self.timeout)
        self.stderr = self.proc.stderr.read()
        return list(self.lines)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.stop()


def _runner():
    """toolkit/pymemtrace-trace as a module: its probe-arming check serves the tests too."""
    import importlib.machinery
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "toolkit", "pymemtrace-trace")
    loader = importlib.machinery.SourceFileLoader("pymemtrace_trace", os.path.realpath(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)  # load_module() is deprecated
    return module


def wait_armed(session, pid, libraries, timeout=30.0):
    """Waits until process `pid` sees set the semaphores of every pymemtrace probe that the
    session's program attaches in `libraries`. bpftrace 0.17 runs BEGIN before it attaches USDT
    probes, so a session's start() alone does not mean an existing process is traced yet."""
    return _runner().wait_armed(pid, session.program, [os.path.realpath(l) for l in libraries],
                                timeout)


def events(lines, tag):
    """Split the lines that start with `tag` into their whitespace-separated fields."""
    return [line.split()[1:] for line in lines if line.startswith(tag + " ")]
