# SPDX-License-Identifier: MIT
"""Which Python a traced command really runs, when it may not be the one the user meant: its
`python3` found on PATH as a pyenv shim or another wrapper script (a shell script that picks an
interpreter only when it runs, and whose own processes get traced too), or a CPython other than
the one the extensions given with --lib were built for (their file names carry the ABI tag,
`.cpython-311-`). The runner prints what it found and how to name the right Python; nothing here
changes what is traced."""
import os
import re
import shutil
import subprocess

from . import env_command
from .names import shown
from .targets import _command_python, interpreter_line

SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}
ABI_TAG = re.compile(r"\.cpython-3(\d+)[a-z]*-")


def _shell_of(exe):
    """The shell that runs `exe` if it is a script (`#!/bin/sh`, `#!/usr/bin/env bash`), else
    None."""
    words = [os.path.basename(word) for word in interpreter_line(exe)]
    if words and words[0] == "env" and len(words) > 1:
        words = words[1:]
    return words[0] if words and words[0] in SHELLS else None


def _version_of(python, user):
    """"3.11" for the CPython at `python`, asked as the command's user; None if it cannot say."""
    try:
        out = subprocess.run([python, "-I", "-S", "-c",
                              "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=False,
                             preexec_fn=user.become if user else None).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if re.fullmatch(r"3\.\d+", out) else None


def notes(command, env, user, libraries):
    """Lines for the user (each a sentence that ends with how to fix it), empty when the
    command's Python is what it seems. `libraries`: aliases of the --lib extensions. Behind
    `env NAME=VALUE...`, of the command env runs."""
    command, env = env_command.unwrapped(command, env) or (command, env)
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        return []
    shell = _shell_of(exe)
    if shell:
        pyenv = "pyenv" in exe.split(os.sep) or ".pyenv" in exe.split(os.sep)
        kind = "a pyenv shim" if pyenv else "a wrapper script"
        name = "\"$(pyenv which python3)\"" if pyenv else "/usr/bin/python3"
        return [f"{shown(command[0])} is {shown(exe)}, {kind} ({shell} chooses the Python "
                "only when it runs, and its own processes are traced too): name the Python "
                f"to trace by its path, e.g. -- {name} ..."]
    python = _command_python(command, env)
    built_for = {f"3.{match.group(1)}" for match in
                 (ABI_TAG.search(os.path.basename(os.path.realpath(lib))) for lib in libraries)
                 if match}
    if python is None or not built_for:
        return []
    version = _version_of(python, user)
    if version is None or version in built_for:
        return []
    wanted = ", ".join(sorted(built_for))
    return [f"{shown(command[0])} is {shown(os.path.realpath(python))}, CPython {version}, but "
            f"the --lib extensions are built for CPython {wanted}: name that Python by its path "
            f"(-- /path/to/python{wanted.split(', ')[0]} ...), or rebuild them for {version}"]
