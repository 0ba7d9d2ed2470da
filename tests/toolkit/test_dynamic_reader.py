# SPDX-License-Identifier: MIT
"""The runner's dynamic-section reader (pymemtrace.trace.elf.dynamic_facts, used by unseen) reads
the same DT_NEEDED names and imported symbols as `readelf`, opens the file through safe_open (a
FIFO does not block it) and reads within a bound. No root needed.

    python3 -m pytest -q -p no:cacheprovider tests/toolkit/test_dynamic_reader.py
"""
import glob
import os
import re
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "src"))
from pymemtrace.trace import elf  # noqa: E402

BUILD = os.environ.get("PYMEMTRACE_BUILD") or sorted(glob.glob(os.path.join(ROOT, "build*")))[0]
CMEMLEAK = glob.glob(os.path.join(BUILD, "src", "pymemtrace", "cMemLeak*.so"))[0]


def readelf_facts(path):
    """(DT_NEEDED names, undefined dynamic symbols) as binutils' readelf shows them."""
    dynamic = subprocess.run(["readelf", "-W", "-d", path], capture_output=True, text=True,
                             check=True).stdout
    symbols = subprocess.run(["readelf", "-W", "--dyn-syms", path], capture_output=True,
                             text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", dynamic)
    imports = {fields[7].split("@")[0] for fields in map(str.split, symbols.splitlines())
               if len(fields) >= 8 and fields[0].rstrip(":").isdigit() and fields[6] == "UND"}
    return needed, frozenset(imports)


def test_the_reader_finds_what_readelf_finds_in_the_built_cmemleak_and_python():
    for path in (CMEMLEAK, os.path.realpath("/usr/bin/python3")):
        assert elf.dynamic_facts(path) == readelf_facts(path), path


def test_a_fifo_named_as_a_library_is_not_opened_and_does_not_block(tmp_path):
    fifo = tmp_path / "ext.so"
    os.mkfifo(fifo)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from pymemtrace.trace import elf; "
             "print(elf.dynamic_facts(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", probe, os.path.join(ROOT, "src"), str(fifo)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "([], frozenset())", done.stderr


def test_a_file_claiming_a_huge_symbol_table_is_read_within_the_bound(tmp_path):
    """cMemLeak with its .dynsym claiming 1 TiB: what is read is bounded by the file (and the
    budget), never an exception, and the other sections are still read."""
    data = bytearray(open(CMEMLEAK, "rb").read())
    table, = struct.unpack_from("<Q", data, 0x28)
    count, = struct.unpack_from("<H", data, 0x3C)
    for index in range(count):
        at = table + 64 * index
        if int.from_bytes(data[at + 4:at + 8], "little") == elf.SHT_DYNSYM:
            data[at + 32:at + 40] = (1 << 40).to_bytes(8, "little")  # sh_size
    decoy = tmp_path / "decoy.so"
    decoy.write_bytes(data)
    needed, _imports = elf.dynamic_facts(str(decoy))
    assert needed == readelf_facts(CMEMLEAK)[0]
