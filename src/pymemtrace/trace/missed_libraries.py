# SPDX-License-Identifier: MIT
"""Instrumented libraries a traced process maps that the program does not attach to: imported
after attaching (a -p target loading an extension later), or another copy than the one the
runner found (a command that puts a directory on its sys.path itself). bpftrace 0.17 cannot
attach to more once it runs, so their events are not traced: the report says so, as a loss,
rather than pass for complete."""
import os

from . import elf, procfs
from .names import shown


class MissedLibraries:
    def __init__(self, attached):
        """`attached`: the files (aliases) the program's probes name."""
        self.known = {procfs.file_identity(path) for path in attached}
        self.looked_at = set()  # (device, inode) of every mapping read once
        self.missed = {}  # (device, inode) -> the path the process mapped it as

    def check(self, pid):
        """Looks at the mappings of process `pid` not seen before (read through map_files, as
        root: no path text is followed; each file once). A process that has gone has nothing
        more to say."""
        try:
            entries = procfs.maps_entries(pid)
        except OSError:
            return
        for start, end, _offset, identity, name in entries:
            if identity in self.known or identity in self.looked_at:
                continue
            self.looked_at.add(identity)
            try:
                if elf.has_pymemtrace(procfs.map_file(pid, start, end)):
                    self.missed[identity] = os.fsdecode(name)
            except OSError:
                continue

    def losses(self):
        """What the missed libraries cost the report, in words with the fix; [] if none."""
        if not self.missed:
            return []
        names = ", ".join(shown(name) for name in sorted(self.missed.values()))
        return [f"the process mapped libraries with pymemtrace probes that were not traced "
                f"(imported after tracing began, or another copy than the one found): {names}; "
                "give them with --lib, or attach (-p) after they are imported"]


class AttachedByEngine:
    """pymemtrace-engine attaches to every instrumented library a traced process maps, however
    late (docs/engine.md): none is missed. One mapped before its probes were attached is a
    window the engine's own report states (its loss `late_window`)."""

    def check(self, pid):
        """Nothing to look at: the engine watches the mappings itself."""

    def losses(self):
        return []
