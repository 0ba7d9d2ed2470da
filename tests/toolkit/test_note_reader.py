# SPDX-License-Identifier: MIT
"""The runner's note reader (pymemtrace.trace.elf.stapsdt_notes, struct only) reads the same
probes as `readelf -n`: on the built cMemLeak, the unit tests' two libraries of fifty call sites,
Debian's python3.11 (CPython's probes), and ELF files made here in each class and byte order. A
malformed file has no probes (never an exception). The sys.path scan runs the reader's own
source. No root needed.

    python3 -m pytest -q -p no:cacheprovider tests/toolkit/test_note_reader.py
    (PYMEMTRACE_BUILD=BUILD_DIR: the built files; without it, those of build*/ found)
"""
import glob
import io
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace import elf, targets  # noqa: E402

READELF = shutil.which("readelf")
PROBE_LINES = re.compile(
    r"Provider: (?P<provider>\S+)\n\s+Name: (?P<name>\S+)\n\s+Location: (?P<location>0x[0-9a-f]+), "
    r"Base: (?P<base>0x[0-9a-f]+), Semaphore: (?P<semaphore>0x[0-9a-f]+)\n"
    r"\s+Arguments: ?(?P<arguments>[^\n]*)")


def built(pattern):
    """The first file matching `pattern` under PYMEMTRACE_BUILD, else under ROOT/build*."""
    roots = ([os.environ["PYMEMTRACE_BUILD"]] if os.environ.get("PYMEMTRACE_BUILD")
             else sorted(glob.glob(os.path.join(ROOT, "build*"))))
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, pattern)))
        if found:
            return found[0]
    return None


FILES = {
    "cMemLeak": built("src/pymemtrace/cMemLeak*.so"),
    "fifty_a": built("tests/unit/libfifty_a.so"),
    "fifty_b": built("tests/unit/libfifty_b.so"),
    "unit_tests": built("tests/unit/unit_tests"),
    "python3.11": "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else None,
}


def readelf_probes(path):
    out = subprocess.run([READELF, "-n", path], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LC_ALL="C")).stdout
    return [elf.Probe(m["provider"], m["name"], int(m["location"], 16), int(m["base"], 16),
                      int(m["semaphore"], 16), m["arguments"].strip())
            for m in PROBE_LINES.finditer(out)]


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_reader_reads_what_readelf_reads(name):
    path = FILES[name]
    if path is None or READELF is None:
        pytest.skip(f"{name}: not built (meson compile), or no readelf")
    expected = readelf_probes(path)
    assert expected, f"readelf shows no probes in {path}: the test would prove nothing"
    assert elf.probes(path) == expected


@pytest.mark.parametrize("name", ["cMemLeak", "fifty_a", "fifty_b"])
def test_each_library_has_each_pymemtrace_probe_once_with_a_semaphore(name):
    path = FILES[name]
    if path is None:
        pytest.skip(f"{name}: not built (meson compile)")
    found = [p for p in elf.probes(path) if p.provider == "pymemtrace"]
    names = [p.name for p in found]
    assert len(names) == len(set(names)), f"a probe with more than one site: {sorted(names)}"
    assert {"alloc", "pyalloc", "realloc", "pyrealloc", "free", "pyfree"} <= set(names), names
    assert all(p.semaphore for p in found), found
    assert elf.has_pymemtrace(path)
    assert elf.semaphore_addresses(path, {"alloc", "free"}) == {
        p.name: p.semaphore for p in found if p.name in ("alloc", "free")}


def test_python_with_dtrace_has_cpythons_probes():
    if FILES["python3.11"] is None:
        pytest.skip("no /usr/bin/python3.11")
    assert elf.has_python_probes(FILES["python3.11"])
    assert not elf.has_pymemtrace(FILES["python3.11"])


# -- ELF files made here: each class and byte order, checked against readelf too --------------

NOTES = [("pymemtrace", "alloc", 0x1234, 0x5678, 0x9abc, "8@%rdi 8@%rsi -4@%edx"),
         ("pymemtrace", "free", 0x1236, 0x5678, 0x9abe, "8@%rdi -4@%esi"),
         ("python", "line", 0x40, 0x5678, 0, "")]


