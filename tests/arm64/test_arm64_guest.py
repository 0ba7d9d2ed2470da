# SPDX-License-Identifier: MIT
"""arm64 traced for real (issue 24): Debian's arm64 kernel booted under qemu-system-aarch64
(software emulation) from the root tools/arm64/build-root.sh caches, running bpftrace on arm64
builds of this tree's probes. Here, on the host: cross-build with aarch64-linux-gnu-gcc the
programs and cMemLeak (against the guest's own Python headers), pack them with the test modules
as the guest's /pymemtrace, boot (tools/arm64/run-guest.sh), and read each guest test module's
result from the console. In the guest:

- tests/arm64/guest/test_probe_arguments.py: every argument of the six probes, pyalloc's
  seventh included, read by bpftrace as probe_arguments.c passed it;
- tests/tracer/test_probes_fire.py on traced_program (1-byte sites; arm64 has no 5-byte ones):
  sites, semaphores set only for attached probes and cleared on detach, the values of a real
  allocation sequence;
- tests/tracer/test_cmemleak_probes.py: cMemLeak built for the guest's python3, its blocks'
  alloc/free and the Python line and function of each pyalloc;
- tests/arm64/guest/test_stack_record.py: with depth asked, the `stack` record read through
  bpftrace holds the Python stack.
- tests/toolkit/test_trace.py's flow and leaks tests: the runner, toolkit/pymemtrace-trace,
  tracing examples/ex_dtrace.py there.

Run through tests/support/run_pytest.py as root (tests/arm64/meson.build). The first run builds
the root (minutes); later runs reuse it.
"""
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent.parent
TOOLS = SOURCE / "tools" / "arm64"
GUEST_TIMEOUT = 1500  # seconds for one boot and every guest test: ~2-4 minutes is usual
PYTHON_SO = "cMemLeak.cpython-311-aarch64-linux-gnu.so"
CROSS_TOOLS = ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++", "qemu-system-aarch64",
               "debootstrap", "cpio")

# The guest's test runs: name, then the arguments of tests/support/run_pytest.py there.
GUEST_RUNS = {
    "probe_arguments": "tests/arm64/guest/test_probe_arguments.py "
                       "--probe-arguments bin/probe_arguments",
    "probes_fire": "tests/tracer/test_probes_fire.py --traced-program bin/traced_program "
                   "--traced-program-nop5 bin/traced_program -k 1-byte-sites",
    "cmemleak_probes": f"tests/tracer/test_cmemleak_probes.py "
                       f"--cmemleak build/src/pymemtrace/{PYTHON_SO} --pythonpath build/src",
    "stack_record": "tests/arm64/guest/test_stack_record.py --pythonpath build/src",
    "runner": "tests/toolkit/test_trace.py -k 'leaks_are_exactly or flow_shows_every'",
}
RUN = """#!/bin/sh
# Written by tests/arm64/test_arm64_guest.py: each test module, between lines the host reads.
status=0
export PYTHONPATH=/pymemtrace/build/src  # cMemLeak, for the runner's tests and their workloads
guest_pytest() {
  name=$1
  shift
  echo "pymemtrace-guest: begin $name"
  python3 -B tests/support/run_pytest.py -v --color=no "$@"
  result=$?
  echo "pymemtrace-guest: end $name $result"
  [ $result -eq 0 ] || status=1
}
"""


class BuildError(Exception):
    """A step of building the guest's payload failed; the message says which and how."""


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise BuildError(f"{' '.join(map(str, command))} exited {done.returncode}:\n"
                         f"{done.stdout}{done.stderr}")
    return done.stdout


def sdt_include(work):
    """A directory holding the host's <sys/sdt.h> (one header for every architecture), for
    -idirafter: Debian's cross compiler does not search /usr/include/x86_64-linux-gnu."""
    found = subprocess.run(["cc", "-x", "c", "-E", "-H", "-"], input="#include <sys/sdt.h>\n",
                           capture_output=True, text=True).stderr
    header = pathlib.Path(next(l[2:] for l in found.splitlines() if l.startswith(". ")))
    sys_dir = work / "sdt" / "sys"
    sys_dir.mkdir(parents=True)
    for name in ("sdt.h", "sdt-config.h"):
        (sys_dir / name).symlink_to(header.parent / name)
    return work / "sdt"


def python_headers(image, work):
    """The guest's Python.h and pyconfig.h, taken from the cached root."""
    target = work / "python-headers"
    target.mkdir()
    with open(image / "root.cpio", "rb") as archive:
        run(["cpio", "-idm", "--quiet", "usr/include/python3.11/*",
             "usr/include/aarch64-linux-gnu/python3.11/*"], stdin=archive, cwd=target)
    # Its pyconfig.h includes <aarch64-linux-gnu/python3.11/pyconfig.h>.
    return [f"-I{target}/usr/include/python3.11", f"-idirafter{target}/usr/include"]


