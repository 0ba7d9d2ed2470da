/* SPDX-License-Identifier: MIT
 * A small extension for --native (tests/native): each function allocates through one route and
 * keeps the block, so the leak report names it. Built with the redirect flags (malloc ->
 * __wrap_malloc, new -> cxxheap.h), with -g and (nodebug/) without. The marker comments are
 * the lines the test expects. */
#include <Python.h>

#include <string.h> /* memset */

#include <pymemtrace/python.h>

void *nativeext_cxx_block(size_t size); /* nativeext_cxx.cpp */

static void *kept[4096];
static size_t kept_count;

static PyObject *keep(void *block)
{
    if (block == NULL)
        return PyErr_NoMemory();
    if (kept_count < sizeof kept / sizeof kept[0])
        kept[kept_count++] = block;
    Py_RETURN_NONE;
}

/* A wrapper inlined in a C function: python.h's twin of PyMem_Malloc, called by name (not
 * pymemtrace_malloc, whose malloc the flags would wrap again: two events for one block). */
static __attribute__((noinline)) void *explicit_block(size_t size)
{
    void *block = pymemtrace_mem_malloc(size); /* explicit wrapper */
    if (block != NULL)
        memset(block, 1, size); /* used: the call is not in tail position (docs/probes.md) */
    return block;
}

/* Plain malloc, which the redirect flags' --wrap=malloc sends to __wrap_malloc. */
static __attribute__((noinline)) void *wrapped_block(size_t size)
{
    void *block = malloc(size); /* wrapped malloc */
    if (block != NULL)
        memset(block, 2, size);
    return block;
}

/* Without the GIL (Py_BEGIN_ALLOW_THREADS, redirected to pymemtrace_save_thread): the block
 * keeps the Python line that released it and names this function too. */
static __attribute__((noinline)) void *released_block(size_t size)
{
    void *block;
    Py_BEGIN_ALLOW_THREADS
    block = malloc(size); /* malloc without the GIL */
    if (block != NULL)
        memset(block, 4, size);
    Py_END_ALLOW_THREADS
    return block;
}

static PyObject *nativeext_released(PyObject *module, PyObject *size)
{
    (void)module;
    return keep(released_block(PyLong_AsSize_t(size)));
}

static PyObject *nativeext_explicit(PyObject *module, PyObject *size)
{
    (void)module;
    return keep(explicit_block(PyLong_AsSize_t(size)));
}

static PyObject *nativeext_wrapped(PyObject *module, PyObject *size)
{
    (void)module;
    return keep(wrapped_block(PyLong_AsSize_t(size)));
}

static PyObject *nativeext_cxx(PyObject *module, PyObject *size)
{
    (void)module;
    return keep(nativeext_cxx_block(PyLong_AsSize_t(size)));
}

static PyMethodDef nativeext_methods[] = {
    {"explicit", nativeext_explicit, METH_O, "keep a block from pymemtrace_malloc"},
    {"wrapped", nativeext_wrapped, METH_O, "keep a block from malloc (--wrap)"},
    {"cxx", nativeext_cxx, METH_O, "keep a block from operator new[]"},
    {"released", nativeext_released, METH_O, "keep a block from malloc without the GIL"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef nativeext_module = {
    PyModuleDef_HEAD_INIT, "nativeext", NULL, -1, nativeext_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_nativeext(void)
{
    return PyModule_Create(&nativeext_module);
}
