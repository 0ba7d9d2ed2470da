# SPDX-License-Identifier: MIT
"""What `env [NAME=VALUE | -u NAME | -i]... COMMAND` runs, and with which environment: the
command a user passes through sudo as `-- env PYTHONPATH=X python3 ...`. The runner looks for a
command's extensions under the sys.path of the Python it runs (targets.command_libraries); behind
`env`, that Python and its PYTHONPATH are env's last words and assignments."""
import os
import shutil

# GNU env's options that change nothing the command's Python sees (what signals it starts with,
# env's own diagnostics).
HARMLESS = ("-v", "--debug", "--default-signal", "--ignore-signal", "--block-signal")


def unwrapped(command, env):
    """(the command env runs, the environment it runs it with) for `command` run with `env`;
    the same pair when command[0] is not env (as PATH finds it). None when env's words are
    ones this does not follow (-C, -S, an unknown option: what env runs is not known here).
    As GNU env reads them: options up to the first other word, then NAME=VALUE words."""
    while command and _is_env(command[0], env):
        env, words = dict(env), list(command[1:])
        while words and words[0].startswith("-") and words[0] != "-":
            word = words.pop(0)
            if word == "--":
                break
            if word in ("-i", "--ignore-environment"):
                env = {}
            elif word in ("-u", "--unset") and words:
                env.pop(words.pop(0), None)
            elif word.startswith("--unset="):
                env.pop(word[len("--unset="):], None)
            elif word.startswith("-u") and not word.startswith("--"):
                env.pop(word[2:], None)
            elif word.split("=", 1)[0] not in HARMLESS:
                return None
        if words[:1] == ["-"]:  # a lone "-" is -i
            env = {}
            words.pop(0)
        while words and "=" in words[0]:
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        command = words
    return (command, env) if command else None


def _is_env(word, env):
    exe = shutil.which(word, path=env.get("PATH", os.defpath))  # execvp's default
    return exe is not None and os.path.basename(os.path.realpath(exe)) == "env"
