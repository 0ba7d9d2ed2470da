# SPDX-License-Identifier: MIT
"""cMemLeak under real bpftrace: creating and deleting a block of each type fires
pymemtrace:alloc with the block's .buffer, .size and domain, pymemtrace:pyalloc with the Python
line that created it, and pymemtrace:free with the same pointer and domain; a second __init__
frees the first block.

Usage: test_cmemleak_probes.py PATH/TO/cMemLeak.so PYTHONPATH_DIR
Exits 77 (skipped) when not root or bpftrace is missing.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "support"))
from tracing import BpftraceSession, events, require_tracer  # noqa: E402

WORKLOAD = '''\
import os
from pymemtrace import cMemLeak

CASES = [(cMemLeak.CMalloc, 1477), (cMemLeak.PyRawMalloc, 128), (cMemLeak.PyMalloc, 128),
         (cMemLeak.PyObjectMalloc, 128), (cMemLeak.PyMalloc, 767),
         (cMemLeak.PyObjectMalloc, 4096), (cMemLeak.CMalloc, 0), (cMemLeak.PyRawMalloc, 1)]


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
del blocks
reinit()
print("pid", os.getpid(), flush=True)
'''


def program(library):
    probe = f"usdt:{library}:pymemtrace"
    return f'''
{probe}:alloc {{ printf("alloc %d %lu %lu %d\\n", pid, arg0, arg1, arg2); }}
{probe}:free {{ printf("free %d %lu %d\\n", pid, arg0, arg1); }}
{probe}:pyalloc {{ printf("pyalloc %d %lu %lu %d %d %s %s\\n", pid, arg0, arg1, arg2, arg5,
                         str(arg4), str(arg3)); }}
'''


def main():
    require_tracer()
    library = os.path.realpath(sys.argv[1])
    pythonpath = sys.argv[2]
    failures = []

    def check(condition, what):
        if not condition:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="pymemtrace-") as tmp:
        script = pathlib.Path(tmp) / "cmemleak_workload.py"
        script.write_text(WORKLOAD)
        allocation_line = 1 + WORKLOAD.splitlines().index(
            "        block = cls(size)  # ALLOCATION LINE")
        session = BpftraceSession(program(library)).start()
        try:
            run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": pythonpath}, timeout=120)
        finally:
            lines = session.stop()
    if run.returncode != 0:
        print(run.stdout, run.stderr, file=sys.stderr)
        sys.exit(1)
    out = run.stdout.splitlines()
    pid = int(next(line.split()[1] for line in out if line.startswith("pid ")))
    blocks = [tuple(int(f) for f in line.split()[1:]) for line in out if line.startswith("block ")]
    reinit_freed = int(next(line.split()[1] for line in out if line.startswith("reinit_freed ")))

    mine = lambda tag: [tuple(int(f) for f in e[1:4]) if tag != "pyalloc" else e[1:]
                        for e in events(lines, tag) if int(e[0]) == pid]
    allocs = sorted(mine("alloc"))            # (ptr, size, domain)
    frees = sorted(mine("free"))              # (ptr, domain)
    pyallocs = mine("pyalloc")                # [ptr, size, domain, line, function, file]

    expected_allocs = sorted((buffer, size, domain) for domain, size, buffer in blocks)
    expected_frees = sorted((buffer, domain) for domain, size, buffer in blocks)
    check(allocs == expected_allocs, f"alloc events {allocs} != blocks {expected_allocs}")
    check(frees == expected_frees, f"free events {frees} != blocks {expected_frees}")
    check((reinit_freed, 0) in frees, "a second __init__ did not free the first block")
    for domain, size, buffer in blocks[:-2]:  # those created on the allocation line
        where = [p for p in pyallocs if int(p[0]) == buffer]
        check(len(where) == 1 and where[0][1:5] == [str(size), str(domain),
                                                   str(allocation_line), "make_blocks"]
              and where[0][5].endswith("cmemleak_workload.py"),
              f"pyalloc for 0x{buffer:x} ({size} bytes, domain {domain}): {where}, "
              f"expected line {allocation_line} in make_blocks")
    reinit_where = [p for p in pyallocs if int(p[0]) in (blocks[-2][2], blocks[-1][2])]
    check(all(p[4] == "reinit" for p in reinit_where) and len(reinit_where) == 2,
          f"pyalloc of the re-initialised block: {reinit_where}")

    print(f"pid {pid}: {len(blocks)} blocks, {len(allocs)} alloc, {len(frees)} free, "
          f"{len(pyallocs)} pyalloc events")
    if failures:
        print("\n".join(["FAIL:"] + failures + ["bpftrace said:"] + lines), file=sys.stderr)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
