# SPDX-License-Identifier: MIT
"""The options of `--frames python-probes`, `--libc` and `--object-allocator` on the libbpf
engine (issue 20: "no mode may slow processes it does not trace"): --histograms, --no-follow and
--interval give the bpftrace runner's report (bpftrace has no snapshots in these modes: the
engine's last one is its leaks report), and another user's Python keeps its semaphores at 0 and
its allocator free of breakpoints while the engine traces with them. Run through
tests/support/run_pytest.py, as root."""
import json
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, HERE)
from runner import BUILD_SRC, PYTHON, RUNNER  # noqa: E402
from source_lines import tagged_lines  # noqa: E402
import test_engine_python_probes as probes  # noqa: E402  (bystander_while_traced, MODES)

MODES = probes.MODES
ENGINES = ("libbpf", "bpftrace")
BUCKET_ROW = re.compile(r"^ +(\d+) \|@* *(\d+)$")

# Blocks of known sizes from the extension's C heap (CMalloc: libc's malloc) and Python's
# object allocator (PyObjectMalloc), held; two of each freed; then it idles SECONDS (argv[2]) for
# snapshots and ends holding what it holds.
SIZES = {1: 2, 3: 1, 7: 3, 8: 1, 1000: 4, 1024: 2, 70000: 1}
WORKLOAD = f"""\
import os, sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
kept = [None] * 64
def inner(i, size):
    kept[2 * i] = cMemLeak.CMalloc(size)
    kept[2 * i + 1] = cMemLeak.PyObjectMalloc(size)
def churn():
    for size in (40, 4000):
        cMemLeak.CMalloc(size)
        cMemLeak.PyObjectMalloc(size)
i = 0
for size, times in {SIZES!r}.items():
    for _ in range(times):
        inner(i, size)
        i += 1
churn()
time.sleep(float(sys.argv[2]))
os._exit(0)
"""

# A parent that holds blocks before and after a fork, and a child that holds its own.
FORKS = """\
import os, sys
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
held = [cMemLeak.CMalloc(1111), cMemLeak.PyObjectMalloc(1111)]  # ALLOC: parent
child = os.fork()
if child == 0:
    mine = [cMemLeak.CMalloc(2000), cMemLeak.PyObjectMalloc(2000)]  # ALLOC: child
    os._exit(0)
os.waitpid(child, 0)
held += [cMemLeak.CMalloc(3333), cMemLeak.PyObjectMalloc(3333)]  # ALLOC: after
os._exit(0)
"""


