# SPDX-License-Identifier: MIT
"""Builds examples/c_extension as an outside project would (its own `meson setup`, pymemtrace
found through dependency('pymemtrace') and forced to come from its subprojects/pymemtrace),
imports the module it makes, and checks that the module carries the pymemtrace probes.

Usage: check_c_extension.py MESON PYTHON READELF SOURCE_DIR
"""
import glob
import os
import subprocess
import sys
import tempfile

PROBES = {"alloc", "realloc", "free", "pyalloc", "pyrealloc", "pyfree", "pystack4", "pystack16",
          "pynative", "pybatch"}


def run(*command, **kwargs):
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        print(result.stdout, result.stderr, sep="\n", file=sys.stderr)
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}")
    return result.stdout


def main():
    meson, python, readelf, source = sys.argv[1:5]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESON")}
    with tempfile.TemporaryDirectory(prefix="pymemtrace-c-extension-") as build:
        setup = run(meson, "setup", build, source, f"-Dpython={python}",
                    "--force-fallback-for=pymemtrace", env=env)
        if "Executing subproject pymemtrace" not in setup:
            sys.exit("pymemtrace was not taken from the subproject:\n" + setup)
        run(meson, "compile", "-C", build, env=env)
        modules = glob.glob(os.path.join(build, "spam*.so"))
        if len(modules) != 1:
            sys.exit(f"expected one spam module in {build}, found {modules}")

        notes = run(readelf, "-n", modules[0])
        probes = {line.split("Name:", 1)[1].strip() for line in notes.splitlines()
                  if line.strip().startswith("Name:")}
        providers = {line.split("Provider:", 1)[1].strip() for line in notes.splitlines()
                     if line.strip().startswith("Provider:")}
        if probes != PROBES or providers != {"pymemtrace"}:
            sys.exit(f"{modules[0]}: probes {sorted(probes)} from {sorted(providers)}, "
                     f"expected {sorted(PROBES)} from pymemtrace")

        address = run(python, "-c", "import spam; print(spam.churn(1000))",
                      env={**env, "PYTHONPATH": build}).strip()
        if int(address) <= 0:
            sys.exit(f"spam.churn returned {address}")
        print(f"OK: {os.path.basename(modules[0])} has the six probes; spam.churn -> {address}")


if __name__ == "__main__":
    main()
