# SPDX-License-Identifier: MIT
"""Real bpftrace attached to real processes, for the tracer tests.

Every tracer test starts with `require_tracer()`: not root or no bpftrace means exit 77
(meson's "skipped") with the reason printed; .ci/run turns such a skip into a failure.

`BpftraceSession` (pymemtrace.trace.session, the runner's own) runs one bpftrace program and
returns from start() once its BEGIN has run. bpftrace 0.17 runs BEGIN before it attaches USDT
probes: a test that traces a process that already runs waits with `wait_armed` until the process
sees its semaphores set. Probes given by library path (`usdt:/path/lib.so:pymemtrace:alloc`) are
system-wide, which is what sees extensions that are dlopen'ed later (bpftrace 0.17 with -p/-c
does not); tests filter on pid.
"""
import os
import shutil
import sys

# The runner's package, pymemtrace.trace, from the source tree; the built cMemLeak, when
# PYTHONPATH names the build, stays first. Both directories then hold the one package pymemtrace.
_SOURCE = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "src"))
sys.path.append(_SOURCE)
import pymemtrace  # noqa: E402

if os.path.join(_SOURCE, "pymemtrace") not in pymemtrace.__path__:
    pymemtrace.__path__.append(os.path.join(_SOURCE, "pymemtrace"))

from pymemtrace.trace import procfs  # noqa: E402
from pymemtrace.trace.procfs import mount_tracefs, wait_semaphores  # noqa: E402,F401
from pymemtrace.trace.session import BpftraceSession, READY_MARKER  # noqa: E402,F401

SKIP = 77


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


def wait_armed(session, pid, libraries, timeout=30.0):
    """Waits until process `pid` sees set the semaphores of every pymemtrace probe that the
    session's program attaches in `libraries`. bpftrace 0.17 runs BEGIN before it attaches USDT
    probes, so a session's start() alone does not mean an existing process is traced yet."""
    return procfs.wait_armed(pid, session.program, libraries, timeout)


def events(lines, tag):
    """Split the lines that start with `tag` into their whitespace-separated fields."""
    return [line.split()[1:] for line in lines if line.startswith(tag + " ")]
