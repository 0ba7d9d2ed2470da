# SPDX-License-Identifier: MIT
"""The USDT probes of an ELF file: its .note.stapsdt entries, read by `stapsdt_notes` (struct
only, no subprocess: the runner reads every library it attaches to, and a command's scan reads
every extension on a sys.path). `path` may be any name of the file, /proc/<pid>/fd/<n> aliases
included. The files are hostile input: every read is bounded, and a malformed file has no
probes."""
import collections
import os

from . import safe_open

# One NT_STAPSDT note, as `readelf -n` shows it: link-time addresses (`semaphore` 0: none).
Probe = collections.namedtuple("Probe", "provider name location base semaphore arguments")


def probes(path):
    """The Probe entries of the file at `path`; empty if it has none, cannot be read, or is not
    a regular file. `path` may name anything a target mapped (/proc/PID/map_files/...): it is
    opened through safe_open, so root never opens a device or FIFO (opening some devices acts)."""
    try:
        fd = safe_open.followed(path)
    except OSError:
        return []
    with os.fdopen(fd, "rb", buffering=0) as file:
        return [Probe(*note) for note in stapsdt_notes(file)]


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
    fd = safe_open.followed(path)
    try:
        return os.pread(fd, 18, 0)[16:17] == b"\x03"
    finally:
        os.close(fd)


MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390", 40: "arm", 62: "x86-64",
            183: "aarch64", 243: "riscv"}


def machine(path):
    """e_machine of the ELF file at `path` (opened as safe_open.followed), or None if it cannot
    be read or is not ELF."""
    try:
        fd = safe_open.followed(path)
    except OSError:
        return None
    try:
        header = os.pread(fd, 20, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] not in (1, 2):
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def host_machine():
    """e_machine of this machine: that of the runner's own interpreter."""
    return machine("/proc/self/exe")


def machine_name(number):
    return MACHINES.get(number, f"machine {number}")


# Bounds of what dynamic_facts reads of one file: real extensions carry tens of KiB of dynamic
# symbols and names (Debian's python3.11 binary, the biggest traced: about 300 KiB).
DYNAMIC_BUDGET = 1 << 22
SHT_DYNAMIC, SHT_DYNSYM, DT_NEEDED = 6, 11, 1


def dynamic_facts(path):
    """(DT_NEEDED names, names of the undefined dynamic symbols) of the ELF file at `path`
    (opened as safe_open.followed); ([], frozenset()) if it cannot be read, is not ELF, or is
    malformed. At most DYNAMIC_BUDGET bytes of sections are read."""
    import struct
    try:
        fd = safe_open.followed(path)
    except OSError:
        return [], frozenset()
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            return _dynamic_facts(file, struct)
        except (struct.error, OSError, ValueError, OverflowError, IndexError):
            return [], frozenset()


def _dynamic_facts(file, struct):
    headers = section_headers(file)
    if headers is None:
        return [], frozenset()
    wide, order, sections = headers
    budget = DYNAMIC_BUDGET

    def read(index):
        """The bytes of section `index`, within the budget (short if over it)."""
        nonlocal budget
        _name, _kind, _flags, offset, size, _link, _entsize = sections[index]
        data = os.pread(file.fileno(), min(size, budget), offset) if budget > 0 else b""
        budget -= len(data)
        return data

    def text(table, at):
        end = table.find(b"\0", at)
        return table[at:end if end >= 0 else len(table)].decode("utf-8", "replace")

    dynamic_format, dynamic_size = ("qQ", 16) if wide else ("iI", 8)  # d_tag, d_val
    # st_name, (ELF32: st_value, st_size,) st_info, st_other, st_shndx
    symbol_format, symbol_size = ("IBBH", 24) if wide else ("IIIBBH", 16)
    needed, imports = [], set()
    for index, (_name, kind, _flags, _offset, _size, link, entsize) in enumerate(sections):
        if kind == SHT_DYNAMIC:
            data, names = read(index), read(link)
            for at in range(0, len(data) - dynamic_size + 1, dynamic_size):
                tag, value = struct.unpack_from(order + dynamic_format, data, at)
                if tag == 0:  # DT_NULL
                    break
                if tag == DT_NEEDED:
                    needed.append(text(names, value))
        elif kind == SHT_DYNSYM and entsize == symbol_size:
            data, names = read(index), read(link)
            for at in range(symbol_size, len(data) - symbol_size + 1, symbol_size):  # 0: null
                fields = struct.unpack_from(order + symbol_format, data, at)
                name, shndx = fields[0], fields[-1]
                if shndx == 0:  # SHN_UNDEF: imported
                    imports.add(text(names, name).split("@")[0])
    return needed, frozenset(imports)