def payload(image, work):
    """The guest's /pymemtrace: built programs, cMemLeak, the test modules and `run`."""
    root = work / "payload"
    flags = ["-O2", "-Wall", "-Werror", f"-I{SOURCE / 'include'}",
             f"-idirafter{sdt_include(work)}"]
    (root / "bin").mkdir(parents=True)
    run(["aarch64-linux-gnu-gcc", *flags, "-o", root / "bin" / "probe_arguments",
         HERE / "probe_arguments.c"])
    run(["aarch64-linux-gnu-g++", *flags, "-o", root / "bin" / "traced_program",
         SOURCE / "tests" / "tracer" / "traced_program.cpp"])
    package = root / "build" / "src" / "pymemtrace"
    package.mkdir(parents=True)
    run(["aarch64-linux-gnu-g++", *flags, *python_headers(image, work), "-shared", "-fPIC",
         "-o", package / PYTHON_SO, SOURCE / "src" / "pymemtrace" / "cMemLeak.cpp"])
    shutil.copy(SOURCE / "src" / "pymemtrace" / "__init__.py", package)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SOURCE / "src" / "pymemtrace", root / "src" / "pymemtrace", ignore=ignore)
    shutil.copytree(SOURCE / "tests" / "support", root / "tests" / "support", ignore=ignore)
    shutil.copytree(SOURCE / "tests" / "tracer", root / "tests" / "tracer", ignore=ignore)
    shutil.copytree(HERE / "guest", root / "tests" / "arm64" / "guest", ignore=ignore)
    shutil.copytree(SOURCE / "tests" / "toolkit", root / "tests" / "toolkit", ignore=ignore)
    shutil.copytree(SOURCE / "toolkit", root / "toolkit", ignore=ignore)
    (root / "examples").mkdir()
    shutil.copy(SOURCE / "examples" / "ex_dtrace.py", root / "examples")
    script = RUN + "".join(f"guest_pytest {name} {args}\n" for name, args in GUEST_RUNS.items())
    script += "exit $status\n"
    (root / "run").write_text(script)
    (root / "run").chmod(0o755)
    return root


def boot():
    """The guest's console once every guest test has run, or why there is none."""
    missing = [tool for tool in CROSS_TOOLS if shutil.which(tool) is None]
    if missing:
        return None, f"missing {', '.join(missing)}: run tools/install-deps.sh"
    try:
        image = pathlib.Path(run([TOOLS / "build-root.sh"], timeout=3600).strip().splitlines()[-1])
        with tempfile.TemporaryDirectory(prefix="pymemtrace-arm64-") as tmp:
            root = payload(image, pathlib.Path(tmp))
            booted = subprocess.run([TOOLS / "run-guest.sh", root, str(GUEST_TIMEOUT)],
                                    capture_output=True, text=True)
    except BuildError as error:
        return None, str(error)
    sys.stdout.write(booted.stdout)  # in meson's log, for whoever reads a failure
    if "pymemtrace-guest: exit" not in booted.stdout:
        return None, (f"the guest did not finish (run-guest.sh exited {booted.returncode}):\n"
                      f"{booted.stderr}\n{booted.stdout[-6000:]}")
    return booted.stdout, None


@pytest.fixture(scope="module")
def console():
    """boot()'s console; a failure fails every test without booting again."""
    if not BOOTED:
        BOOTED.append(boot())
    output, failure = BOOTED[0]
    if failure:
        pytest.fail(failure, pytrace=False)
    return output


BOOTED = []  # boot()'s one result


def guest_run(console, name):
    """(exit status, output) of one guest test module."""
    match = re.search(rf"^pymemtrace-guest: begin {name}\n(.*?)^pymemtrace-guest: end {name} "
                      rf"(\d+)$", console, re.M | re.S)
    assert match, f"the guest console has no result for {name}:\n{console[-4000:]}"
    return int(match.group(2)), match.group(1)


def assert_guest_passed(console, name):
    status, output = guest_run(console, name)
    assert status == 0 and re.search(r"\d+ passed", output) and " failed" not in output, \
        f"{name} in the arm64 guest exited {status}:\n{output}"


def test_the_guest_runs_debian_arm64_kernel_on_aarch64(console):
    assert re.search(r"^pymemtrace-guest: kernel \S+-arm64 aarch64, 2 CPUs$", console, re.M), \
        console[:4000]


def test_bpftrace_reads_every_probe_argument_as_the_program_passed_it_on_arm64(console):
    assert_guest_passed(console, "probe_arguments")


def test_the_probe_tracer_tests_pass_on_arm64_sites_semaphores_and_values(console):
    assert_guest_passed(console, "probes_fire")


def test_cmemleak_built_for_the_guest_python_fires_with_python_lines_on_arm64(console):
    assert_guest_passed(console, "cmemleak_probes")


def test_the_stack_record_read_on_arm64_holds_the_python_stack(console):
    assert_guest_passed(console, "stack_record")


def test_the_runner_reports_flow_and_leaks_at_their_python_lines_on_arm64(console):
    assert_guest_passed(console, "runner")
