# SPDX-License-Identifier: MIT
"""The USDT probes of an ELF file: its .note.stapsdt entries, read with `readelf -n` (binutils).
`path` may be any name of the file, /proc/<pid>/fd/<n> aliases included."""
import collections
import re
import shutil
import subprocess

from .errors import Failure

Probe = collections.namedtuple("Probe", "provider name semaphore")

_FIELD = re.compile(r"\b(Provider|Name|Semaphore): (\S+)")


def probes(path):
    """The Probe entries of the file at `path`; empty if it has none or cannot be read."""
    readelf = shutil.which("readelf")
    if readelf is None:
        raise Failure("readelf is not installed (needed to read the probes of ELF files)",
                      "apt-get install binutils")
    try:
        out = subprocess.run([readelf, "-n", path], capture_output=True, text=True,
                             errors="replace", check=False).stdout
    except OSError:
        return []
    found, fields = [], {}
    for line in out.splitlines():
        match = _FIELD.search(line)
        if not match:
            continue
        key, value = match.groups()
        if key == "Provider":
            fields = {"provider": value}
        elif key == "Name":
            fields["name"] = value
        elif "name" in fields:  # Semaphore: the last field of an entry
            found.append(Probe(fields["provider"], fields["name"], int(value, 16)))
            fields = {}
    return found


def has_pymemtrace(path):
    return any(probe.provider == "pymemtrace" for probe in probes(path))


def has_python_probes(path):
    """Whether the Python binary at `path` has CPython's DTrace probes (--with-dtrace)."""
    names = {(probe.provider, probe.name) for probe in probes(path)}
    return ("python", "line") in names and ("python", "function__return") in names


def semaphore_addresses(path, names):
    """{probe name: its semaphore's link-time address} of the pymemtrace probes `names`."""
    return {probe.name: probe.semaphore for probe in probes(path)
            if probe.provider == "pymemtrace" and probe.name in names and probe.semaphore}


def is_position_independent(path):
    """ET_DYN (a shared object or a PIE): its addresses move with its load base."""
    with open(path, "rb") as elf:
        return elf.read(18)[16] == 3
