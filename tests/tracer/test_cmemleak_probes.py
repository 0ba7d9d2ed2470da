# SPDX-License-Identifier: MIT
"""cMemLeak under real bpftrace: creating and deleting a block of each type fires
pymemtrace:alloc with the block's .buffer, .size and domain, pymemtrace:pyalloc with the Python
line that created it, and pymemtrace:free with the same pointer and domain; a second __init__
frees the first block.

Run through tests/support/run_pytest.py (exit 77 when not root or without bpftrace) with
--cmemleak PATH --pythonpath DIR (tests/tracer/meson.build passes them).
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "support"))
from source_lines import line_of  # noqa: E402
from tracing import BpftraceSession, events  # noqa: E402

# The blocks make_blocks() creates, in order: (type, size). Size 0 allocates one byte.
CASES = [("CMalloc", 1477), ("PyRawMalloc", 128), ("PyMalloc", 128), ("PyObjectMalloc", 128),
         ("PyMalloc", 767), ("PyObjectMalloc", 4096), ("CMalloc", 0), ("PyRawMalloc", 1)]

WORKLOAD = '''\
import os
from pymemtrace import cMemLeak

CASES = [%s]


def make_blocks():
    blocks = []
    for cls, size in CASES:
        block = cls(size)  # ALLOCATION LINE
        blocks.append(block)
        print("block", cls.domain, block.size, block.buffer, flush=True)
    return blocks


def reinit():
    block = cMemLeak.CMalloc(100)
    first = block.buffer
    print("block", 0, 100, first, flush=True)
    block.__init__(200)
    print("block", 0, 200, block.buffer, flush=True)
    print("reinit_freed", first, flush=True)
    del block


blocks = make_blocks()
reinit()  # before the blocks go: a freed block's address, reused, would name two allocations
del blocks
print("pid", os.getpid(), flush=True)
''' % ", ".join(f"(cMemLeak.{name}, {size})" for name, size in CASES)


def program(library):
    probe = f"usdt:{library}:pymemtrace"
    return f'''
{probe}:alloc {{ printf("alloc %d %lu %lu %d\\n", pid, arg0, arg1, arg2); }}
{probe}:free {{ printf("free %d %lu %d\\n", pid, arg0, arg1); }}
{probe}:pyalloc {{ printf("pyalloc %d %lu %lu %d %d %s %s\\n", pid, arg0, arg1, arg2, arg5,
                         str(arg4), str(arg3)); }}
'''


@pytest.fixture(scope="module")
def traced(cmemleak, pythonpath):
    """The workload run under bpftrace: what it printed and the events of its process."""
    # A short path: bpftrace's str() reads 64 bytes of the file name.
    with tempfile.TemporaryDirectory(prefix="pymemtrace-") as tmp:
        script = pathlib.Path(tmp) / "cmemleak_workload.py"
        script.write_text(WORKLOAD)
        session = BpftraceSession(program(cmemleak)).start()
        try:
            run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": pythonpath}, timeout=120)
            out = run.stdout.splitlines()
            pid = next((int(line.split()[1]) for line in out if line.startswith("pid ")), None)
            # (domain, size, buffer): the CASES, then the block reinit() makes and re-initialises.
            blocks = [tuple(int(f) for f in line.split()[1:]) for line in out
                      if line.startswith("block ")]
            # bpftrace drops what is still in its buffers when stopped: wait for an alloc, a
            # free and a pyalloc per block.
            session.wait_for(lambda lines: all(
                sum(1 for e in events(lines, tag) if int(e[0]) == pid) >= len(blocks)
                for tag in ("alloc", "free", "pyalloc")), timeout=10 if pid else 0)
        finally:
            lines = session.stop()
    assert run.returncode == 0, f"the workload exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    assert pid, f"the workload printed no pid:\n{run.stdout}"
    assert len(blocks) == len(CASES) + 2, f"the workload printed {len(blocks)} blocks: {out}"

    def mine(tag):
        return [e[1:] for e in events(lines, tag) if int(e[0]) == pid]

    return {
        "blocks": blocks,
        "reinit_freed": int(next(line.split()[1] for line in out
                                 if line.startswith("reinit_freed "))),
        "allocs": sorted(tuple(int(f) for f in e) for e in mine("alloc")),   # (ptr, size, domain)
        "frees": sorted(tuple(int(f) for f in e) for e in mine("free")),     # (ptr, domain)
        "pyallocs": mine("pyalloc"),  # [ptr, size, domain, line, function, file]
    }


def test_every_block_fires_alloc_with_its_buffer_size_and_domain(traced):
    expected = sorted((buffer, size, domain) for domain, size, buffer in traced["blocks"])
    assert traced["allocs"] == expected, \
        f"alloc events (ptr, size, domain) {traced['allocs']} != blocks {expected}"


def test_every_block_fires_free_with_its_buffer_and_domain(traced):
    expected = sorted((buffer, domain) for domain, size, buffer in traced["blocks"])
    assert traced["frees"] == expected, \
        f"free events (ptr, domain) {traced['frees']} != blocks {expected}"


def test_a_second_init_frees_the_first_block(traced):
    assert (traced["reinit_freed"], 0) in traced["frees"], \
        f"a second __init__ did not free the first block 0x{traced['reinit_freed']:x}: " \
        f"frees {traced['frees']}"


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{n}-{s}" for n, s in CASES])
def test_pyalloc_names_the_line_and_function_that_created_the_block(traced, case):
    domain, size, buffer = traced["blocks"][case]
    line = line_of(WORKLOAD, "# ALLOCATION LINE")
    where = [p for p in traced["pyallocs"] if int(p[0]) == buffer]
    assert len(where) == 1 and where[0][1:5] == [str(size), str(domain), str(line), "make_blocks"] \
        and where[0][5].endswith("cmemleak_workload.py"), \
        f"pyalloc for 0x{buffer:x} ({size} bytes, domain {domain}): {where}, expected line " \
        f"{line} in make_blocks of cmemleak_workload.py"


def test_pyalloc_of_a_reinitialised_block_names_reinit(traced):
    buffers = [buffer for _, _, buffer in traced["blocks"][-2:]]
    where = [p for p in traced["pyallocs"] if int(p[0]) in buffers]
    assert len(where) == 2 and all(p[4] == "reinit" for p in where), \
        f"pyalloc of the re-initialised block ({[hex(b) for b in buffers]}): {where}"
