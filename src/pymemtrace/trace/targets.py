# SPDX-License-Identifier: MIT
"""What is traced: the libraries with pymemtrace probes of a process or a command, its C library,
and the user a command runs as."""
import glob
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys

from . import elf, procfs
from .errors import Failure
from .scripts import BT_LIBC

# The source tree, when the package runs from one (src/pymemtrace/trace/).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def mapped_libraries(pid, aliases):
    """[(alias, shown name)] of every file mapped by process `pid` that has pymemtrace probes,
    each opened through /proc/PID/map_files (the mapping itself: no path text is followed, and it
    works for a process in another mount namespace)."""
    found, seen = [], set()
    for start, end, _offset, identity, name in procfs.maps_entries(pid):
        if identity in seen:
            continue
        seen.add(identity)
        try:
            alias = aliases.open(procfs.map_file(pid, start, end), probe_elf=True)
        except OSError:
            continue  # unmapped meanwhile, or not a readable regular file
        if alias is not None and elf.has_pymemtrace(alias):
            found.append((alias, os.fsdecode(name)))
    return found


# Run as the command's user, in the command's Python (or the runner's, for --lib DIR): prints,
# NUL-separated, every extension module file under the directories it is given (argv) or, with
# none, under its own sys.path, whose .note.stapsdt names provider pymemtrace. Only importable
# names are walked (packages are identifiers), to a bounded depth.
_SCAN = """
import importlib.machinery, os, sys, time
DEADLINE = time.monotonic() + 20  # a huge tree (a home directory as cwd): what was found so far
SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".so",)
def scan(top, depth, seen, out):
    try:
        info = os.stat(top)
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        if time.monotonic() > DEADLINE:
            return
        try:
            # Not through a directory symlink: one to a source tree (a meson subproject) made a
            # script's directory lead to every stale build under it.
            if entry.is_dir(follow_symlinks=False):
                if depth < 8 and entry.name.isidentifier():
                    scan(entry.path, depth + 1, seen, out)
            elif entry.name.endswith(SUFFIXES) and entry.is_file():
                with open(entry.path, "rb") as file:
                    if any(note[0] == "pymemtrace" for note in stapsdt_notes(file)):
                        out.append(os.path.abspath(entry.path))
        except (OSError, ValueError):
            pass
# Run with -c, sys.path[0] is '' (the working directory); a script run puts its own directory
# there instead (EXTRA), not the working directory.
PATH = sys.path[1:] if SCRIPT_RUN and sys.path[:1] == [''] else sys.path
tops = sys.argv[1:] or [p or os.getcwd() for p in PATH] + EXTRA
found = []
seen = set()
for top in tops:
    scan(top, 0, seen, found)
sys.stdout.buffer.write(b"\\0".join(os.fsencode(path) for path in found))
"""


def _scan_program(extra=(), script_run=False):
    """The scan's program: `extra` directories, and whether the command runs a script
    (`python3 script.py`: its sys.path[0] is the script's directory, not the working one)."""
    return (_reader_source() + f"EXTRA = {list(extra)!r}\nSCRIPT_RUN = {bool(script_run)!r}\n"
            + _SCAN)


def _reader_source():
    """The source of elf.stapsdt_notes (self-contained, top-level), cut from elf's own file:
    `inspect` would cost the runner's start-up more than the scan's reading does."""
    with open(elf.__file__, encoding="utf-8") as source:
        text = source.read()
    start = text.index("\ndef stapsdt_notes(") + 1
    end = text.find("\ndef ", start)
    return text[start:] if end < 0 else text[start:end + 1]


def _command_python(command, env):
    """The Python a command runs: its executable, or the interpreter of its #! line (pytest,
    a console script). None if it is not Python."""
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        return None
    if os.path.basename(os.path.realpath(exe)).startswith("python"):
        return exe
    fd = _open_regular(exe)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as script:
        first = script.readline(256)
    words = first[2:].split() if first.startswith(b"#!") else []
    if words and os.path.basename(words[0]) == b"env" and len(words) > 1:
        words = [shutil.which(os.fsdecode(words[1]), path=env.get("PATH")) or words[1]]
    if words and os.path.basename(os.fsdecode(words[0])).startswith("python"):
        return os.fsdecode(words[0])
    return None


def _open_regular(path):
    """A read-only fd of `path` if it is a regular file, else None. Checked through an O_PATH
    descriptor first: root never opens a device or FIFO a target named (opening some devices acts),
    whatever happens to the path meanwhile."""
    try:
        handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(handle)


