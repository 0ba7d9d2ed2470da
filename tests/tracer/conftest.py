# SPDX-License-Identifier: MIT
"""What the tracer tests are given: paths of built programs and where the built pymemtrace
package is, as pytest options (tests/tracer/meson.build passes them):

    python3 tests/support/run_pytest.py tests/tracer/test_fork.py \\
        --fork-target build/tests/tracer/fork_target \\
        --fork-target-nop5 build/tests/tracer/fork_target_nop5

A test that needs an option that was not given errors, naming the option.
"""
import os

import pytest

PATHS = {
    "cmemleak": "the built cMemLeak extension module",
    "pythonpath": "the directory to put on the workloads' PYTHONPATH (<builddir>/src)",
    "ex-dtrace": "examples/ex_dtrace.py",
    "traced-program": "tests/tracer/traced_program (1-byte probe sites)",
    "traced-program-nop5": "tests/tracer/traced_program_nop5 (5-byte probe sites)",
    "fork-target": "tests/tracer/fork_target (1-byte probe sites)",
    "fork-target-nop5": "tests/tracer/fork_target_nop5 (5-byte probe sites)",
}


def pytest_addoption(parser):
    group = parser.getgroup("pymemtrace tracer tests")
    for name, what in PATHS.items():
        group.addoption(f"--{name}", metavar="PATH", help=what)


def given(config, name):
    value = config.getoption(name.replace("-", "_"))
    if value is None:
        pytest.fail(f"--{name} PATH is needed: {PATHS[name]} (tests/tracer/meson.build passes it)",
                    pytrace=False)
    return value if name == "pythonpath" else os.path.realpath(value)


def path_fixture(name):
    def path(pytestconfig):
        return given(pytestconfig, name)
    path.__doc__ = f"--{name}: {PATHS[name]}"
    return pytest.fixture(path, scope="session", name=name.replace("-", "_"))


# One session fixture per option, named as it (dashes as underscores): `cmemleak`,
# `pythonpath`, `ex_dtrace`, `traced_program`, `traced_program_nop5`, `fork_target`,
# `fork_target_nop5`.
for _name in PATHS:
    globals()[_name.replace("-", "_")] = path_fixture(_name)
