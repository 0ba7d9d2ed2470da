/* SPDX-License-Identifier: MIT
 * benchext: the smallest C extension that allocates through pymemtrace's wrappers, for the
 * benchmarks. Blocks come from PyMem_RawMalloc (domain 1, libc malloc underneath), so every
 * tracer compared sees them: pymemtrace's probes, tracemalloc, libc uprobes and heaptrack.
 *
 *   alloc(size) -> int     a new block of `size` bytes (first byte written), as its address
 *   free(address)          releases a block from alloc()
 *   locate(n) -> int       calls the py* probes' Python location lookup n times (no tracer
 *                          needed); returns the last line number found
 *   noop(n) -> int         the same call with nothing inside, to subtract
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pymemtrace/python.h> /* pymemtrace_raw_malloc, pymemtrace_raw_free, the location lookup */

static PyObject *benchext_alloc(PyObject *module, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    char *block;
    (void)module;
    if (size < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "size must be >= 0");
        return NULL;
    }
    block = pymemtrace_raw_malloc(size ? (size_t)size : 1);
    if (block == NULL)
        return PyErr_NoMemory();
    block[0] = 1;
    return PyLong_FromVoidPtr(block);
}

static PyObject *benchext_free(PyObject *module, PyObject *arg)
{
    void *block = PyLong_AsVoidPtr(arg);
    (void)module;
    if (block == NULL && PyErr_Occurred())
        return NULL;
    pymemtrace_raw_free(block);
    Py_RETURN_NONE;
}

static PyObject *benchext_locate(PyObject *module, PyObject *arg)
{
    long n = PyLong_AsLong(arg), i;
    struct pymemtrace_location where = {"", "", 0, 0, 0, 0};
    (void)module;
    if (n == -1 && PyErr_Occurred())
        return NULL;
    for (i = 0; i < n; ++i) {
        where = pymemtrace_detail_locate();
        __asm__ volatile("" : : "r"(where.filename) : "memory");
    }
    return PyLong_FromLong(where.lineno);
}

static PyObject *benchext_noop(PyObject *module, PyObject *arg)
{
    long n = PyLong_AsLong(arg), i;
    (void)module;
    if (n == -1 && PyErr_Occurred())
        return NULL;
    for (i = 0; i < n; ++i)
        __asm__ volatile("" : : : "memory");
    return PyLong_FromLong(0);
}

static PyMethodDef benchext_methods[] = {
    {"alloc", benchext_alloc, METH_O, "alloc(size) -> address of a new block"},
    {"free", benchext_free, METH_O, "free(address): release a block from alloc()"},
    {"locate", benchext_locate, METH_O, "locate(n): n Python location lookups"},
    {"noop", benchext_noop, METH_O, "noop(n): the same call, empty"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef benchext_module = {
    PyModuleDef_HEAD_INIT, "benchext", "pymemtrace benchmark extension", -1, benchext_methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_benchext(void)
{
    return PyModule_Create(&benchext_module);
}
