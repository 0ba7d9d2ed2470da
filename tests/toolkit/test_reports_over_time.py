# SPDX-License-Identifier: MIT
"""Reports over time (--interval): every interval the live bytes and blocks by location, with
their growth since the first snapshot; a leak's growth climbs, a cache's stays flat; the peak is
the largest total seen and the locations that held it; JSON lines parse; text rows stay escaped;
the runner's memory stays flat over many snapshots.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace), with
PYTHONPATH=<builddir>/src.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402,F401  (also makes pymemtrace.trace importable)
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402
from source_lines import line_of  # noqa: E402


# A cache of 5 blocks of 500 bytes, full before the first snapshot; a leak of 1000 bytes every
# 0.1 s for GROW seconds, then freed all at once (so the peak is before the end); then idle; then
# the cache freed.
WORKLOAD = """\
import sys, time
sys.path.insert(0, sys.argv[1])
from pymemtrace import cMemLeak
grow, idle = float(sys.argv[2]), float(sys.argv[3])
cache = [cMemLeak.CMalloc(500) for _ in range(5)]  # CACHE
leak = []
end = time.time() + grow
while time.time() < end:
    leak.append(cMemLeak.CMalloc(1000))  # LEAK
    time.sleep(0.1)
del leak[:]
time.sleep(idle)
del cache[:]  # at the very end: the report sees it, no snapshot does
"""


def workload(directory, name="workload.py"):
    path = os.path.join(str(directory), name)
    with open(path, "w") as out:
        out.write(WORKLOAD)
    os.chmod(str(directory), 0o755)
    return path


def at(entries, marker):
    return [e for e in entries if e["line"] == line_of(WORKLOAD, marker)]


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    path = workload(tmp_path_factory.mktemp("json"))
    result = subprocess.run([PYTHON, "-I", RUNNER, "--report", "leaks", "--interval", "1",
                             "--json", "--lib", LIB, "--", PYTHON, path, BUILD_SRC, "4.5", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_json_lines_are_snapshots_then_the_report_then_the_peak(json_run):
    kinds = [line["type"] for line in json_run]
    assert kinds[-2:] == ["report", "peak"] and set(kinds[:-2]) == {"snapshot"}, kinds
    assert len(kinds) - 2 >= 5, kinds  # ~6.5 s at one a second
    numbers = [line["snapshot"] for line in json_run[:-2]]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    for line in json_run[:-2]:
        assert line["bytes"] == sum(e["bytes"] for e in line["entries"]), line
        assert line["blocks"] == sum(e["count"] for e in line["entries"]), line


def test_the_report_is_what_is_live_at_the_end_not_the_last_snapshot(json_run):
    """bpftrace prints nothing for an empty map: the last snapshot's blocks stood for the
    report's when every block had been freed since."""
    snapshots, report = json_run[:-2], json_run[-2]
    assert any(at(line["entries"], "# CACHE") for line in snapshots), snapshots
    assert report["entries"] == [], report


def test_a_leaks_growth_climbs_and_a_caches_stays_flat(json_run):
    snapshots = [line for line in json_run if line["type"] == "snapshot"]
    growing = [at(s["entries"], "# LEAK") for s in snapshots
               if s["snapshot"] <= json_run[-1]["snapshot"]]  # up to the peak: then freed
    growing = [entries[0]["growth"] for entries in growing if entries]
    assert len(growing) >= 3 and all(b > a for a, b in zip(growing, growing[1:])), growing
    assert growing[-1] >= 2000, growing  # at least two intervals of ten 1000-byte blocks
    # Before the command ends (its exit frees the cache too, and a last snapshot may follow).
    cache = [at(s["entries"], "# CACHE") for s in snapshots if s["entries"]]
    assert all([(e["bytes"], e["count"], e["growth"]) for e in entries] == [(2500, 5, 0)]
               for entries in cache), cache


def test_the_peak_is_the_largest_snapshot_and_its_locations(json_run):
    snapshots = [line for line in json_run if line["type"] == "snapshot"]
    peak = json_run[-1]
    largest = max(snapshots, key=lambda s: s["bytes"])
    assert (peak["bytes"], peak["snapshot"]) == (largest["bytes"], largest["snapshot"]), peak
    assert peak["entries"] == largest["entries"], peak
    # The leak was freed before the end: a later snapshot holds the cache alone.
    later = [s["bytes"] for s in snapshots if s["snapshot"] > peak["snapshot"]]
    assert 2500 in later and 2500 < peak["bytes"], (later, peak["bytes"])
    assert peak["snapshots"] == len(snapshots), peak


def test_text_snapshots_are_tables_whose_hostile_names_stay_escaped(tmp_path):
    path = workload(tmp_path, "grow\x1b[2J\nfake.py")
    result = subprocess.run([PYTHON, "-I", RUNNER, "--report", "leaks", "--interval", "1",
                             "--lib", LIB, "--", PYTHON, path, BUILD_SRC, "2.5", "0.5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.count("Snapshot ") >= 2 and "growth" in text, text
    assert "grow\\x1b[2J\\nfake.py:" in text and "\x1b" not in text, text
    assert not any(line.startswith("fake.py") for line in text.splitlines()), text
    assert "\nPeak: " in text, text


def test_the_runners_memory_stays_flat_over_many_snapshots(tmp_path):
    path = workload(tmp_path)
    runner = subprocess.Popen([PYTHON, "-I", RUNNER, "--report", "leaks", "--interval", "0.2",
                               "--json", "--lib", LIB, "--", PYTHON, path, BUILD_SRC, "8", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = {}
    try:
        for line in runner.stdout:
            number = json.loads(line).get("snapshot")
            if number in (10, 35) and json.loads(line)["type"] == "snapshot":
                with open(f"/proc/{runner.pid}/status") as status:
                    rss[number] = int(next(f for f in status if f.startswith("VmRSS:")).split()[1])
    finally:
        runner.wait(timeout=120)
    assert runner.returncode == 0, runner.stderr.read()
    assert set(rss) == {10, 35}, rss
    assert rss[35] - rss[10] < 1024, f"runner VmRSS in kB at snapshots 10 and 35: {rss}"
