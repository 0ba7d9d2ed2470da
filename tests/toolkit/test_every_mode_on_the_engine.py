# SPDX-License-Identifier: MIT
"""Issue 20: "no mode may slow processes it does not trace". bpftrace 0.17 attaches CPython's
probes and the allocator functions by path (every other Python on the host then pays 36-293x:
docs/benchmarks.md, "Bystanders"); the engine attaches per traced process. So every run the
command line accepts, but --all and --engine bpftrace, must be the engine's: each combination
of a mode (the py* probes, --frames python-probes, --libc, --object-allocator), a report and up
to two more options, with -p or a command, is routed as the runner routes it (cli.chosen_engine
on the plan programs.choose_script makes). No root needed; the engine must be built (meson
compile)."""
import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))
from pymemtrace.trace import cli, engine, programs  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402

MODES = {"probes": [], "python-probes": ["--frames", "python-probes"], "libc": ["--libc"],
         "object-allocator": ["--object-allocator"]}
REPORTS = ("summary", "leaks", "flow")
MORE = (["--interval", "1"], ["--histograms"], ["--no-follow"], ["--native"], ["--depth", "2"],
        ["--per-process"], ["--python-call-stack"])
# None, each, and each two of them.
OPTIONS = [[], *MORE, *([*a, *b] for a, b in itertools.combinations(MORE, 2))]
TARGETS = {"pid": ["-p", "4242"], "command": ["--", "python3", "workload.py"]}
ENGINES = ("auto", "libbpf")

def accepted(argv):
    """The Request and plan of `argv` if the command line accepts it as a run, else None (a usage
    error, or a Failure the runner says before tracing)."""
    try:
        request = cli.parse_args(argv)
        return request, programs.choose_script(request, pymalloc=True)
    except SystemExit:  # argparse's usage error
        return None
    except Failure:  # --python-call-stack without CPython's probes
        return None


def runs():
    """pytest params of every accepted combination."""
    params = []
    for mode, mode_options in MODES.items():
        for report in REPORTS:
            for options in OPTIONS:
                for target, target_options in TARGETS.items():
                    for chosen in ENGINES:
                        argv = [*mode_options, "--report", report, *options, "--engine",
                                chosen, *target_options]
                        if accepted(argv) is None:
                            continue
                        params.append(pytest.param(argv, id=" ".join(argv)))
    return params


RUNS = runs()


def test_the_command_line_accepts_runs_of_every_mode_with_each_option():
    """The enumeration is not empty by mistake: each mode reaches the options it takes."""
    ids = [param.id for param in RUNS]
    for mode_options in MODES.values():
        for option in ("--histograms", "--no-follow", "--per-process"):
            assert any(i.startswith(" ".join([*mode_options, "--report"])) and option in i
                       for i in ids), (mode_options, option)
    assert any("--libc" in i and "--interval" in i for i in ids)
    assert any("--object-allocator" in i and "--interval" in i for i in ids)


@pytest.mark.parametrize("argv", RUNS)
def test_every_run_but_all_and_bpftrace_is_made_by_the_engine(argv):
    found = engine.find_engine()
    assert found is not None, "build pymemtrace-engine first (meson compile -C build)"
    request, plan = accepted(argv)
    assert cli.chosen_engine(request, plan) == found


@pytest.mark.parametrize("mode", ["python-probes", "libc", "object-allocator"])
def test_snapshots_of_cpythons_probes_and_the_allocators_with_bpftrace_are_a_usage_error(
        mode, capsys):
    """bpftrace's scripts in these modes keep no live map: it was a ValueError's traceback."""
    with pytest.raises(SystemExit) as refused:
        cli.parse_args([*MODES[mode], "--report", "leaks", "--interval", "1", "--engine",
                        "bpftrace", "-p", "4242"])
    assert refused.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said.endswith("is made by pymemtrace-engine: leave out --engine bpftrace"), said


def test_snapshots_with_the_python_call_stack_are_made_by_the_engine():
    """Their rows are the flow's: a snapshot has none, and the engine makes it (refused in one
    line before the engine made --python-call-stack)."""
    request, plan = accepted(["--libc", "--report", "leaks", "--interval", "1",
                              "--python-call-stack", "-p", "4242"])
    assert cli.chosen_engine(request, plan) == engine.find_engine()
