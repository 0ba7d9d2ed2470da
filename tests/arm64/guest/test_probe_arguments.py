# SPDX-License-Identifier: MIT
"""Inside the arm64 guest: bpftrace reads every argument of the six probes, pyalloc's and
pyrealloc's seventh (`stack`, a register on arm64: x6) included, as the program passed it: the
aarch64 argument strings of probes.h (`8@x0 8@x1 -4@x2 ...`) name the right register, size and
sign. Run through tests/support/run_pytest.py with --probe-arguments PATH.
"""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "support"))
from tracing import BpftraceSession  # noqa: E402

# Each probe's arguments as bpftrace prints them ("p": hex, "i": decimal, "s": a string).
FIELDS = {
    "alloc": "pii", "realloc": "ppii", "free": "pi",
    "pyalloc": "piissip", "pyrealloc": "ppissip", "pyfree": "pissip",
}
CONVERSIONS = {"p": "%lx", "i": "%ld", "s": "%s"}


def program(binary):
    clauses = []
    for probe, kinds in FIELDS.items():
        formats = " ".join(CONVERSIONS[k] for k in kinds)
        args = ", ".join(f"str(arg{n})" if k == "s" else f"arg{n}" for n, k in enumerate(kinds))
        clauses.append(f'usdt:{binary}:pymemtrace:{probe} {{ printf("{probe} {formats}\\n", '
                       f'{args}); }}')
    return "\n".join(clauses)


def parse(words):
    probe, values = words[0], words[1:]
    assert len(values) == len(FIELDS[probe]), words
    return (probe,) + tuple(int(v, 16) if k == "p" else int(v) if k == "i" else v
                            for k, v in zip(FIELDS[probe], values))


@pytest.fixture(scope="module")
def traced(probe_arguments):
    """(events the program says it fired, events bpftrace saw, the program's exit status)."""
    session = BpftraceSession(program(probe_arguments)).start()
    try:
        run = subprocess.run([probe_arguments], capture_output=True, text=True, timeout=120)
        expected = [parse(line.split()[1:]) for line in run.stdout.splitlines()
                    if line.startswith("expect ")]
        session.wait_for(lambda lines: sum(1 for l in lines if l.split()[:1]
                                           and l.split()[0] in FIELDS) >= len(expected),
                         timeout=20)
    finally:
        lines = session.stop()
    seen = [parse(line.split()) for line in lines if line.split()[:1] and line.split()[0] in FIELDS]
    return expected, seen, run.returncode


def test_the_program_saw_every_semaphore_set_and_fired_all_six_probes(traced):
    expected, _, returncode = traced
    assert returncode == 0, "the program never saw every semaphore set (exit 1)"
    assert [e[0] for e in expected] == list(FIELDS)


@pytest.mark.parametrize("probe", list(FIELDS))
def test_every_argument_reaches_bpftrace_as_the_program_passed_it(traced, probe):
    expected, seen, _ = traced
    mine = [e for e in seen if e[0] == probe]
    wanted = [e for e in expected if e[0] == probe]
    assert mine == wanted, f"{probe}: bpftrace read {mine}, the program passed {wanted}"
