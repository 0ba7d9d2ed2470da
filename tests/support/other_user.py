# SPDX-License-Identifier: MIT
"""A second, unprivileged account for the tests that play a hostile local user: created for the
test under a name no other run uses, with a home of its own, and removed (home included) after.
Needs root, as every tracer test does."""
import contextlib
import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int
    home: str

    def command(self, argv):
        """argv run as this user (uid, gid, no other groups), from its home, with a clean env."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--", "env", "-i", f"HOME={self.home}", f"USER={self.name}",
                "PATH=/usr/bin:/bin", *argv]

    def run(self, argv, **kwargs):
        """Runs argv as this user (subprocess.run's keywords); cwd defaults to the user's home."""
        kwargs.setdefault("cwd", self.home)
        return subprocess.run(self.command(argv), **kwargs)

    def popen(self, argv, **kwargs):
        kwargs.setdefault("cwd", self.home)
        return subprocess.Popen(self.command(argv), **kwargs)


@contextlib.contextmanager
def other_user():
    """Yields an OtherUser that exists for the duration of the block."""
    name = "pmt" + secrets.token_hex(4)  # 11 characters: unique per run, valid everywhere
    subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        os.chmod(entry.pw_dir, 0o755)  # the runner (root) and tests read what it leaves there
        yield OtherUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True)
