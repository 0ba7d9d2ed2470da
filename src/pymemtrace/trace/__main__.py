# SPDX-License-Identifier: MIT
"""python3 -m pymemtrace.trace [OPTIONS] ...: the same as pymemtrace-trace."""
import sys

from .cli import main

sys.exit(main())
