# SPDX-License-Identifier: MIT
"""pymemtrace-engine and the libraries its processes map after it attached (docs/engine.md,
"Libraries mapped later"): given no --lib, it attaches to cMemLeak when a traced Debian Python
imports it, names the library and the window before the attach in the report, and counts that
window as a loss; real BPF, real uprobes, as root."""
import os
import shutil
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402,F401  (the runner's modules, from the source tree)
from other_user import other_user  # noqa: E402
from source_lines import tagged_lines  # noqa: E402

from engine_run import EngineRun, entries, start_python, workload  # noqa: E402
from test_engine import PY_PROBES, semaphores  # noqa: E402

WORKLOAD = workload("late_workload.py")
with open(WORKLOAD) as _source:
    HELD_LINE = tagged_lines(_source.read())["held"]


class Late:
    """late_workload.py under the engine (-p, no --lib), told what to do line by line."""

    def __init__(self, engine, pythonpath, argv=(), before=()):
        self.target = start_python([WORKLOAD, *argv], pythonpath)
        self.pid = int(self.target.stdout.readline())
        for line in before:
            self.tell(line)
        self.run = EngineRun(engine, [self.pid], [])
        self.ready = self.run.wait_for("ready")

    def tell(self, line):
        self.target.stdin.write(line + "\n")
        self.target.stdin.flush()
        return self.target.stdout.readline().strip()

    def report(self):
        self.run.signal(signal.SIGINT)
        return self.run.report()

    def close(self):
        self.run.close()
        self.target.kill()
        self.target.wait()

    def maps_then_holds(self, how, blocks):
        """Has it map cMemLeak (`how`: import, or load), waits for the engine's library line,
        then has it hold `blocks` blocks; returns (that line, the report, the engine's status),
        the engine stopped and the target killed."""
        try:
            assert self.tell(how) == "imported"
            library = self.run.wait_for("library", pid=self.pid)
            assert self.tell(f"alloc {blocks}") == "allocated"
            report, returncode, _ = self.report()
        finally:
            self.close()
        return library, report, returncode


def held_blocks(report, pid):
    return entries(report, "leaks", pid).get((WORKLOAD, "hold", HELD_LINE, 0), (0, 0))


def test_an_extension_imported_after_the_attach_is_attached_and_its_window_stated(
        engine, cmemleak, pythonpath):
    late = Late(engine, pythonpath)
    assert late.ready["probes"] == 0  # nothing instrumented mapped yet, none named
    library, report, returncode = late.maps_then_holds("import", 50)
    assert library["path"] == cmemleak
    assert held_blocks(report, late.pid) == (50, 5000)
    assert report["late_libraries"] == [{"pid": late.pid, "path": cmemleak, "window": "unknown",
                                         "window_us": library["window_us"]}]
    assert report["loss"]["late_window"] == 1 and report["complete"] is False
    assert returncode == 3, late.run.stderr


def test_an_extension_mapped_before_the_engine_started_is_attached_before_ready_exactly(
        engine, cmemleak, pythonpath):
    late = Late(engine, pythonpath, before=["import"])
    try:
        assert late.ready["probes"] == 3
        assert set(semaphores(late.pid, cmemleak).values()) == {1}
        assert late.tell("alloc 20") == "allocated"
        report, returncode, _ = late.report()
    finally:
        late.close()
    assert held_blocks(report, late.pid) == (20, 2000)
    assert report["late_libraries"] == [] and report["complete"] is True
    assert returncode == 0, late.run.stderr


def test_allocations_at_once_after_a_late_import_are_a_stated_loss(engine, cmemleak,
                                                                    pythonpath):
    late = Late(engine, pythonpath)
    try:
        assert late.tell("import_alloc 20000") == "allocated"
        report, returncode, _ = late.report()
    finally:
        late.close()
    count, _ = held_blocks(report, late.pid)
    print(f"held 20000 blocks allocated at once after the import: {count} reported, window "
          f"{report['late_libraries'][0]['window_us']} us")
    assert count <= 20000
    assert [late["path"] for late in report["late_libraries"]] == [cmemleak]
    assert returncode == 3 and report["complete"] is False


def test_a_late_library_with_hostile_bytes_in_its_path_is_attached_and_named_as_mapped(
        engine, cmemleak, pythonpath, tmp_path):
    directory = os.path.join(os.fsencode(tmp_path), b'a "quoted"\nline\xff')
    os.mkdir(directory)
    path = os.path.join(directory, os.path.basename(os.fsencode(cmemleak)))
    shutil.copy(os.fsencode(cmemleak), path)
    late = Late(engine, pythonpath, argv=[os.fsdecode(path)])
    library, report, returncode = late.maps_then_holds("load", 5)
    # The JSON line gives the bytes back (a byte that is not UTF-8 as surrogateescape does).
    assert os.fsencode(library["path"]) == path
    assert [os.fsencode(late["path"]) for late in report["late_libraries"]] == [path]
    assert held_blocks(report, late.pid) == (5, 500)
    assert returncode == 3


def test_a_late_library_without_pymemtrace_probes_is_ignored_quietly(engine, pythonpath):
    late = Late(engine, pythonpath)
    try:
        assert late.tell("plain") == "imported"
        assert "_lzma" in open(f"/proc/{late.pid}/maps").read()
        report, returncode, lines = late.report()
    finally:
        late.close()
    assert returncode == 0 and late.run.stderr == ""
    assert report["late_libraries"] == [] and report["complete"] is True
    assert [line for line in lines if line.get("event") == "library"] == []


def test_another_users_process_mapping_the_same_library_keeps_its_semaphores_at_0(
        engine, cmemleak, pythonpath):
    with other_user() as user:
        env = ["env", f"PYTHONPATH={pythonpath}", "/usr/bin/python3", workload("bystander.py")]
        bystander = user.popen(env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            bystander_pid = int(bystander.stdout.readline())
            late = Late(engine, pythonpath)
            try:
                late.tell("import")
                late.run.wait_for("library", pid=late.pid)
                assert set(semaphores(late.pid, cmemleak).values()) == {1}
                assert semaphores(bystander_pid, cmemleak) == {p: 0 for p in PY_PROBES}
                report, _, _ = late.report()
            finally:
                late.close()
            assert {entry["pid"] for entry in report["summary"]} <= {late.pid}
            assert bystander.poll() is None
        finally:
            bystander.stdin.close()
            bystander.wait(timeout=30)


def test_a_library_found_in_one_process_is_armed_in_the_others_before_they_map_it(
        engine, cmemleak, pythonpath):
    first = start_python([WORKLOAD], pythonpath)
    second = start_python([WORKLOAD], pythonpath)
    pids = [int(first.stdout.readline()), int(second.stdout.readline())]

    def tell(target, line):
        target.stdin.write(line + "\n")
        target.stdin.flush()
        return target.stdout.readline().strip()

    run = EngineRun(engine, pids, [])
    try:
        run.wait_for("ready")
        assert tell(first, "import") == "imported"
        run.wait_for("library", pid=pids[0])
        # Attached in the second process too, before it maps the library: what it allocates
        # at once after its import is all there, and it has no window.
        assert tell(second, "import_alloc 2000") == "allocated"
        run.signal(signal.SIGINT)
        report, returncode, lines = run.report()
    finally:
        run.close()
        for target in (first, second):
            target.kill()
            target.wait()
    assert held_blocks(report, pids[1]) == (2000, 200000)
    assert [late["pid"] for late in report["late_libraries"]] == [pids[0]]
    assert [line["pid"] for line in lines if line.get("event") == "library"] == []
    assert returncode == 3


# Maps the file argv[1] executable (as a loader would) once released, and ends at once: the
# engine may not see the process alive again.
MAPS_AND_ENDS = """\
import mmap, os, sys
sys.stdin.readline()
with open(sys.argv[1], "rb") as file:
    mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)
os._exit(0)
"""


@pytest.mark.parametrize("run", range(5))
def test_a_process_that_maps_a_library_and_ends_at_once_is_never_a_silent_loss(
        engine, cmemleak, pythonpath, run):
    target = start_python(["-c", MAPS_AND_ENDS, cmemleak], pythonpath)
    engine_run = EngineRun(engine, [target.pid], [])
    try:
        engine_run.wait_for("ready")
        target.stdin.write("go\n")
        target.stdin.flush()
        target.wait(timeout=30)
        report, returncode, _ = engine_run.report()  # it ends when its process has
    finally:
        engine_run.close()
    # Mapped before the attach, or ended before the engine could even look at the file: either
    # way the report says so.
    said = ([late["path"] for late in report["late_libraries"]]
            + [f"{file['pid']}" for file in report.get("unexamined_files", [])])
    assert said == [cmemleak] or said == [str(target.pid)], (
        report["processes"], report["counters"], report["loss"], target.returncode)
    assert returncode == 3 and report["complete"] is False


@pytest.fixture
def overlay_pythonpath(pythonpath, tmp_path):
    """The built package seen through an overlay mount, as a container's files are: the mapping
    records name the file underneath, /proc/PID/maps the overlay's."""
    lower, upper, work, merged = (tmp_path / name for name in ("lower", "upper", "work", "merged"))
    for directory in (upper, work, merged):
        directory.mkdir()
    shutil.copytree(os.path.join(pythonpath, "pymemtrace"), lower / "pymemtrace",
                    ignore=shutil.ignore_patterns("*.p", "__pycache__", "trace"))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        yield str(merged)
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=True)


def test_a_library_on_an_overlay_mapped_late_is_attached(engine, overlay_pythonpath):
    late = Late(engine, overlay_pythonpath)
    library, report, returncode = late.maps_then_holds("import", 5)
    assert library["path"].startswith(overlay_pythonpath + "/pymemtrace/cMemLeak.")
    assert held_blocks(report, late.pid) == (5, 500)
    assert report["unexamined_files"] == [] and returncode == 3


@pytest.mark.parametrize("run", range(3))
def test_a_file_gone_with_its_process_is_read_through_another_that_maps_it(engine, pythonpath,
                                                                           run):
    # libstdc++: Debian's Python does not map it, the engine (C++) does. A process that maps it
    # and ends before the engine looks costs no loss once the engine has read it elsewhere.
    runtime = next(line.split()[-1] for line in open(f"/proc/{os.getpid()}/maps")
                   if "/libc.so" in line)
    runtime = os.path.join(os.path.dirname(runtime), "libstdc++.so.6")
    target = start_python(["-c", MAPS_AND_ENDS, os.path.realpath(runtime)], pythonpath)
    engine_run = EngineRun(engine, [target.pid], [])
    try:
        engine_run.wait_for("ready")
        target.stdin.write("go\n")
        target.stdin.flush()
        target.wait(timeout=30)
        report, returncode, _ = engine_run.report()
    finally:
        engine_run.close()
    assert report["unexamined_files"] == [] and report["late_libraries"] == []
    assert returncode == 0 and report["complete"] is True
