# SPDX-License-Identifier: MIT
"""What test_cxx_heap.py traces: pybext (pybind11) calls, one a line, each line's C++ blocks known.
Every call is made once at import first, so that pybind11's caches are built outside main().
Ends with os._exit: module teardown and C++ static destructors would free what is held."""
import os

import pybext


def warm_up():
    pybext.keep_grid(1)
    pybext.drop_grids()
    pybext.leak_vector(1)
    pybext.churn(1, 1)
    pybext.keep_other_forms()
    pybext.keep_name("warm", 1)
    pybext.Grid(1).size()
    pybext.nothing(1, 2)


def main():
    pybext.nothing(1, 2)  # call overhead
    pybext.keep_grid(1000)  # keep grid
    pybext.keep_grid(500)  # keep another grid
    pybext.leak_vector(300)  # leak vector
    pybext.churn(200, 50)  # churn
    pybext.keep_other_forms()  # other forms
    pybext.keep_name("n" * 100, 400)  # keep name
    grid = pybext.Grid(2000)  # python grid
    pybext.Grid(3000).size()  # dropped python grid
    return grid


warm_up()
kept = main()
os._exit(0)
