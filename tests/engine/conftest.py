# SPDX-License-Identifier: MIT
"""What the engine tests are given (tests/engine/meson.build passes them): the built engine, the
built cMemLeak and the directory to put on the workloads' PYTHONPATH."""
import os

import pytest

PATHS = {
    "engine": "the built pymemtrace-engine",
    "cmemleak": "the built cMemLeak extension module",
    "pythonpath": "the directory to put on the workloads' PYTHONPATH (<builddir>/src)",
    "traced-program": "the built tests/tracer/traced_program (plain probes, no Python)",
    "batch-signal-program": "the built tests/engine/batch_signal_program (test_batch.py)",
}


def pytest_addoption(parser):
    group = parser.getgroup("pymemtrace engine tests")
    for name, what in PATHS.items():
        group.addoption(f"--{name}", metavar="PATH", help=what)
    group.addoption("--batch", action="store_true",
                    help="run every py* engine with --batch (the events read in batches)")


@pytest.fixture(scope="session", autouse=True)
def batched(pytestconfig):
    """Whether the engines run with --batch: the same tests, the same exact reports."""
    import engine_run
    engine_run.PY_OPTIONS[:] = ["--batch"] if pytestconfig.getoption("batch") else []
    return bool(engine_run.PY_OPTIONS)


@pytest.fixture(scope="session")
def probes_per_library(batched):
    """Probes the engine attaches per library: pyalloc, pyrealloc, pyfree (and pybatch)."""
    return 4 if batched else 3


def _given(config, name):
    value = config.getoption(name.replace("-", "_"))
    if value is None:
        pytest.fail(f"--{name} PATH is needed: {PATHS[name]} (tests/engine/meson.build passes it)",
                    pytrace=False)
    return os.path.realpath(value)


@pytest.fixture(scope="session")
def engine(pytestconfig):
    return _given(pytestconfig, "engine")


@pytest.fixture(scope="session")
def cmemleak(pytestconfig):
    return _given(pytestconfig, "cmemleak")


@pytest.fixture(scope="session")
def pythonpath(pytestconfig):
    return _given(pytestconfig, "pythonpath")


@pytest.fixture(scope="session")
def traced_program(pytestconfig):
    return _given(pytestconfig, "traced-program")


@pytest.fixture(scope="session")
def batch_signal_program(pytestconfig):
    return _given(pytestconfig, "batch-signal-program")
