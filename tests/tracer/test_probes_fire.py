# SPDX-License-Identifier: MIT
"""Real bpftrace attached to traced_program: every probe fires with the right pointer, size and
domain; each probe fires only while its own semaphore is set; detaching clears the semaphores
and the program carries on. Run on two builds of the program: the default one, whose sites are
1-byte nops (never optimised: no [uprobes-trampoline] mapping), and one built with
-DPYMEMTRACE_CONFIG_NOP5=1, whose 5-byte sites kernels with the uprobe nop5 optimisation (6.18+)
run through a [uprobes-trampoline] mapping, which the test then requires, so that the values
above were checked through the optimised path too. Each build is traced with three sets of
probes: every one, `alloc` alone, and the three a Python-location tracer attaches.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace) with
--traced-program PATH --traced-program-nop5 PATH (tests/tracer/meson.build passes them).
"""
import collections
import os
import platform
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402

# Each probe's fields as bpftrace prints them, and how to compare them.
FIELDS = {
    "alloc": "pii",
    "realloc": "ppii",
    "free": "pi",
    "pyalloc": "piissi",
    "pyrealloc": "ppissi",
    "pyfree": "pissi",
}
FORMATS = {
    "alloc": ('"alloc %lx %lu %d\\n", arg0, arg1, arg2'),
    "realloc": ('"realloc %lx %lx %lu %d\\n", arg0, arg1, arg2, arg3'),
    "free": ('"free %lx %d\\n", arg0, arg1'),
    "pyalloc": ('"pyalloc %lx %lu %d \'%s\' \'%s\' %d\\n", arg0, arg1, arg2, str(arg3), str(arg4), arg5'),
    "pyrealloc": ('"pyrealloc %lx %lx %lu \'%s\' \'%s\' %d\\n", arg0, arg1, arg2, str(arg3), str(arg4), arg5'),
    "pyfree": ('"pyfree %lx %d \'%s\' \'%s\' %d\\n", arg0, arg1, str(arg2), str(arg3), arg4'),
}
# The order of the semaphores in the program's `semaphores` lines.
SEMAPHORE_ORDER = ["alloc", "pyalloc", "realloc", "pyrealloc", "free", "pyfree"]
PROBE_SETS = {
    "every-probe": set(FIELDS),                          # plain and py, at once
    "alloc-alone": {"alloc"},                            # only its semaphore, only its events
    "py-probes": {"pyalloc", "pyrealloc", "pyfree"},     # a Python-location tracer's probes
}

# What one traced run of the program gave: semaphores before, during and after the tracer, the
# events the program says it made and those bpftrace saw, whether the kernel ran a site through
# [uprobes-trampoline], and the program's exit status.
Trace = collections.namedtuple(
    "Trace", "nop probes before during after expected seen optimised returncode")


def parse(words):
    """('alloc', '0x55..', '100', '0') -> ('alloc', 0x55.., 100, 0)"""
    probe, values = words[0], words[1:]
    kinds = FIELDS[probe]
    assert len(values) == len(kinds), words
    return (probe,) + tuple(int(v, 16) if k == "p" else int(v) if k == "i" else v.strip("'")
                            for k, v in zip(kinds, values))


def program_for(binary, probes):
    return "\n".join(f"usdt:{binary}:pymemtrace:{p} /pid == $1/ {{ printf({FORMATS[p]}); }}"
                     for p in probes)


def read_semaphores(proc):
    words = proc.stdout.readline().split()
    assert words and words[0] == "semaphores", words
    return [int(w) for w in words[1:]]


def trace(binary, probes, nop):
    """Runs the program's sequence with `probes` attached."""
    # One CPU: events reach bpftrace in the order they happened.
    proc = subprocess.Popen(["taskset", "-c", "0", binary], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    session = None
    try:
        before = read_semaphores(proc)
        session = tracing.BpftraceSession(program_for(binary, probes),
                                          positional=[proc.pid]).start()
        assert tracing.wait_armed(session, proc.pid, [binary]), "bpftrace did not arm the probes"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        during = read_semaphores(proc)
        expected = []
        for line in iter(proc.stdout.readline, ""):
            if line.strip() == "done":
                break
            expected.append(parse(line.split()[1:]))
        # The kernel optimises a 5-byte site on its first hit: look once the sequence has run.
        with open(f"/proc/{proc.pid}/maps") as maps:
            optimised = "[uprobes-trampoline]" in maps.read()
        wanted = [e for e in expected if e[0] in probes]
        session.wait_for(lambda lines: sum(1 for l in lines
                                           if l.split()[:1] and l.split()[0] in probes)
                         >= len(wanted))
        lines = session.stop()
        session = None
        proc.stdin.write("detached\n")
        proc.stdin.flush()
        after = read_semaphores(proc)
        returncode = proc.wait(timeout=30)
    finally:
        if session is not None:
            session.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen = [parse(line.split()) for line in lines if line.split() and line.split()[0] in FIELDS]
    return Trace(nop, probes, before, during, after, wanted, seen, optimised, returncode)


@pytest.fixture(scope="module", params=[1, 5], ids=["1-byte-sites", "5-byte-sites"])
def build(request, traced_program, traced_program_nop5):
    """(width of the probe sites, the program built with them)."""
    return request.param, traced_program if request.param == 1 else traced_program_nop5


@pytest.fixture(scope="module", params=list(PROBE_SETS))
def traced(request, build):
    nop, binary = build
    return trace(binary, PROBE_SETS[request.param], nop)


def test_no_semaphore_is_set_before_a_tracer_attaches(traced):
    assert traced.before == [0] * 6, f"semaphores set with no tracer attached: {traced.before}"


def test_exactly_the_semaphores_of_the_attached_probes_are_set(traced):
    wanted = [1 if p in traced.probes else 0 for p in SEMAPHORE_ORDER]
    assert traced.during == wanted, \
        f"with {sorted(traced.probes)} attached, semaphores ({SEMAPHORE_ORDER}) are " \
        f"{traced.during}, expected {wanted}"


def test_every_event_of_the_attached_probes_arrives_with_its_values_and_no_other(traced):
    assert traced.seen == traced.expected, \
        "events differ:\n  expected %s\n  seen     %s" % (traced.expected, traced.seen)


def test_detaching_clears_every_semaphore(traced):
    assert traced.after == [0] * 6, \
        f"semaphores still set after the tracer detached: {traced.after}"


def test_the_program_carries_on_and_exits_0_after_the_tracer_detaches(traced):
    assert traced.returncode == 0, f"the traced program exited {traced.returncode}"


def test_1_byte_sites_are_never_optimised_and_5_byte_sites_are_on_kernel_6_18(traced):
    """5-byte sites on an older kernel: nothing to require (the int3 path, like 1-byte ones)."""
    release = tuple(int(n) for n in platform.release().split("-")[0].split(".")[:2])
    if traced.nop == 1:
        assert not traced.optimised, "a 1-byte nop site was run through [uprobes-trampoline]"
    elif release >= (6, 18):
        assert traced.optimised, \
            f"kernel {platform.release()} should run nop5 probe sites through [uprobes-trampoline]"
