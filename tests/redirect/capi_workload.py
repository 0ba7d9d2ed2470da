# SPDX-License-Identifier: MIT
"""What test_cpython_made.py traces: capi_ext builds lists, dicts and strings through the C API
in build_all(), one call a line; tracemalloc (1 frame) records what each line still holds, written
as JSON to argv[1]. `--hooks` installs pymemtrace._hooks first. Ends with os._exit."""
import json
import os
import sys
import tracemalloc

import capi_ext
from pymemtrace import _hooks


def build_all():
    rows = capi_ext.rows(300)  # rows
    index = capi_ext.index(rows)  # index
    text = capi_ext.text(2000)  # text
    return rows, index, text


if "--hooks" in sys.argv:
    _hooks.install()
tracemalloc.start(1)
kept = build_all()
snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, __file__)])
held = {stat.traceback[0].lineno: [stat.count, stat.size]
        for stat in snapshot.statistics("lineno")}
with open(sys.argv[1], "w") as out:
    json.dump(held, out)
os._exit(0)
