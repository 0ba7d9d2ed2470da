# SPDX-License-Identifier: MIT
"""Runs pytest on tracer tests, keeping meson's skip code: exit 77 (with the reason) when they
cannot run here (not root, no bpftrace), before pytest collects anything. .ci/run turns that skip
into a failure. A run that collects no test fails (pytest's exit 5), as it should.

    python3 tests/support/run_pytest.py tests/toolkit/test_never_harm.py [pytest options]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracing import require_tracer  # noqa: E402

require_tracer()
import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rfE", *sys.argv[1:]]))