# The reader: section_headers and stapsdt_notes, self-contained (struct only), from here to the
# end: targets runs this source in the traced command's Python, as the command's user, to scan a
# sys.path. Files are hostile input: every read is bounded, per file, whatever the file claims.
# (30 sparse files each claiming 16 MiB of empty notes delayed attaching by 12 s before.)
def section_headers(file):
    """(wide, byte order, [(sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_entsize)])
    of the ELF file
    open (binary, seekable) as `file`, ELF32 or ELF64, either byte order; None if it is not ELF,
    is malformed, or claims more than 4096 sections (a linked file has tens)."""
    import struct
    ident = file.read(64)
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) \
            or ident[5] not in (1, 2) or (ident[4] == 2 and len(ident) < 64):
        return None
    wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
    table_at, sizes_at, header, entry = (
        (0x28, 0x3A, "IIQQQQIIQQ", 64) if wide else (0x20, 0x2E, "IIIIIIIIII", 40))
    (table_offset,) = struct.unpack_from(order + ("Q" if wide else "I"), ident, table_at)
    entry_size, count = struct.unpack_from(order + "HH", ident, sizes_at)
    if table_offset == 0 or entry_size != entry or not 0 < count <= 4096:
        return None
    file.seek(table_offset)
    table = file.read(entry * count)
    if len(table) < entry * count:
        return None
    sections = []
    for index in range(count):
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info,
        # sh_addralign, sh_entsize
        name, kind, flags, _addr, offset, size, link, _info, _align, entsize = \
            struct.unpack_from(order + header, table, entry * index)
        sections.append((name, kind, flags, offset, size, link, entsize))
    return wide, order, sections


def stapsdt_notes(file):
    """(provider, name, location, base, semaphore, arguments) of each NT_STAPSDT note of the ELF
    file open (binary, seekable) as `file`, in file order: the notes of its SHT_NOTE sections,
    found through its section headers, as `readelf -n` shows them. Empty for a file that is not
    ELF, or is malformed. A file is read for at most 1 MiB of notes, and at most 16384 notes
    are walked: real files carry a few KiB (Debian's python3.11: 656 bytes; a library of 512
    probe sites, the most bpftrace attaches, about 64 KiB)."""
    import struct
    try:
        headers = section_headers(file)
        if headers is None:
            return []
        wide, order, sections = headers
        step = 8 if wide else 4
        notes, budget, walks = [], 1 << 20, 16384
        for _name, kind, _flags, offset, size, *_ in sections:
            if kind != 7 or size < 12 or size > budget or walks <= 0:  # SHT_NOTE
                continue
            budget -= size
            file.seek(offset)
            data = file.read(size)
            at = 0
            while at + 12 <= len(data) and walks > 0:
                walks -= 1
                name_size, desc_size, note_type = struct.unpack_from(order + "III", data, at)
                owner = data[at + 12:at + 12 + name_size]
                desc_at = at + 12 + ((name_size + 3) & ~3)
                desc = data[desc_at:desc_at + desc_size]
                at = desc_at + ((desc_size + 3) & ~3)
                if owner != b"stapsdt\0" or note_type != 3 or len(desc) != desc_size:
                    continue
                strings = desc[3 * step:].split(b"\0")
                if len(strings) < 3:  # provider, name, arguments, each NUL-terminated
                    continue
                addresses = struct.unpack_from(order + ("QQQ" if wide else "III"), desc, 0)
                provider, name, arguments = (text.decode("utf-8", "replace")
                                             for text in strings[:3])
                notes.append((provider, name, *addresses, arguments))
        return notes
    except (struct.error, OSError, ValueError, OverflowError):
        return []
