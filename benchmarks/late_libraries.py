# SPDX-License-Identifier: MIT
"""The runner on its engine with no --lib, for a command that gets its extension through
`env PYTHONPATH=... bash -c "python3 ..."` (issue 20's front door), one run, as root, from `/`:

    python3 benchmarks/late_libraries.py BUILD [--blocks N]

The command imports cMemLeak (a copy of BUILD's, so that nothing names it beforehand) and at once
holds N blocks (default 10,000), then ends. Rows: its wall time untraced, and under
`pymemtrace-trace --report leaks --allow-loss` (start to exit, the report included) on the
engine with no --lib, on the engine with --lib naming the copy, and on bpftrace with that --lib;
the ratio to untraced, the blocks each report holds of N and the library's window (mapping to
attach) the report states: what was allocated in that window was not seen. Wall clock on a
shared machine: compare the ratios, not absolutes.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PYTHON = "/usr/bin/python3"
RUNNER = os.path.join(ROOT, "toolkit", "pymemtrace-trace")


def package_copy(build, directory):
    """A copy of BUILD's pymemtrace package (cMemLeak and __init__) under `directory`."""
    built = os.path.join(build, "src", "pymemtrace")
    package = os.path.join(directory, "pymemtrace")
    os.mkdir(package)
    shutil.copy(os.path.join(built, "__init__.py"), package)
    for name in os.listdir(built):
        if name.startswith("cMemLeak.") and name.endswith(".so"):
            shutil.copy(os.path.join(built, name), package)
    return directory


def timed(argv):
    started = time.monotonic()
    result = subprocess.run(argv, cwd="/", capture_output=True, text=True, check=False)
    return time.monotonic() - started, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--blocks", type=int, default=10000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        pythonpath = package_copy(os.path.abspath(options.build), directory)
        code = ("from pymemtrace import cMemLeak; import os; "
                f"b = [cMemLeak.CMalloc(100) for _ in range({options.blocks})]; os._exit(0)")
        command = ["env", f"PYTHONPATH={pythonpath}", "bash", "-c", f'{PYTHON} -c "{code}"']
        library = os.path.join(pythonpath, "pymemtrace")
        untraced, _ = timed(command)
        print(f"| untraced | {untraced:.3f} s | | |")
        for engine, lib in (("libbpf", []), ("libbpf", ["--lib", library]),
                            ("bpftrace", ["--lib", library])):
            traced, result = timed([PYTHON, RUNNER, "--engine", engine, *lib, "--report",
                                    "leaks", "--json", "--allow-loss", "--", *command])
            if result.returncode != 0:
                raise SystemExit(f"the runner failed ({result.returncode}): "
                                 f"{result.stderr[-800:]}")
            held = sum(row["count"] for row in json.loads(result.stdout))
            window = [line.split("unknown (", 1)[-1].rsplit("); give", 1)[0].split(", ", 1)[-1]
                      for line in result.stderr.splitlines() if "mapped before" in line]
            print(f"| {engine}, {'--lib' if lib else 'no --lib'} | {traced:.3f} s | "
                  f"{traced / untraced:.1f}x | {held} of {options.blocks} blocks, window "
                  f"{window[0] if window else 'none'} |")


if __name__ == "__main__":
    main()
