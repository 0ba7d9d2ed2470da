# SPDX-License-Identifier: MIT
"""The extension's own setuptools build, unaware of pymemtrace: tests/redirect instruments it from
the outside, CFLAGS="$(pkg-config --cflags pymemtrace-redirect)" LDFLAGS="$(pkg-config --libs
pymemtrace-redirect)" pip install --no-build-isolation ."""
from setuptools import Extension, setup

modules = [Extension("redirected", ["redirected.c", "cxx_part.cpp"])]
try:
    from Cython.Build import cythonize
except ImportError:  # no Cython: the C and C++ module alone
    pass
else:
    modules += cythonize([Extension("cyblocks", ["cyblocks.pyx"])], language_level=3)

setup(name="redirected", version="1.0", ext_modules=modules)
