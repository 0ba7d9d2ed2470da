#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Real bpftrace attached to traced_program: every probe fires with the right pointer, size and
domain; each probe fires only while its own semaphore is set; detaching clears the semaphores
and the program carries on. Run on two builds of the program: the default one, whose sites are
1-byte nops (never optimised: no [uprobes-trampoline] mapping), and one built with
-DPYMEMTRACE_CONFIG_NOP5=1, whose 5-byte sites kernels with the uprobe nop5 optimisation (6.18+)
run through a [uprobes-trampoline] mapping, which the test then requires, so that the values
above were checked through the optimised path too.
Usage: test_probes_fire.py PATH/TO/traced_program PATH/TO/traced_program_nop5"""
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
    # The kernel optimises a 5-byte site on its first hit: look once the sequence has run.
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


def check(binary, probes, nop):
    """`nop`: the width of the binary's probe sites, 1 (default build) or 5 (NOP5=1 build)."""
    expected, seen, (during, after), optimised = trace(binary, probes)
    order = ["alloc", "pyalloc", "realloc", "pyrealloc", "free", "pyfree"]
    assert during == [1 if p in probes else 0 for p in order], \
        f"with {probes} attached, semaphores are {during}"
    assert after == [0] * 6, f"semaphores still set after the tracer detached: {after}"
    wanted = [e for e in expected if e[0] in probes]
    assert seen == wanted, "events differ:\n  expected %s\n  seen     %s" % (wanted, seen)
    release = tuple(int(n) for n in platform.release().split(".")[:2])
    if nop == 1:
        assert not optimised, "a 1-byte nop site was run through [uprobes-trampoline]"
    elif release >= (6, 18):
        assert optimised, "kernel 6.18+ should run nop5 probe sites through [uprobes-trampoline]"
    print(f"ok: {nop}-byte sites, {len(seen)} events from {sorted(probes)}, semaphores {during} "
          f"then {after}, {'optimised nop5 path' if optimised else 'int3 path'}")


def main():
    tracing.require_tracer()
    for nop, path in ((1, sys.argv[1]), (5, sys.argv[2])):
        binary = os.path.realpath(path)
        check(binary, set(FIELDS), nop)              # every probe, plain and py, at once
        check(binary, {"alloc"}, nop)                # one probe: only its semaphore, only its events
        check(binary, {"pyalloc", "pyrealloc", "pyfree"}, nop)  # a Python-location tracer's probes
    print("2 passed, 0 failed")


if __name__ == "__main__":
    main()
