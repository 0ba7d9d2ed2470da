# SPDX-License-Identifier: MIT
"""What /proc says of a target process: its file mappings, whether it runs, and the values of
its probes' semaphores. Read only: nothing here writes to a target."""
import os
import re
import shutil
import subprocess
import time

from . import elf


def file_identity(path):
    """(device, inode) of a file: how /proc/PID/maps names a mapping, whatever its path says."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def maps_entries(pid):
    """(start, end, offset, (device, inode), path) of each file mapping of process `pid`. The path
    is bytes, as the kernel wrote it (it escapes a newline as \\012): shown, never trusted."""
    entries = []
    with open(f"/proc/{pid}/maps", "rb") as maps:
        for line in maps:
            fields = line.rstrip(b"\n").split(None, 5)
            if len(fields) < 5 or fields[4] == b"0":
                continue
            start, end = (int(x, 16) for x in fields[0].split(b"-"))
            major, minor = (int(x, 16) for x in fields[3].split(b":"))
            entries.append((start, end, int(fields[2], 16),
                            (os.makedev(major, minor), int(fields[4])),
                            fields[5] if len(fields) == 6 else b""))
    return entries


def map_file(pid, start, end):
    """The path that opens the file of one mapping itself, whatever its name (and across mount
    namespaces)."""
    return f"/proc/{pid}/map_files/{start:x}-{end:x}"


def runtime_addresses(pid, path, addresses):
    """Link-time addresses of file `path` as mapped in process `pid` (ET_DYN: plus its load base).
    The mapping is found by device and inode, so `path` may be any name of the file."""
    if not elf.is_position_independent(path):
        return dict(addresses)
    identity = file_identity(path)
    starts = [start for start, _end, offset, ident, _name in maps_entries(pid)
              if ident == identity and offset == 0]
    if not starts:
        return {}
    return {name: min(starts) + address for name, address in addresses.items()}


def wait_semaphores(pid, addresses, done, timeout):
    """Polls the 16-bit semaphores at `addresses` in process `pid` until done(values); returns
    whether that happened before `timeout` (False too if the process is gone)."""
    deadline = time.monotonic() + timeout
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            while True:
                values = []
                for address in addresses:
                    mem.seek(address)
                    values.append(int.from_bytes(mem.read(2), "little"))
                if done(values):
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
    except OSError:
        return False  # the process is gone


def wait_armed(pid, program, libraries, timeout=30.0):
    """Waits until process `pid` sees set the semaphores of every pymemtrace probe that
    `program` attaches in `libraries` (the names the program uses for them). bpftrace 0.17 runs
    BEGIN before it attaches USDT probes (measured: the semaphores are set 5-16 ms after BEGIN),
    so BEGIN alone does not say "armed"."""
    wanted = []
    for lib in libraries:
        names = set(re.findall(rf"usdt:{re.escape(lib)}:pymemtrace:(\w+)", program))
        wanted += list(runtime_addresses(pid, lib, elf.semaphore_addresses(lib, names)).values())
    return wait_semaphores(pid, wanted, all, timeout)


def process_alive(pid):
    """Whether `pid` still runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def mount_tracefs():
    """Without tracefs, bpftrace still works but warns 'failed to detach probe'."""
    if not os.path.exists("/sys/kernel/tracing/uprobe_events"):
        # The system's mount, not the first on PATH: a PATH kept through sudo may name a
        # directory another user writes.
        mount = shutil.which("mount", path="/usr/sbin:/usr/bin:/sbin:/bin")
        if mount:
            subprocess.run([mount, "-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
                           stderr=subprocess.DEVNULL, check=False)
