// SPDX-License-Identifier: MIT
// The C++ translation unit of tests/redirect/ext: std::malloc and PyMem_Calloc from C++.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace {
struct Held {
    void *heap;   // std::malloc
    void *pymem;  // PyMem_Calloc
};
std::vector<Held> *held = nullptr;  // never freed: lives as long as the module
}  // namespace

extern "C" PyObject *cxx_keep(PyObject *, PyObject *args)
{
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "n", &size))
        return nullptr;
    if (held == nullptr)
        held = new std::vector<Held>();
    Held block{std::malloc(static_cast<size_t>(size)), PyMem_Calloc(static_cast<size_t>(size), 1)};
    if (block.heap == nullptr || block.pymem == nullptr) {
        std::free(block.heap);
        PyMem_Free(block.pymem);
        return PyErr_NoMemory();
    }
    std::memset(block.heap, 7, static_cast<size_t>(size));
    held->push_back(block);
    return PyLong_FromSize_t(held->size() - 1);
}

extern "C" PyObject *cxx_release(PyObject *, PyObject *args)
{
    Py_ssize_t slot;
    if (!PyArg_ParseTuple(args, "n", &slot))
        return nullptr;
    if (held == nullptr || slot < 0 || static_cast<size_t>(slot) >= held->size()
        || (*held)[static_cast<size_t>(slot)].heap == nullptr)
        return PyErr_Format(PyExc_KeyError, "slot %zd holds nothing", slot);
    Held &block = (*held)[static_cast<size_t>(slot)];
    std::free(block.heap);
    PyMem_Free(block.pymem);
    block = Held{nullptr, nullptr};
    Py_RETURN_NONE;
}
