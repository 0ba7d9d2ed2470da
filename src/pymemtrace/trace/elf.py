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


def stapsdt_providers(file):
    """The providers named in the .note.stapsdt section of the 64-bit little-endian ELF file open
    (binary) as `file`, read from its section headers without a subprocess: a scan of every
    extension on a sys.path takes a moment. Self-contained (struct only): targets runs its source
    in the traced command's Python, as the command's user."""
    import struct
    header = file.read(64)
    if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return set()
    (table_offset,) = struct.unpack_from("<Q", header, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", header, 0x3A)
    if table_offset == 0 or entry_size != 64 or not 0 <= names_index < count:
        return set()
    file.seek(table_offset)
    table = file.read(64 * count)
    if len(table) < 64 * count:
        return set()

    def section(index):  # (name offset, file offset, size)
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", table, 64 * index)
        return name, offset, size

    _name, names_offset, names_size = section(names_index)
    file.seek(names_offset)
    names = file.read(min(names_size, 1 << 20))
    for index in range(count):
        name, offset, size = section(index)
        if names[name:name + 14] == b".note.stapsdt\0":
            file.seek(offset)
            notes = file.read(min(size, 1 << 24))
            break
    else:
        return set()
    providers, at = set(), 0
    while at + 12 <= len(notes):
        name_size, desc_size, note_type = struct.unpack_from("<III", notes, at)
        desc_at = at + 12 + ((name_size + 3) & ~3)
        desc = notes[desc_at:desc_at + desc_size]
        if notes[at + 12:at + 12 + name_size] == b"stapsdt\0" and note_type == 3 and len(desc) > 24:
            providers.add(desc[24:].split(b"\0", 1)[0].decode("ascii", "replace"))  # after 3 addresses
        at = desc_at + ((desc_size + 3) & ~3)
    return providers
