# SPDX-License-Identifier: MIT
# Makes this include directory a Cython package: `from pymemtrace.python cimport ...`.
