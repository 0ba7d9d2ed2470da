# SPDX-License-Identifier: MIT
"""The __main__ of a sub-interpreter that workload.py starts (locate_ext.run_in_subinterpreter).
Leaves its records, in workload.py's format, in the str `records`."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import locate_ext as ext  # noqa: E402 (its exec slot runs again, in this interpreter)

p = ext.malloc(1, 144)  # ALLOC: subinterpreter_malloc
ext.free(1, p)  # ALLOC: subinterpreter_free
records = "\n".join([
    f"REC|subinterpreter_init|malloc|2|24|{ext.init_block}|0",
    f"REC|subinterpreter_init|free|2|0|{ext.init_block}|0",
    f"REC|subinterpreter_malloc|malloc|1|144|{p}|0",
    f"REC|subinterpreter_free|free|1|0|{p}|0",
])