def _scanned(argv, env, user, cwd=None):
    try:
        out = subprocess.run(argv, capture_output=True, env=env, cwd=cwd, timeout=60,
                             check=False, preexec_fn=user.become if user else None).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [os.fsdecode(path) for path in out.split(b"\0") if path]


def _aliases_of(paths, aliases):
    """Aliases of the files at `paths` (hostile input: any path a target printed) that are
    regular ELF files with pymemtrace probes, each once."""
    found, seen = [], set()
    for path in paths:
        fd = _open_regular(path)
        if fd is None:
            continue
        try:
            alias = aliases.open(f"/proc/self/fd/{fd}", probe_elf=True)
        except OSError:
            alias = None
        finally:
            os.close(fd)
        if alias is None or not elf.has_pymemtrace(alias):
            continue
        identity = procfs.file_identity(alias)
        if identity not in seen:
            seen.add(identity)
            found.append(alias)
    return found


def command_libraries(command, env, user, aliases, guess=True):
    """Aliases of every instrumented extension the traced command's Python can import: the
    files under its sys.path (as its environment and working directory give it, the script's
    directory included) with pymemtrace probes, found by that Python as the command's user
    (`user`), never with more privileges than the command will have. None found and `guess`:
    the cMemLeak of this source tree's build, if any."""
    python = _command_python(command, env)
    paths = []
    if python:
        script = command[1] if len(command) > 1 and not command[1].startswith("-") else None
        extra = [os.path.dirname(os.path.abspath(script))] if script else []
        # The command is the Python itself (not a #! script): its argument is its script.
        script_run = bool(script) and python == shutil.which(command[0], path=env.get("PATH"))
        paths = _scanned([python, "-c", _scan_program(extra, script_run)], env, user,
                         cwd=os.getcwd())
    if not paths and guess:  # run from a source tree: its build's cMemLeak
        for pattern in ("build/src/pymemtrace", "build-*/src/pymemtrace"):
            built = sorted(glob.glob(os.path.join(REPO, pattern, "cMemLeak*.so")))
            if built:
                paths.append(built[0])
                break
    return _aliases_of(paths, aliases)


def directory_libraries(directory, user, aliases):
    """Aliases of the instrumented extensions under `directory` (--lib DIR), looked for as
    `user` (None: the runner's own user) by the runner's Python."""
    paths = _scanned([sys.executable, "-I", "-c", _scan_program(), directory],
                     {"PATH": os.defpath}, user)
    return _aliases_of(paths, aliases)


def libc_of(pid, aliases):
    """The alias of the C library of process `pid` (None: the one at the usual path)."""
    if pid is not None:
        for start, end, _offset, _identity, name in procfs.maps_entries(pid):
            if re.search(rb"/libc\.so\.6$|/libc-[\d.]+\.so$", name):
                return aliases.open(procfs.map_file(pid, start, end))
    return aliases.open(BT_LIBC if os.path.exists(BT_LIBC) else "/lib64/libc.so.6")


class CommandUser:
    """Who a traced command runs as: tracing needs root, the command does not. Default: the user
    who ran sudo (SUDO_UID/SUDO_GID), else the runner's own user."""

    def __init__(self, entry, gid=None):
        self.name, self.uid, self.home = entry.pw_name, entry.pw_uid, entry.pw_dir
        self.gid = entry.pw_gid if gid is None else gid
        self.groups = os.getgrouplist(self.name, self.gid)

    @classmethod
    def choose(cls, requested, environ):
        if requested is not None:
            try:
                entry = (pwd.getpwuid(int(requested)) if requested.isdigit()
                         else pwd.getpwnam(requested))
            except KeyError:
                raise Failure(f"--user {requested!r}: no such user",
                              "give a user name or number from /etc/passwd") from None
            return None if entry.pw_uid == os.geteuid() else cls(entry)
        uid, gid = environ.get("SUDO_UID", ""), environ.get("SUDO_GID", "")
        if os.geteuid() == 0 and uid.isdigit() and int(uid) != 0:
            try:
                return cls(pwd.getpwuid(int(uid)), int(gid) if gid.isdigit() else None)
            except KeyError:
                raise Failure(f"SUDO_UID={uid} names no user",
                              "give --user USER, or --user root to run the command as root"
                              ) from None
        return None

    def become(self):
        """In a child about to exec: drop to this user for good (groups, then gid, then uid)."""
        os.setgroups(self.groups)
        os.setgid(self.gid)
        os.setuid(self.uid)

    def environ(self, env):
        """The command's environment, with HOME, USER and LOGNAME of this user (as su does)."""
        return dict(env, HOME=self.home, USER=self.name, LOGNAME=self.name)
