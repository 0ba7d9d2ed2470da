# SPDX-License-Identifier: MIT
"""Every report of the py* probes from the libbpf engine (issue 20's done-when), on real
processes: --histograms (the size buckets counted in BPF), --no-follow (a forked child left
untraced) and the flow of --all; each the same report as the bpftrace runner's. Run through
tests/support/run_pytest.py, as root."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from runner import BUILD_SRC, LIB, PYTHON, RUNNER, every_process_run, wait_until  # noqa: E402
from source_lines import tagged_lines  # noqa: E402

WORKLOADS = os.path.join(ROOT, "tests", "engine")
sys.path.insert(0, WORKLOADS)
import sizes_workload  # noqa: E402  (its SIZES)
SIZES = os.path.join(WORKLOADS, "sizes_workload.py")
NO_FOLLOW = os.path.join(WORKLOADS, "no_follow_workload.py")
EVERY_PROCESS_FLOW = os.path.join(WORKLOADS, "every_process_flow_workload.py")
CMEMLEAK = next(os.path.join(LIB, name) for name in os.listdir(LIB)
                if name.startswith("cMemLeak.") and name.endswith(".so"))
ENGINES = ("libbpf", "bpftrace")
BUCKET_ROW = re.compile(r"^ +(\d+) \|@* *(\d+)$")


def traced(engine, options, command, tmp_path):
    """(exit status, report, stderr) of the runner on `command` with `options`."""
    report = tmp_path / f"report.{engine}"
    result = subprocess.run([PYTHON, "-I", RUNNER, "-o", str(report), "--engine", engine,
                             "--lib", CMEMLEAK, *options, "--", "env", f"PYTHONPATH={BUILD_SRC}",
                             *command], capture_output=True, text=True, timeout=300)
    return result.returncode, report.read_text() if report.exists() else "", result.stderr


def histograms_of(report):
    """The text summary's histogram section: from its first title to the end of the last
    histogram, and {title line: {bucket: count}} of each histogram in it."""
    lines = report.splitlines()
    start = lines.index("Python malloc byte distributions by Python file and function, "
                        "largest first:")
    end = next(n for n in range(len(lines) - 1, start, -1) if BUCKET_ROW.match(lines[n])) + 1
    section, histograms, title = lines[start:end], {}, None
    for line in section:
        match = BUCKET_ROW.match(line)
        if match:
            histograms[title][int(match[1])] = int(match[2])
        elif line.strip() and "Distribution" not in line and "largest first" not in line:
            title = line.strip()
            histograms[title] = {}
    return "\n".join(section), histograms


def expected_buckets(sizes):
    buckets = {}
    for size, times in sizes.items():
        bucket = 1 << (size.bit_length() - 1)
        buckets[bucket] = buckets.get(bucket, 0) + times
    return buckets


@pytest.mark.parametrize("depth", [1, 3])
def test_size_histograms_count_each_bucket_of_known_sizes_and_are_the_bpftrace_runners(
        depth, tmp_path):
    sizes = {**sizes_workload.SIZES, 17: 1}  # through three frames, and once from the module
    total = sum(size * times for size, times in sizes.items())
    sections = {}
    for engine in ENGINES:
        status, report, err = traced(engine, ["--report", "summary", "--histograms", "--depth",
                                              str(depth)], [PYTHON, SIZES], tmp_path)
        assert status == 0, err[-800:]
        sections[engine], histograms = histograms_of(report)
        for title in (f"sizes_workload.py, inner, bytes total = {total}",  # by function
                      f"C heap, bytes total = {total}"):  # by domain
            counted = {b: c for b, c in histograms[title].items() if c}
            assert counted == expected_buckets(sizes), (engine, title, histograms)
    assert sections["libbpf"] == sections["bpftrace"]


REDIRECT_BUILT = os.environ.get("PYMEMTRACE_REDIRECT_MESON", "")
REDIRECT_WORKLOAD = os.path.join(ROOT, "tests", "redirect")


def redirect_summary(engine, options, tmp_path):
    """The summary of tests/redirect's workload (allocations in every domain, reallocs that
    move blocks of two domains), run as a command, with `options`; its PIDs left out."""
    report = tmp_path / f"summary.{engine}"
    result = subprocess.run([PYTHON, RUNNER, "--report", "summary", "--top", "0", "--engine",
                             engine, "-o", str(report), *options, "--", PYTHON, "-c",
                             "import workload"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=f"{REDIRECT_BUILT}:"
                                                                     f"{REDIRECT_WORKLOAD}"))
    assert result.returncode == 0, result.stderr[-800:]
    return re.sub(r"(PID |\"pids\": \[\n *)\d+", r"\1PID", report.read_text())


@pytest.mark.parametrize("options", [["--histograms"], ["--json"]])
def test_a_summary_with_reallocs_counts_them_under_realloc_as_the_bpftrace_runners(
        options, tmp_path):
    """The pyrealloc probe carries no domain: both engines count a realloc under "realloc"
    (domain -1) in the summary and its histograms, while the moved block keeps its domain in
    the leaks (the engine counted it under the old block's domain, unlike bpftrace: seen)."""
    engine = redirect_summary("libbpf", options, tmp_path)
    assert ("realloc" in engine) if "--json" not in options else ('"domain": -1' in engine)
    assert engine == redirect_summary("bpftrace", options, tmp_path)


def test_histograms_are_drawn_only_in_the_text_summary_and_the_engine_counts_none_elsewhere(
        tmp_path):
    """--histograms with leaks or JSON changes nothing (as on bpftrace), and costs no buckets."""
    for options in (["--report", "leaks"], ["--report", "summary", "--json"]):
        reports = {}
        for engine in ENGINES:
            status, reports[engine], err = traced(engine, [*options, "--histograms"],
                                                  [PYTHON, SIZES], tmp_path)
            assert status == 0, err[-800:]
            assert "Distribution" not in reports[engine]
        if "--json" in options:
            mine = [(e["count"], e["bytes"]) for e in json.loads(reports["libbpf"])]
            assert mine == [(e["count"], e["bytes"]) for e in json.loads(reports["bpftrace"])]


def test_size_buckets_beyond_max_entries_are_a_stated_loss(tmp_path):
    """Two buckets fit: the other 12 of the 15 allocations are said missing, exit 3."""
    status, report, err = traced("libbpf", ["--report", "summary", "--histograms",
                                            "--max-entries", "2"], [PYTHON, SIZES], tmp_path)
    said = "12 allocations are missing from the size histograms: their map was full"
    assert status == 3 and said in report and said in err, (status, report[-600:], err[-600:])


def entries_by_pid(report):
    by_pid = {}
    for e in json.loads(report):
        for pid in e.get("pids", [e.get("pid")]):
            by_pid.setdefault(pid, []).append((e["line"], e["count"], e["bytes"]))
    return by_pid


def test_no_follow_reports_the_parents_blocks_and_none_of_its_forked_childs(tmp_path):
    lines = tagged_lines(open(NO_FOLLOW).read())
    parent = sorted([(lines["parent"], 3, 3333), (lines["after"], 2, 2222)])
    for engine in ENGINES:
        status, report, err = traced(engine, ["--report", "leaks", "--json", "--per-process",
                                              "--no-follow"], [PYTHON, NO_FOLLOW], tmp_path)
        assert status == 0, (engine, err[-800:])
        by_pid = entries_by_pid(report)
        assert [sorted(v) for v in by_pid.values()] == [parent], (engine, by_pid)
    # Followed (bpftrace: no window), the child's five blocks are reported: the test can fail.
    status, report, err = traced("bpftrace", ["--report", "leaks", "--json", "--per-process"],
                                 [PYTHON, NO_FOLLOW], tmp_path)
    assert status == 0, err[-800:]
    assert sorted(map(sorted, entries_by_pid(report).values())) == sorted(
        [parent, [(lines["child"], 5, 10000)]]), report


def test_no_follow_leaves_the_child_out_of_the_processes_traced(tmp_path):
    status, report, err = traced("libbpf", ["--report", "leaks", "--no-follow"],
                                 [PYTHON, NO_FOLLOW], tmp_path)
    assert status == 0, err[-800:]
    traced_lines = report.split("Processes traced:\n", 1)[1].splitlines()
    assert len([line for line in traced_lines if line.strip().startswith("PID ")]) == 1, report


def every_process_flow(engine, tmp_path, count):
    """(runner's status, its flow, stderr, the PID of a process started after it) of --all
    --report flow until that process made and freed `count` blocks and ended."""
    go, started = str(tmp_path / f"go.{engine}"), []

    def workload(processes):
        started.append(subprocess.Popen([PYTHON, EVERY_PROCESS_FLOW, go, str(count)],
                                        env=dict(os.environ, PYTHONPATH=BUILD_SRC)))
        processes.append(started[0])
        time.sleep(0.5)  # its imports done
        open(go, "w").close()
        assert wait_until(lambda: os.path.exists(f"{go}.{started[0].pid}"), 60)
        started[0].wait(timeout=60)
    errors = tmp_path / f"runner.{engine}.err"
    status, out = every_process_run(["--lib", CMEMLEAK, "--engine", engine, "--report", "flow"],
                                    errors, workload)
    return status, out, errors.read_text(), started[0].pid


def test_the_flow_of_every_process_holds_a_later_processs_events_as_bpftraces_rows(tmp_path):
    count = 50
    lines = tagged_lines(open(EVERY_PROCESS_FLOW).read())
    rows = {}
    for engine in ENGINES:
        status, out, err, pid = every_process_flow(engine, tmp_path, count)
        assert status == 0, (engine, err[-800:])
        assert out.startswith("dtrace:::BEGIN\n") and out.endswith("\ndtrace:::END\n"), out[-300:]
        mine = [line for line in out.splitlines()
                if " -> " in line and line.split()[0] == str(pid)]
        made = [r for r in mine if f"every_process_flow_workload.py:{lines['made']} " in r
                and " malloc(333) pntr 0x" in r]
        freed = [r for r in mine if " free(0x" in r]
        assert len(made) == count and len(freed) == count, (engine, mine[:5], len(mine))
        rows[engine] = [re.sub(r"0x[0-9a-f]+", "0x#", r.replace(str(pid), "PID", 1))
                        for r in mine]
    assert rows["libbpf"] == rows["bpftrace"]
