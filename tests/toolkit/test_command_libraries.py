# SPDX-License-Identifier: MIT
"""Which extensions the runner finds for a command before it runs (targets.command_libraries):
behind `env NAME=VALUE...` (how an environment passes through sudo), under the sys.path env
gives the Python it runs; under the working directory (`python3 -c` from `/` or a home) only
regular packages, not every directory of the disk. What is found is attached before the command
runs, so that nothing it allocates early is lost (docs/engine.md). Real files, the real Python;
no root needed."""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from runner import LIB, PYTHON  # noqa: E402
from pymemtrace.trace import targets  # noqa: E402
from pymemtrace.trace.aliases import FileAliases  # noqa: E402
from pymemtrace.trace.env_command import unwrapped  # noqa: E402

CMEMLEAK = next(os.path.join(LIB, name) for name in os.listdir(LIB)
                if name.startswith("cMemLeak.") and name.endswith(".so"))
ENV = {"PATH": os.environ.get("PATH", os.defpath), "HOME": "/nonexistent"}


def found(command, cwd, env=ENV):
    """The inodes of the libraries command_libraries finds for `command` run from `cwd`."""
    aliases, here = FileAliases(), os.getcwd()
    try:
        os.chdir(cwd)
        return {os.stat(alias).st_ino
                for alias in targets.command_libraries(command, env, None, aliases, guess=False)}
    finally:
        os.chdir(here)
        aliases.close()


def copy_into(directory, package=None, regular=True):
    """A copy of cMemLeak in `directory`/`package` (a regular package if `regular`); its inode."""
    where = os.path.join(directory, package) if package else directory
    os.makedirs(where, exist_ok=True)
    if package and regular:
        open(os.path.join(where, "__init__.py"), "w").close()
    copy = os.path.join(where, os.path.basename(CMEMLEAK))
    shutil.copy(CMEMLEAK, copy)
    return os.stat(copy).st_ino


def test_env_assignments_are_the_environment_of_the_command_env_runs():
    command, env = unwrapped(["env", "PYTHONPATH=/x", "A=1=2", PYTHON, "-c", "pass"], ENV)
    assert command == [PYTHON, "-c", "pass"]
    assert env["PYTHONPATH"] == "/x" and env["A"] == "1=2" and env["PATH"] == ENV["PATH"]


def test_env_unsets_and_ignore_environment_are_followed_through_nested_envs():
    command, env = unwrapped(["env", "-i", "PATH=/usr/bin", "B=1", "env", "-u", "B", "--unset=C",
                              "-uD", "--", "E=2", "python3"], dict(ENV, C="3", D="4"))
    assert command == ["python3"] and env == {"PATH": "/usr/bin", "E": "2"}
    assert unwrapped(["env", "-", "python3"], ENV) == (["python3"], {})


def test_env_words_not_followed_are_said_unknown():
    for words in (["-C", "/tmp"], ["-S", "python3 -c pass"], ["--chdir=/"], ["-x"], []):
        assert unwrapped(["env", *words, "python3"] if words else ["env"], ENV) is None, words


def test_an_option_after_an_assignment_is_the_command_as_env_reads_it():
    assert unwrapped(["env", "A=1", "-i", "x"], ENV) == (["-i", "x"], dict(ENV, A="1"))


def test_a_command_that_is_not_env_is_left_as_it_is():
    assert unwrapped([PYTHON, "-c", "pass"], ENV) == ([PYTHON, "-c", "pass"], ENV)


def test_the_extensions_on_the_pythonpath_env_gives_are_found(tmp_path):
    copy = copy_into(str(tmp_path / "lib"))
    # Before env was followed: env is not Python, nothing was looked for, and the library was
    # attached only once mapped (a stated window, exit 3).
    assert copy in found(["env", f"PYTHONPATH={tmp_path / 'lib'}", PYTHON, "-c", "pass"], "/")


def test_under_the_working_directory_only_regular_packages_are_walked(tmp_path):
    in_package = copy_into(str(tmp_path), "pkg")
    at_top = copy_into(str(tmp_path))
    in_plain_directory = copy_into(str(tmp_path / "builds" / "old"), "pkg")
    seen = found([PYTHON, "-c", "pass"], str(tmp_path))
    assert in_package in seen and at_top in seen
    # Walked before: from / or a home, every build on the disk was attached.
    assert in_plain_directory not in seen


def test_a_pythonpath_directory_is_walked_whole_even_as_the_working_directory(tmp_path):
    in_plain_directory = copy_into(str(tmp_path / "builds"), "ns", regular=False)
    assert in_plain_directory in found([PYTHON, "-c", "pass"], str(tmp_path),
                                       dict(ENV, PYTHONPATH=str(tmp_path)))
