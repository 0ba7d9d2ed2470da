# SPDX-License-Identifier: MIT
"""What is traced: the libraries with pymemtrace probes of a process or a command, its C library,
and the user a command runs as."""
import glob
import os
import pwd
import re
import shutil
import subprocess

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


def find_command_libraries(command, env, user):
    """Paths of cMemLeak of this project (or of an installed pymemtrace) for a traced command.
    The target Python looks it up with the command's environment (PYTHONPATH...) and with the
    privileges the command will have (`user`), never more."""
    found = []
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe and os.path.basename(os.path.realpath(exe)).startswith("python"):
        probe = ("import importlib.util as u, os, sys\n"
                 "s = u.find_spec('pymemtrace.cMemLeak')\n"
                 "sys.stdout.buffer.write(os.fsencode(s.origin) if s and s.origin else b'')")
        try:
            out = subprocess.run([exe, "-c", probe], capture_output=True, env=env, timeout=30,
                                 check=False, preexec_fn=user.become if user else None).stdout
        except (OSError, subprocess.SubprocessError):
            out = b""
        origin = os.fsdecode(out)
        if origin and os.path.exists(origin):
            found.append(origin)
    if not found:  # run from a source tree: its build's cMemLeak
        for pattern in ("build/src/pymemtrace", "build-*/src/pymemtrace"):
            built = sorted(glob.glob(os.path.join(REPO, pattern, "cMemLeak*.so")))
            if built:
                found.append(built[0])
                break
    return found


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
