#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Real bpftrace attached to traced_program: every probe fires with the right pointer, size and
domain; each probe fires only while its own semaphore is set; detaching clears the semaphores
and the program carries on. The sites are 5-byte nops: on kernels with the uprobe nop5
optimisation (6.18+) the test also checks that the kernel took the optimised path (a
[uprobes-trampoline] mapping), so the values above were checked through it.
Usage: test_probes_fire.py PATH/TO/traced_program"""
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
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


def trace(binary, probes):
    """Runs the program's sequence with `probes` attached; returns (expected, seen, semaphores)."""
    # One CPU: events reach bpftrace in the order they happened.
    proc = subprocess.Popen(["taskset", "-c", "0", binary], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    before = read_semaphores(proc)
    assert before == [0] * 6, f"semaphores set with no tracer attached: {before}"
    session = tracing.BpftraceSession(program_for(binary, probes), positional=[proc.pid]).start()
    assert tracing.wait_armed(session, proc.pid, [binary]), "bpftrace did not arm the probes"
    proc.stdin.write("go\n")
    proc.stdin.flush()
    during = read_semaphores(proc)
    expected = []
    for line in iter(proc.stdout.readline, ""):
        if line.strip() == "done":
            break
        expected.append(parse(line.split()[1:]))
    # The kernel optimises a nop5 site on its first hit: look once the sequence has run.
    with open(f"/proc/{proc.pid}/maps") as maps:
        optimised = "[uprobes-trampoline]" in maps.read()
    wanted = [e for e in expected if e[0] in probes]
    session.wait_for(lambda lines: sum(1 for l in lines if l.split()[:1] and l.split()[0] in probes)
                     >= len(wanted))
    lines = session.stop()
    proc.stdin.write("detached\n")
    proc.stdin.flush()
    after = read_semaphores(proc)
    assert proc.wait(timeout=30) == 0, "the traced program did not exit cleanly"
    seen = [parse(line.split()) for line in lines if line.split() and line.split()[0] in FIELDS]
    return expected, seen, (during, after), optimised


def check(binary, probes):
    expected, seen, (during, after), optimised = trace(binary, probes)
    order = ["alloc", "pyalloc", "realloc", "pyrealloc", "free", "pyfree"]
    assert during == [1 if p in probes else 0 for p in order], \
        f"with {probes} attached, semaphores are {during}"
    assert after == [0] * 6, f"semaphores still set after the tracer detached: {after}"
    wanted = [e for e in expected if e[0] in probes]
    assert seen == wanted, "events differ:\n  expected %s\n  seen     %s" % (wanted, seen)
    release = tuple(int(n) for n in platform.release().split(".")[:2])
    if release >= (6, 18):
        assert optimised, "kernel 6.18+ should run nop5 probe sites through [uprobes-trampoline]"
    print(f"ok: {len(seen)} events from {sorted(probes)}, semaphores {during} then {after}, "
          f"{'optimised nop5 path' if optimised else 'int3 path'}")


def main():
    tracing.require_tracer()
    binary = os.path.realpath(sys.argv[1])
    check(binary, set(FIELDS))              # every probe, plain and py, at once
    check(binary, {"alloc"})                # one probe: only its semaphore, only its events
    check(binary, {"pyalloc", "pyrealloc", "pyfree"})  # what a Python-location tracer attaches
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
