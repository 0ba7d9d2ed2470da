# SPDX-License-Identifier: MIT
"""The command line stops at cli.parse_args: what it returns is a typed, read-only Request, the one
description of a run the runner, the engines and the reporters read (issue 20's typed plan)."""
import argparse
import dataclasses
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))
from pymemtrace.trace import cli  # noqa: E402
from pymemtrace.trace.request import Request  # noqa: E402


def test_the_command_line_gives_a_request_that_nothing_after_it_can_change():
    request = cli.parse_args(["--report", "leaks", "--lib", "a.so", "--", "python3", "-c", "1"])
    assert isinstance(request, Request)
    assert (request.report, request.lib, request.command) == ("leaks", ("a.so",),
                                                              ("python3", "-c", "1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.pid = 1


def test_options_folded_by_the_command_line_are_read_from_the_request_as_checked():
    request = cli.parse_args(["--all", "--lib", "x.so"])
    assert request.per_process and request.all and request.command == ()
    assert cli.parse_args(["--json", "-p", "7"]).json


def test_an_option_without_a_request_field_is_refused_at_once():
    values = {field.name: None for field in dataclasses.fields(Request)}
    namespace = argparse.Namespace(**dict(values, command=[], lib=[], new_option=True))
    with pytest.raises(TypeError, match="new_option"):
        Request.from_arguments(namespace)


def test_the_stream_a_report_goes_to_is_set_once_on_a_copy():
    request = cli.parse_args(["-p", "7"])
    written = request.writing_to(sys.stderr, "scripts")
    assert (written.out, written.scripts, request.out) == (sys.stderr, "scripts", sys.stdout)