def traced(engine, options, source, tmp_path, seconds="0"):
    """(exit status, report, stderr) of the runner on `engine` with `options` on `source` run as
    its command."""
    script = tmp_path / "workload.py"
    script.write_text(source)
    report = tmp_path / f"report.{engine}"
    result = subprocess.run([PYTHON, "-I", RUNNER, "-o", str(report), "--engine", engine,
                             *options, "--", PYTHON, str(script), BUILD_SRC, seconds],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    return result.returncode, report.read_text() if report.exists() else "", result.stderr


def histogram(report, title):
    """{bucket: count} of the text summary's histogram titled `title` (empty: not drawn)."""
    lines, buckets = report.splitlines(), {}
    if title not in [line.strip() for line in lines]:
        return buckets
    start = [line.strip() for line in lines].index(title)
    for line in lines[start + 2:]:
        match = BUCKET_ROW.match(line)
        if not match:
            break
        if int(match[2]):
            buckets[int(match[1])] = int(match[2])
    return buckets


def buckets_of(sizes, times=1):
    buckets = {}
    for size, count in sizes.items():
        bucket = 1 << (size.bit_length() - 1)
        buckets[bucket] = buckets.get(bucket, 0) + count * times
    return buckets


@pytest.mark.parametrize("mode", ["python-probes", "libc", "object-allocator"])
def test_size_histograms_of_each_mode_are_the_bpftrace_runners(mode, tmp_path):
    """--frames python-probes sees both calls' plain probes, --object-allocator the
    PyObject_Malloc calls, --libc the C heap's (and the object allocator's large blocks, which
    it takes from malloc)."""
    total = sum(size * times for size, times in SIZES.items())
    reports = {}
    for engine in ENGINES:
        status, reports[engine], err = traced(engine, [*MODES[mode], "--report", "summary",
                                                       "--histograms"], WORKLOAD, tmp_path)
        assert status == 0, (engine, err[-800:])
    drawn = {engine: {title: histogram(report, title) for title in (
        f"workload.py, inner, bytes total = {2 * total}",
        f"workload.py, inner, bytes total = {total}",
        f"workload.py, inner, bytes total = {total + 1000 * 4 + 1024 * 2 + 70000}")}
        for engine, report in reports.items()}
    assert drawn["libbpf"] == drawn["bpftrace"], drawn
    mine = {title: buckets for title, buckets in drawn["libbpf"].items() if buckets}
    if mode == "python-probes":
        assert list(mine.values()) == [buckets_of(SIZES, 2)], mine
    elif mode == "object-allocator":
        assert list(mine.values()) == [buckets_of(SIZES)], mine
    else:  # PyObject_Malloc takes blocks over 512 bytes from malloc
        large = {size: times for size, times in SIZES.items() if size > 512}
        assert list(mine.values()) == [_libc_buckets(large)], mine
    # One domain in the allocator modes: no histogram by domain, on either engine.
    by_domain = "Python malloc byte distributions by domain"
    for engine, report in reports.items():
        assert (by_domain in report) == (mode == "python-probes"), (engine, report[-1500:])


def _libc_buckets(large):
    """The C heap's buckets: each of SIZES once (CMalloc), and the large sizes once more."""
    buckets = buckets_of(SIZES)
    for bucket, count in buckets_of(large).items():
        buckets[bucket] += count
    return buckets


def workload_rows(report):
    """{pid: sorted [(line, domain, count, bytes)]} of the workload's rows in a --json
    --per-process report."""
    by_pid = {}
    for e in json.loads(report):
        if e["file"] == "workload.py":
            for pid in e.get("pids", [e.get("pid")]):
                by_pid.setdefault(pid, []).append((e["line"], e["domain_name"], e["count"],
                                                   e["bytes"]))
    return {pid: sorted(rows) for pid, rows in by_pid.items()}


@pytest.mark.parametrize("mode", ["python-probes", "libc", "object-allocator"])
def test_no_follow_reports_the_parents_blocks_and_none_of_its_forked_childs(mode, tmp_path):
    lines, domain = tagged_lines(FORKS), {"python-probes": None, "libc": "C heap",
                                          "object-allocator": "PyObject"}[mode]
    found = {}
    for engine in ENGINES:
        status, report, err = traced(engine, [*MODES[mode], "--report", "leaks", "--json",
                                              "--per-process", "--no-follow"], FORKS, tmp_path)
        assert status == 0, (engine, err[-800:])
        found[engine] = list(workload_rows(report).values())
    assert found["libbpf"] == found["bpftrace"], found
    assert len(found["libbpf"]) == 1, found  # the parent alone
    parent = found["libbpf"][0]
    assert {(line, size // count) for line, _d, count, size in parent} == {
        (lines["parent"], 1111), (lines["after"], 3333)}, parent
    assert domain is None or {d for _l, d, _c, _s in parent} == {domain}, parent
    # Followed (bpftrace: no fork window), the child's blocks are reported: the test can fail.
    status, report, err = traced("bpftrace", [*MODES[mode], "--report", "leaks", "--json",
                                              "--per-process"], FORKS, tmp_path)
    assert status == 0, err[-800:]
    assert any(line == lines["child"] for rows in workload_rows(report).values()
               for line, _d, _c, _s in rows), report[-800:]


def json_lines(report):
    return [json.loads(line) for line in report.splitlines()]


def rows_of(entries):
    return sorted((e["line"], e["function"], e["domain_name"], e["count"], e["bytes"])
                  for e in entries if e["file"] == "workload.py")


@pytest.mark.parametrize("mode", ["python-probes", "libc", "object-allocator"])
def test_snapshots_hold_the_blocks_the_bpftrace_runners_leaks_report_holds(mode, tmp_path):
    """bpftrace has no snapshots in these modes: its leaks report at the end, when the
    workload has idled, is what every snapshot taken while it idled must hold."""
    status, report, err = traced("bpftrace", [*MODES[mode], "--report", "leaks", "--json"],
                                 WORKLOAD, tmp_path)
    assert status == 0, err[-800:]
    held = rows_of(json.loads(report))
    assert held, report[-800:]
    status, report, err = traced("libbpf", [*MODES[mode], "--report", "leaks", "--json",
                                            "--interval", "0.2"], WORKLOAD, tmp_path, "1.5")
    assert status == 0, err[-800:]
    lines = json_lines(report)
    assert [line["type"] for line in lines[-2:]] == ["report", "peak"], lines[-2:]
    snapshots = [line for line in lines if line["type"] == "snapshot"]
    # Idling 1.5 s, snapshots every 0.2 s: the later ones are taken while it idles.
    assert len(snapshots) >= 4, len(snapshots)
    assert [rows_of(s["entries"]) for s in snapshots[-3:]] == [held] * 3, snapshots[-3:]
    assert rows_of(lines[-2]["entries"]) == held


@pytest.mark.parametrize("tracing, mode, options", [
    ("python-probes", "pid", ["--no-follow"]),
    ("python-probes", "command", ["--histograms"]),
    ("libc", "command", ["--interval", "0.2"]),
    ("object-allocator", "pid", ["--histograms"]),
    ("object-allocator", "command", ["--no-follow", "--interval", "0.2"]),
])
def test_another_users_python_pays_nothing_while_the_engine_traces_with_these_options(
        tmp_path, tracing, mode, options):
    """Its CPython semaphores stay at 0, its allocator has no breakpoint: what the traced one has
    (auto, as users run it: the engine takes these runs; bpftrace set them, test below in
    test_engine_python_probes.py)."""
    (tmp_path / "workload.py").write_text(probes.WORKLOAD)
    report = "leaks" if "--interval" in options else "summary"
    bystander, target, _read = probes.bystander_while_traced(
        "auto", mode, str(tmp_path), tracing, report=report, options=options)
    assert all(target.values()), target
    assert not any(bystander.values()), bystander
