# SPDX-License-Identifier: MIT
"""What the tests that run inside the arm64 guest are given, as pytest options (the `run` script
that tests/arm64/test_arm64_guest.py packs passes them). A missing option errors, naming it."""
import os

import pytest

PATHS = {
    "probe-arguments": "tests/arm64/probe_arguments.c built for arm64",
    "pythonpath": "a directory holding the pymemtrace package with cMemLeak built for arm64",
}


def pytest_addoption(parser):
    group = parser.getgroup("pymemtrace arm64 guest tests")
    for name, what in PATHS.items():
        group.addoption(f"--{name}", metavar="PATH", help=what)


def path_fixture(name):
    def path(pytestconfig):
        value = pytestconfig.getoption(name.replace("-", "_"))
        if value is None:
            pytest.fail(f"--{name} PATH is needed: {PATHS[name]}", pytrace=False)
        return os.path.realpath(value)
    path.__doc__ = f"--{name}: {PATHS[name]}"
    return pytest.fixture(path, scope="session", name=name.replace("-", "_"))


for _name in PATHS:
    globals()[_name.replace("-", "_")] = path_fixture(_name)
