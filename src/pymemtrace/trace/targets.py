# SPDX-License-Identifier: MIT
"""What is traced: the libraries with pymemtrace probes of a process or a command, its C library,
and the user a command runs as."""
import glob
import os
import pwd
import re
import shutil
import subprocess
import sys

from . import elf, env_command, procfs, safe_open
from .errors import Failure
from .names import shown
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


# Run as the command's user, in the command's Python (or the system's, for --lib DIR): prints,
# NUL-separated, every extension module file under the directories it is given (argv) or, with
# none, under its own sys.path, whose .note.stapsdt names provider pymemtrace; and, as
# "PASSED <what>\t<path>", each file of an extension's name it did not read: a symbolic link, a
# FIFO, a device... (opened with O_PATH|O_NOFOLLOW first: it neither follows, acts nor blocks).
# Only importable names are walked (packages are identifiers), to a bounded depth; under the
# working directory and the script's (user directories, `/` or a home at worst) only regular
# packages (with __init__.py): namespace packages are how installs share a name (site-packages'
# google/), not how a working tree is imported, and walking every directory of `/` found the
# extensions of every unrelated build on the disk.
_SCAN = """
import importlib.machinery, os, stat, sys, time
DEADLINE = time.monotonic() + 20  # a huge tree (a home directory as cwd): what was found so far
SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".so",)
KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device",
         stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}
def opened(path):
    handle = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            return KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        if info.st_size > 1 << 32:
            return "over 4 GiB"
        return os.open("/proc/self/fd/%d" % handle, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        os.close(handle)
def scan(top, depth, seen, out, packages_only=False):
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
                if depth < 8 and entry.name.isidentifier() and not (
                        packages_only
                        and not os.path.isfile(os.path.join(entry.path, "__init__.py"))):
                    scan(entry.path, depth + 1, seen, out, packages_only)
            elif entry.name.endswith(SUFFIXES):
                fd = opened(entry.path)
                if isinstance(fd, str):
                    out.append("PASSED %s\t%s" % (fd, os.path.abspath(entry.path)))
                    continue
                with os.fdopen(fd, "rb") as file:
                    if any(note[0] == "pymemtrace" for note in stapsdt_notes(file)):
                        out.append(os.path.abspath(entry.path))
        except (OSError, ValueError):
            pass
# Run with -c, sys.path[0] is '' (the working directory); a script run puts its own directory
# there instead (EXTRA), not the working directory.
PATH = sys.path[1:] if SCRIPT_RUN and sys.path[:1] == [''] else sys.path
if sys.argv[1:]:
    tops, user_tops = sys.argv[1:], []
else:
    tops = [p for p in PATH if p]
    user_tops = [os.getcwd() for p in PATH if not p] + EXTRA
found = []
seen = set()
for top in tops:  # first: a user directory also on PYTHONPATH is walked whole
    scan(top, 0, seen, found)
for top in user_tops:
    scan(top, 0, seen, found, packages_only=True)
sys.stdout.buffer.write(b"\\0".join(os.fsencode(path) for path in found))
"""


def _scan_program(extra=(), script_run=False):
    """The scan's program: `extra` directories, and whether the command runs a script
    (`python3 script.py`: its sys.path[0] is the script's directory, not the working one)."""
    return (_reader_source() + f"EXTRA = {list(extra)!r}\nSCRIPT_RUN = {bool(script_run)!r}\n"
            + _SCAN)


def _reader_source():
    """The source of the reader (elf.section_headers and elf.stapsdt_notes, self-contained, at
    the end of elf's file), cut from that file: `inspect` would cost the runner's start-up more
    than the scan's reading does."""
    with open(elf.__file__, encoding="utf-8") as source:
        text = source.read()
    return text[text.index("\ndef section_headers(") + 1:]


def _command_python(command, env):
    """The Python a command runs: its executable, or the interpreter of its #! line (pytest,
    a console script). None if it is not Python."""
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        return None
    if os.path.basename(os.path.realpath(exe)).startswith("python"):
        return exe
    words = interpreter_line(exe)
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        words = [shutil.which(words[1], path=env.get("PATH")) or words[1]]
    if words and os.path.basename(words[0]).startswith("python"):
        return words[0]
    return None


def interpreter_line(exe):
    """The words of the #! line of the script `exe` (read as the kernel will run it, through
    safe_open); [] if it has none or cannot be read."""
    try:
        fd = safe_open.followed(exe)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as script:
        first = script.readline(256)
    return [os.fsdecode(word) for word in first[2:].split()] if first.startswith(b"#!") else []