def make_elf(wide, little, notes=NOTES, other_notes=True):
    """A minimal ELF (ET_DYN, no segments) whose sections are: null, .note.gnu.build-id,
    .note.stapsdt holding `notes`, .shstrtab."""
    order = "<" if little else ">"
    word = "Q" if wide else "I"

    def note(owner, kind, desc):
        owner = owner + b"\0"
        pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
        return struct.pack(order + "III", len(owner), len(desc), kind) + pad(owner) + pad(desc)

    stapsdt = b"".join(
        note(b"stapsdt", 3, struct.pack(order + word * 3, location, base, semaphore)
             + f"{provider}\0{name}\0{arguments}\0".encode())
        for provider, name, location, base, semaphore, arguments in notes)
    build_id = note(b"GNU", 3, b"\x01" * 20) if other_notes else b""
    names = b"\0.note.gnu.build-id\0.note.stapsdt\0.shstrtab\0"
    header_size, entry = (64, 64) if wide else (52, 40)
    body, offsets = b"", []
    for data in (build_id, stapsdt, names):
        offsets.append(header_size + len(body))
        body += data + b"\0" * (-len(data) % 8)
    table_offset = header_size + len(body)

    def section(name, kind, offset, size):
        if wide:
            return struct.pack(order + "IIQQQQIIQQ", name, kind, 0, 0, offset, size, 0, 0, 4, 0)
        return struct.pack(order + "IIIIIIIIII", name, kind, 0, 0, offset, size, 0, 0, 4, 0)

    table = (section(0, 0, 0, 0)
             + section(names.index(b".note.gnu"), 7, offsets[0], len(build_id))
             + section(names.index(b".note.stapsdt"), 7, offsets[1], len(stapsdt))
             + section(names.index(b".shstrtab"), 3, offsets[2], len(names)))
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if little else 2, 1, 0]) + b"\0" * 8
    machine = 62 if wide else 3
    if wide:
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 3, machine, 1, 0, 0, table_offset,
                                     0, header_size, 0, 0, entry, 4, 3)
    else:
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 3, machine, 1, 0, 0, table_offset,
                                     0, header_size, 0, 0, entry, 4, 3)
    return header + body + table


@pytest.mark.parametrize("wide", [True, False], ids=["ELF64", "ELF32"])
@pytest.mark.parametrize("little", [True, False], ids=["little-endian", "big-endian"])
def test_made_files_of_each_class_and_byte_order_read_as_readelf_reads_them(tmp_path, wide,
                                                                            little):
    path = tmp_path / "made.so"
    path.write_bytes(make_elf(wide, little))
    assert elf.probes(str(path)) == [elf.Probe(*note) for note in NOTES]
    if READELF is not None:
        assert readelf_probes(str(path)) == [elf.Probe(*note) for note in NOTES]


def test_a_malformed_file_has_no_probes_and_raises_nothing(tmp_path):
    good = make_elf(True, True)
    table_offset = struct.unpack_from("<Q", good, 0x28)[0]
    cases = {
        "empty": b"",
        "not ELF": b"#!/bin/sh\n" * 20,
        "header only": good[:64],
        "cut in the section table": good[:table_offset + 100],
        "cut in the notes": good[:100] + b"\0" * (len(good) - 100),
        "section table past the end": good[:0x28] + struct.pack("<Q", 1 << 40) + good[0x30:],
        "sections of the wrong size": good[:0x3A] + struct.pack("<H", 12) + good[0x3C:],
        "note sizes past the end": good.replace(struct.pack("<III", 8, 41, 3),
                                                struct.pack("<III", 8, 0xFFFFFFF0, 3)),
        "a note of the wrong owner": good.replace(b"stapsdt\0", b"stapsdX\0"),
    }
    for case, data in cases.items():
        path = tmp_path / "bad.so"
        path.write_bytes(data)
        got = elf.probes(str(path))
        assert all(isinstance(probe, elf.Probe) for probe in got), (case, got)
        if case != "note sizes past the end":  # the notes before the bad one may be read
            assert got == [], (case, got)
    assert elf.probes(str(tmp_path / "missing.so")) == []
    os.mkfifo(tmp_path / "fifo.so")  # opened, it would block: never opened at all
    assert elf.probes(str(tmp_path / "fifo.so")) == []
    assert elf.probes("/dev/null") == [] and elf.probes(str(tmp_path)) == []
    # A huge section count is read within bounds (65535 entries of 64 bytes at most).
    huge = good[:0x3C] + struct.pack("<H", 0xFFFF) + good[0x3E:]
    assert elf.stapsdt_notes(io.BytesIO(huge)) == []


