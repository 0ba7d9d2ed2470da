# SPDX-License-Identifier: MIT
"""The processes a report covers: the target and what it forked (the scripts follow them, see
scripts._bt_follow). Entries come per process; a report merges them by location (the default)
or keeps each process apart (--per-process), and says how each process ended, from the wait
statuses the scripts keep in @ended."""
import os
import signal

from .locations import native_id
from .names import shown

COMMAND_BYTES = 1024  # of a command line kept (--all): enough to tell processes apart
# What a process exec'd when the script stopped tracing it (scripts.SETID_LINE's flag).
SETID_WHAT = {True: "set-user-ID", False: "set-group-ID"}


def combine(entries, per_process):
    """Entries (each with a `pid`) merged by location and domain, each then with the sorted
    `pids` it came from; as they are, each with its `pid`, if `per_process`."""
    if per_process:
        return [dict(e) for e in entries]
    merged = {}
    for e in entries:
        key = (e["file"], e["line"], e["function"], e["domain"],
               tuple(tuple(f) for f in e.get("stack", ())), native_id(e))
        into = merged.get(key)
        if into is None:
            into = merged[key] = {k: v for k, v in e.items() if k != "pid"}
            into["pids"] = set()
        else:
            into["count"] += e["count"]
            into["bytes"] += e["bytes"]
        into["pids"].add(e["pid"])
    for e in merged.values():
        e["pids"] = sorted(e["pids"])
    return list(merged.values())


def how_ended(status):
    """A wait status (curtask->exit_code at exit) in words."""
    if status & 0x7F == 0:
        return f"exited with status {(status >> 8) & 0xFF}"
    number = status & 0x7F
    try:
        name = f" ({signal.Signals(number).name})"
    except ValueError:
        name = ""
    return f"killed by signal {number}{name}" + (", core dumped" if status & 0x80 else "")


def ended_statuses(maps):
    """{pid: wait status} of the traced processes that ended while traced."""
    return {int(pid): int(status) for pid, status in (maps.get("@ended") or {}).items()}


def command_line(pid):
    """The command line of `pid` (/proc/PID/cmdline, its first COMMAND_BYTES), arguments
    joined by spaces, as it came: hostile, to be shown only through command_shown(); "" when the
    process is gone or has none (a kernel thread, a zombie)."""
    try:
        fd = os.open(f"/proc/{pid}/cmdline", os.O_RDONLY)
    except OSError:
        return ""
    try:
        data = os.read(fd, COMMAND_BYTES + 1)
    except OSError:
        return ""
    finally:
        os.close(fd)
    cut = len(data) > COMMAND_BYTES
    text = os.fsdecode(data[:COMMAND_BYTES].rstrip(b"\0").replace(b"\0", b" "))
    return text + ("..." if cut else "")


def command_shown(command):
    """A command line fit for a terminal: escaped (see names.shown), `?` when unknown."""
    return shown(command) if command else "?"


def process_lines(pids, ended, commands=None, setid=None):
    """One line per process: its PID (and command line, if known) and how it ended, that it
    still ran, or that it exec'd a set-ID program (`setid`: {pid: what}) and was no longer
    traced."""
    setid = setid or {}

    def how(pid):
        if pid in setid:
            return f"exec'd a {setid[pid]} program: not traced from then on"
        return how_ended(ended[pid]) if pid in ended else "still running when tracing stopped"
    return [f"   PID {pid}"
            + (f" ({command_shown(commands.get(pid, ''))})" if commands is not None else "")
            + ": " + how(pid) for pid in sorted(pids)]