class Scan:
    """What a scan found: `paths` with pymemtrace probes, and `passed`, the (what, path) of the
    files it did not read (a link, a FIFO...) or a reason it stopped."""

    def __init__(self, out=b"", passed=()):
        self.paths, self.passed = [], list(passed)
        for record in (os.fsdecode(item) for item in out.split(b"\0") if item):
            if record.startswith("PASSED "):
                what, _, path = record[len("PASSED "):].partition("\t")
                self.passed.append((what, path))
            else:
                self.paths.append(record)

    def said(self, most=3):
        """The files passed over, in words, by what they are (at most `most` of each named),
        or ''."""
        kinds = {}
        for what, path in sorted(self.passed):
            kinds.setdefault(what, []).append(path)
        return "; ".join(
            f"{shown(what)}: {', '.join(shown(path) for path in paths[:most])}"
            + (f" and {len(paths) - most} more" if len(paths) > most else "")
            for what, paths in kinds.items())


SCAN_SECONDS = 60


def _scanned(argv, env, user, cwd):
    """The Scan printed by the scan program `argv`, run as `user` (None: as the runner) from
    directory `cwd`."""
    try:
        out = subprocess.run(argv, capture_output=True, env=env, cwd=cwd, timeout=SCAN_SECONDS,
                             check=False, preexec_fn=user.become if user else None).stdout
    except subprocess.TimeoutExpired:
        return Scan(passed=[(f"the scan did not end within {SCAN_SECONDS} s", argv[-1])])
    except (OSError, subprocess.SubprocessError) as error:
        return Scan(passed=[(f"the scan could not run: {error}", argv[0])])
    return Scan(out)


def _aliases_of(paths, aliases, passed=None):
    """Aliases of the files at `paths` (hostile input: any path a target printed) that are
    regular ELF files with pymemtrace probes built for this machine, each once; each opened as
    safe_open.walked says (no other user's link followed). Those refused or of another machine
    are added to `passed`, if given."""
    found, seen, host = [], set(), elf.host_machine()
    for path in paths:
        try:
            alias = aliases.open_walked(path, probe_elf=True)
        except OSError as error:
            if passed is not None:
                passed.append((safe_open.reason(error), path))
            continue
        if alias is None or not elf.has_pymemtrace(alias):
            continue
        built_for = elf.machine(alias)
        if built_for != host:  # bpftrace cannot parse its probes' arguments (aarch64's 8@x0)
            if passed is not None:
                passed.append((f"built for {elf.machine_name(built_for)}, not this machine's "
                               f"{elf.machine_name(host)}", path))
            continue
        identity = procfs.file_identity(alias)
        if identity not in seen:
            seen.add(identity)
            found.append(alias)
    return found


def command_libraries(command, env, user, aliases, guess=True, passed=None):
    """Aliases of every instrumented extension the traced command's Python can import: the
    files under its sys.path (as its environment and working directory give it, the script's
    directory included) with pymemtrace probes, found by that Python as the command's user
    (`user`), never with more privileges than the command will have. None found and `guess`:
    the cMemLeak of this source tree's build, if any. `passed`, a list, gets the (what, path)
    of the files not read (Scan.passed). Behind `env NAME=VALUE...`, the command env runs,
    with the environment env gives it."""
    command, env = env_command.unwrapped(command, env) or (command, env)
    python = _command_python(command, env)
    paths = []
    if python:
        script = command[1] if len(command) > 1 and not command[1].startswith("-") else None
        extra = [os.path.dirname(os.path.abspath(script))] if script else []
        # The command is the Python itself (not a #! script): its argument is its script.
        script_run = bool(script) and python == shutil.which(command[0], path=env.get("PATH"))
        # Not -I: the scan must see the sys.path the command will have (PYTHONPATH, user site,
        # working directory); it runs as the command's user, who runs that Python anyway.
        scan = _scanned([python, "-c", _scan_program(extra, script_run)], env, user,
                        cwd=os.getcwd())
        paths = scan.paths
        if passed is not None:
            passed += scan.passed
    if not paths and guess:  # run from a source tree: its build's cMemLeak
        for pattern in ("build/src/pymemtrace", "build-*/src/pymemtrace"):
            built = sorted(glob.glob(os.path.join(REPO, pattern, "cMemLeak*.so")))
            if built:
                paths.append(built[0])
                break
    return _aliases_of(paths, aliases, passed)


def directory_libraries(directory, user, aliases):
    """(aliases of the instrumented extensions under `directory` (--lib DIR), the Scan): looked
    for as `user` (None: the runner's own user) by the system's Python, isolated (-I), from /,
    then each file found opened by safe_open.walked."""
    scan = _scanned([sys.executable, "-I", "-c", _scan_program(), directory],
                    {"PATH": os.defpath}, user, cwd="/")
    return _aliases_of(scan.paths, aliases, scan.passed), scan


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