def test_the_sys_path_scan_runs_the_same_reader(tmp_path):
    """targets' scan program (run in the command's Python) holds the reader's own source and
    finds an instrumented file among others under the directories it is given."""
    program = targets._scan_program()
    assert "def stapsdt_notes(file):" in program
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "with_probes.so").write_bytes(make_elf(True, True))
    (package / "other.so").write_bytes(make_elf(True, True, notes=[NOTES[2]]))
    (package / "text.so").write_bytes(b"not ELF")
    out = subprocess.run([sys.executable, "-I", "-c", program, str(tmp_path)],
                         capture_output=True, check=True).stdout
    assert out.split(b"\0") == [os.fsencode(package / "with_probes.so")]


def found_by_scan(command, cwd):
    """The files, among those made here, that command_libraries finds for `command` run from
    `cwd` (as this user)."""
    from pymemtrace.trace.aliases import FileAliases
    aliases = FileAliases()
    here = os.getcwd()
    try:
        os.chdir(cwd)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        found = {os.stat(alias)[1:3] for alias in targets.command_libraries(command, env, None,
                                                                           aliases)}
    finally:
        os.chdir(here)
        aliases.close()
    return found


def test_a_script_run_scans_the_scripts_directory_not_the_working_one(tmp_path):
    """`python3 script.py` has its script's directory on sys.path, not the working directory:
    an instrumented file there would cost bpftrace's start-up a program per library for nothing.
    With -c (or -m) the working directory is on sys.path, and scanned."""
    work, scripts = tmp_path / "work", tmp_path / "scripts"
    work.mkdir()
    scripts.mkdir()
    (work / "in_cwd.so").write_bytes(make_elf(True, True))
    (scripts / "beside_script.so").write_bytes(make_elf(True, True))
    (scripts / "main.py").write_text("pass\n")
    identity = {name: os.stat(path)[1:3] for name, path in
                (("cwd", work / "in_cwd.so"), ("script", scripts / "beside_script.so"))}
    found = found_by_scan([sys.executable, str(scripts / "main.py")], work)
    assert identity["script"] in found and identity["cwd"] not in found
    found = found_by_scan([sys.executable, "-c", "pass"], work)
    assert identity["cwd"] in found and identity["script"] not in found


def test_the_scan_does_not_follow_a_directory_symlink(tmp_path):
    """A script's directory holding a link to a source tree (a meson subproject does) led the
    scan into every build under it: four stale libraries, each a bpftrace program more."""
    tree, scripts = tmp_path / "tree", tmp_path / "scripts"
    (tree / "build").mkdir(parents=True)
    scripts.mkdir()
    (tree / "build" / "stale.so").write_bytes(make_elf(True, True))
    (scripts / "beside_script.so").write_bytes(make_elf(True, True))
    (scripts / "subproject").symlink_to(tree, target_is_directory=True)
    (scripts / "main.py").write_text("pass\n")
    found = found_by_scan([sys.executable, str(scripts / "main.py")], tmp_path)
    assert os.stat(scripts / "beside_script.so")[1:3] in found
    assert os.stat(tree / "build" / "stale.so")[1:3] not in found


def test_depth_attaches_only_libraries_that_fill_stack_records(tmp_path):
    """A library built with older headers has no pystack4/pystack16 request probes, and bpftrace
    refused the whole --depth program for it ("Code not generated for probe"): it is left out."""
    from pymemtrace.trace import stacks
    old = tmp_path / "old_headers.so"
    old.write_bytes(make_elf(True, True))  # alloc and free, no request probes
    able, unable = stacks.with_records([FILES["cMemLeak"], str(old)], 2)
    assert able == [FILES["cMemLeak"]] and unable == [str(old)], (able, unable)
