# SPDX-License-Identifier: MIT
"""What tests/redirect traces: one call a line, each line's allocations known (test_traced.py's
EXPECTED names the lines by their markers)."""
import redirected

try:
    import cyblocks
except ImportError:
    cyblocks = None


def main():
    redirected.keep(0, 1001)  # keep C heap
    redirected.keep(1, 1002)  # keep PyMem_Raw domain
    redirected.keep(2, 1003)  # keep PyMem domain
    redirected.keep(3, 1004)  # keep PyObject
    redirected.grow(0, 500)  # grow C heap
    redirected.grow(2, 600)  # grow PyMem
    redirected.squares(10)  # squares
    block = redirected.block(300)  # block
    del block
    redirected.old_keep(3)  # old keep
    redirected.old_churn(50)  # old churn
    redirected.cxx_keep(77)  # cxx keep
    if cyblocks is not None:
        buffer = cyblocks.Buffer(400)  # cython buffer
        del buffer
        cyblocks.keep_pymem(501)  # cython keep


main()
