# SPDX-License-Identifier: MIT
"""pymemtrace: USDT probes for the allocations of Python C extensions.

cMemLeak (`from pymemtrace import cMemLeak`) holds blocks of memory from each allocator domain,
for watching the probes fire.
"""
__version__ = "0.1.0"
