# SPDX-License-Identifier: MIT
# cython: language_level=3
"""The Cython module of tests/redirect/ext: malloc/free and PyMem_* as Cython code uses them."""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cdef class Buffer:
    """`size` bytes of the C heap, freed with the object."""
    cdef char *data
    cdef readonly Py_ssize_t size

    def __cinit__(self, Py_ssize_t size):
        self.data = <char *>malloc(size)
        if self.data == NULL:
            raise MemoryError()
        memset(self.data, 3, size)
        self.size = size

    def __dealloc__(self):
        free(self.data)


cdef list _kept = []


def keep_pymem(Py_ssize_t size):
    """Allocates `size` bytes with PyMem_Malloc and never frees them."""
    cdef char *block = <char *>PyMem_Malloc(size)
    if block == NULL:
        raise MemoryError()
    memset(block, 4, size)
    _kept.append(<size_t>block)
    return len(_kept)


def churn_pymem(Py_ssize_t size):
    """PyMem_Malloc(size), then PyMem_Free: returns the sum of the bytes written."""
    cdef unsigned char *block = <unsigned char *>PyMem_Malloc(size)
    cdef Py_ssize_t i, total = 0
    if block == NULL:
        raise MemoryError()
    memset(block, 1, size)
    for i in range(size):
        total += block[i]
    PyMem_Free(block)
    return total
