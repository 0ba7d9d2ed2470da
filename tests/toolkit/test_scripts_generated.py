# SPDX-License-Identifier: MIT
"""The checked-in toolkit/*.bt and toolkit/*.d are what src/pymemtrace/trace/scripts.py makes
(fix: tools/generate-scripts.sh), and the generator keeps its promises to the runner: probe specs
per library as the runner used to substitute them, the Python and C library named only in probe
specs, both spellings of the option words. No root, no tracer: text only."""
import contextlib
import importlib.util
import io
import os
import re
import tempfile

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOLKIT = os.path.join(ROOT, "toolkit")
GENERATOR = os.path.join(ROOT, "src", "pymemtrace", "trace", "scripts.py")


def load_generator():
    """The generator as a module of its own: the package's __init__ is not needed."""
    spec = importlib.util.spec_from_file_location("pymemtrace_toolkit_scripts", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def substituted(text, libraries, python, libc, bt_python, bt_libc):
    """What the runner did to a checked-in script before the generator took its arguments."""
    text = re.sub(r"usdt:\*:pymemtrace:(\w+)",
                  lambda m: ",".join(f"usdt:{lib}:pymemtrace:{m.group(1)}" for lib in libraries),
                  text)
    for kind in ("usdt", "uprobe", "uretprobe"):
        text = text.replace(f"{kind}:{bt_python}:", f"{kind}:{python}:")
    return text.replace(f"probe:{bt_libc}:", f"probe:{libc}:")


def checks(scripts):
    """(passed, what) of each check."""
    files = scripts.generated()

    # 1. Every checked-in script is the generator's, and every script of toolkit/ is generated.
    for name in sorted(files):
        path = os.path.join(TOOLKIT, name)
        with open(path) as checked_in:
            same = checked_in.read() == files[name]
        yield (same, f"toolkit/{name} is as generated (else run tools/generate-scripts.sh)")
    present = {n for n in os.listdir(TOOLKIT) if n.endswith((".bt", ".d"))}
    yield (present == set(files), f"no toolkit script outside the generator "
                                  f"(extra: {sorted(present - set(files))}, "
                                  f"missing: {sorted(set(files) - present)})")
    yield (sorted(scripts.SCRIPTS) == sorted(n[:-3] for n in files if n.endswith(".bt")),
           "SCRIPTS names every .bt")

    # 2. --check fails, naming the file, when a script differs; passes when none does.
    with tempfile.TemporaryDirectory() as directory:
        with contextlib.redirect_stdout(io.StringIO()):
            scripts.main(["--write", directory])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            clean = scripts.main(["--check", directory])
        with open(os.path.join(directory, "pymemtrace_flow.d"), "a") as edited:
            edited.write("/* edited by hand */\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            dirty = scripts.main(["--check", directory])
        yield (clean == 0 and dirty == 1 and "pymemtrace_flow.d" in out.getvalue()
               and "pymemtrace_flow.bt" not in out.getvalue(),
               f"--check: 0 when all match, 1 naming the differing file ({clean}, {dirty})")

    # 3. Probe specs: with libraries, python and libc given, the program is what the runner made
    #    by substitution; the files given appear in probe specs and nowhere else.
    libraries = ["/proc/4242/fd/7", "/proc/4242/fd/8"]
    python, libc = "/proc/4242/fd/9", "/proc/4242/fd/10"
    for name in scripts.SCRIPTS:
        standalone = scripts.bpftrace_script(name)
        program = scripts.bpftrace_script(name, libraries, python, libc)
        yield (program == substituted(standalone, libraries, python, libc,
                                      scripts.BT_PYTHON, scripts.BT_LIBC),
               f"{name}: bpftrace_script(libraries, python, libc) = the runner's substitution")
        yield (not re.search(r"usdt:\*:pymemtrace:\w", program), f"{name}: no usdt:* left")
        outside = [m.start() for path in [*libraries, python, libc]
                   for m in re.finditer(re.escape(path) + r"(?![0-9])", program)
                   if not re.search(r"(?:usdt|uprobe|uretprobe):$", program[:m.start()])]
        yield (not outside, f"{name}: the files given stand only in probe specs ({outside})")
        yield (scripts.BT_PYTHON not in program and scripts.BT_LIBC not in program,
               f"{name}: the default files are all replaced")

    # 4. Options: the words of docs/toolkit.md, the older ones too; the D macros.
    for name in scripts.SCRIPTS:
        text = files[name + ".bt"]
        begin = text[text.index("\nBEGIN\n"):text.index("}", text.index("\nBEGIN\n"))]
        for new, old in (("full_file_path", "full_path"), ("python_call_stack", "call_stack")):
            if f"@opt_{new}" in text:
                yield (f'"{new}"' in begin and f'"{old}"' in begin,
                       f"{name}.bt: accepts {new} and the older {old}")
        yield ("@opt_full_file_path" in text, f"{name}.bt: takes full_file_path")
    for name in scripts.D_SCRIPTS:
        text = files[name + ".d"]
        yield ("#ifdef FULL_FILE_PATH" in text, f"{name}.d: -D FULL_FILE_PATH")
        yield (("#ifdef PYTHON_CALL_STACK" in text) == ("python$target" in text),
               f"{name}.d: -D PYTHON_CALL_STACK where CPython's probes are used")
        yield (("PYSTR(" in text.split("#define PYSTR", 1)[-1]) == ("#define PYSTR" in text),
               f"{name}.d: PYSTR defined only where used")

    # 5. Headers: generated, with their usage; the original examples named only as allowed.
    allowed = ("the seed (the original pymemtrace DTrace examples this project re-implements)")
    for name, text in sorted(files.items()):
        header = " ".join(re.sub(r"^(?://|/?\*)", "", line).strip()
                          for line in text.split("\n\n")[0].splitlines())
        yield ("Do not edit by hand: generated from src/pymemtrace/trace/scripts.py" in header
               and "Usage: " in header, f"{name}: header says it is generated, and its usage")
        yield ("seed" not in text.replace(allowed, ""), f"{name}: the word only as {allowed!r}")


CHECKS = list(checks(load_generator()))


@pytest.mark.parametrize("passed, what", CHECKS, ids=[what for _, what in CHECKS])
def test_the_generator_and_its_scripts(passed, what):
    assert passed, what
