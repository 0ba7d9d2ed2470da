/* SPDX-License-Identifier: MIT
 * An extension written the way real ones are, with no pymemtrace in its source: allocator tables
 * whose members are named malloc/realloc/free, PyMem_New/PyMem_Resize/PyMem_Del, a type made by
 * PyObject_New whose tp_free is PyObject_Free, one freed by PyObject_Del with tp_free left to
 * the default, and a C++ translation unit (cxx_part.cpp).
 * tests/redirect builds it unchanged through every route of docs/extensions.md and checks what
 * the runner reports against what this file allocates.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

/* Like ultrajson's and zlib's allocator tables: members named after the C heap functions. */
struct allocator {
    void *(*malloc)(size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);
};

static const struct allocator allocators[4] = {
    {malloc, realloc, free},
    {PyMem_RawMalloc, PyMem_RawRealloc, PyMem_RawFree},
    {PyMem_Malloc, PyMem_Realloc, PyMem_Free},
    {PyObject_Malloc, PyObject_Realloc, PyObject_Free},
};

#define SLOTS 64
static struct {
    void *ptr;
    int domain;
} kept[SLOTS];

PyObject *cxx_keep(PyObject *self, PyObject *args);    /* cxx_part.cpp */
PyObject *cxx_release(PyObject *self, PyObject *args); /* cxx_part.cpp */

static const struct allocator *allocator_of(int domain)
{
    if (domain < 0 || domain > 3) {
        PyErr_SetString(PyExc_ValueError, "domain must be 0 (C heap) to 3 (PyObject)");
        return NULL;
    }
    return &allocators[domain];
}

/* keep(domain, size) -> slot: allocates `size` bytes, fills them, keeps them. */
static PyObject *keep(PyObject *self, PyObject *args)
{
    int domain, slot;
    Py_ssize_t size;
    const struct allocator *with;
    (void)self;
    if (!PyArg_ParseTuple(args, "in", &domain, &size) || !(with = allocator_of(domain)))
        return NULL;
    for (slot = 0; slot < SLOTS && kept[slot].ptr; slot++) {
    }
    if (slot == SLOTS)
        return PyErr_Format(PyExc_RuntimeError, "all %d slots are taken", SLOTS);
    kept[slot].ptr = with->malloc((size_t)size);
    if (kept[slot].ptr == NULL)
        return PyErr_NoMemory();
    memset(kept[slot].ptr, 0x5a, (size_t)size);
    kept[slot].domain = domain;
    return PyLong_FromLong(slot);
}

/* release(slot): frees what keep() kept. */
static PyObject *release(PyObject *self, PyObject *args)
{
    int slot;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &slot))
        return NULL;
    if (slot < 0 || slot >= SLOTS || kept[slot].ptr == NULL)
        return PyErr_Format(PyExc_KeyError, "slot %d holds nothing", slot);
    allocators[kept[slot].domain].free(kept[slot].ptr);
    kept[slot].ptr = NULL;
    Py_RETURN_NONE;
}

/* grow(domain, size) -> checksum: malloc(size), realloc to 2 * size, free. */
static PyObject *grow(PyObject *self, PyObject *args)
{
    int domain;
    Py_ssize_t size;
    const struct allocator *with;
    unsigned char *block, *bigger;
    long sum = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "in", &domain, &size) || !(with = allocator_of(domain)))
        return NULL;
    if (size <= 0)
        return PyErr_Format(PyExc_ValueError, "size must be positive");
    if ((block = (unsigned char *)with->malloc((size_t)size)) == NULL)
        return PyErr_NoMemory();
    memset(block, 1, (size_t)size);
    if ((bigger = (unsigned char *)with->realloc(block, 2 * (size_t)size)) == NULL) {
        with->free(block);
        return PyErr_NoMemory();
    }
    memset(bigger + size, 2, (size_t)size);
    for (Py_ssize_t i = 0; i < 2 * size; i++)
        sum += bigger[i];
    with->free(bigger);
    return PyLong_FromLong(sum);
}

/* squares(n) -> list: PyMem_New n longs, PyMem_Resize to 2n, PyMem_Del. */
static PyObject *squares(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), i;
    long *values;
    PyObject *result;
    (void)self;
    if (n < 0)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "n must be >= 0");
    if ((values = PyMem_New(long, n)) == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < n; i++)
        values[i] = (long)(i * i);
    if (PyMem_Resize(values, long, 2 * n) == NULL)
        return PyErr_NoMemory();
    result = PyList_New(n);
    for (i = 0; result && i < n; i++)
        PyList_SET_ITEM(result, i, PyLong_FromLong(values[i]));
    PyMem_Del(values);
    return result;
}

/* too_many(): PyMem_New's overflow check: NULL, nothing allocated. */
static PyObject *too_many(PyObject *self, PyObject *unused)
{
    long *values = PyMem_New(long, PY_SSIZE_T_MAX / 2);
    (void)self, (void)unused;
    return PyBool_FromLong(values == NULL);
}

/* Block(size): an object made by PyObject_New, holding `size` bytes of the C heap. */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t size;
} Block;

static void block_dealloc(PyObject *self)
{
    free(((Block *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *block_len(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSsize_t(((Block *)self)->size);
}

static PyMethodDef block_methods[] = {
    {"size", block_len, METH_NOARGS, "the bytes it holds"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "redirected.Block",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = block_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = block_methods,
    .tp_free = PyObject_Free,
};

static PyObject *new_block(PyObject *self, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    Block *block;
    (void)self;
    if (size < 0)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "size must be >= 0");
    if ((block = PyObject_New(Block, &BlockType)) == NULL)
        return NULL;
    block->size = size;
    if ((block->data = (char *)calloc((size_t)size, 1)) == NULL) {
        PyObject_Del(block);
        return PyErr_NoMemory();
    }
    return (PyObject *)block;
}

/* Old(): the old style of CPython's documentation, as regex's Match: PyObject_New, and
 * PyObject_Del in tp_dealloc, tp_free left to the default. */
typedef struct {
    PyObject_HEAD
    long value;
} Old;

static void old_dealloc(PyObject *self)
{
    PyObject_Del(self);
}

static PyTypeObject OldType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "redirected.Old",
    .tp_basicsize = sizeof(Old),
    .tp_dealloc = old_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

static PyObject *old_objects[SLOTS];

/* old_keep(n): makes n Old objects and keeps them for ever. */
static PyObject *old_keep(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), i, slot = 0;
    (void)self;
    for (i = 0; i < n; i++) {
        while (slot < SLOTS && old_objects[slot])
            slot++;
        if (slot == SLOTS)
            return PyErr_Format(PyExc_RuntimeError, "all %d slots are taken", SLOTS);
        if ((old_objects[slot] = (PyObject *)PyObject_New(Old, &OldType)) == NULL)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* old_churn(n) -> n: makes and drops n Old objects. */
static PyObject *old_churn(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), i;
    (void)self;
    for (i = 0; i < n; i++) {
        Old *old = PyObject_New(Old, &OldType);
        if (old == NULL)
            return NULL;
        old->value = (long)i;
        Py_DECREF(old);
    }
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"keep", keep, METH_VARARGS, "keep(domain, size) -> slot"},
    {"release", release, METH_VARARGS, "release(slot)"},
    {"grow", grow, METH_VARARGS, "grow(domain, size) -> checksum"},
    {"squares", squares, METH_O, "squares(n) -> [0, 1, 4, ...]"},
    {"too_many", too_many, METH_NOARGS, "whether PyMem_New refused an overflowing count"},
    {"block", new_block, METH_O, "block(size) -> Block"},
    {"old_keep", old_keep, METH_O, "old_keep(n): n Old objects kept"},
    {"old_churn", old_churn, METH_O, "old_churn(n) -> n: n Old objects made and dropped"},
    {"cxx_keep", cxx_keep, METH_VARARGS, "cxx_keep(size) -> slot (a C++ translation unit)"},
    {"cxx_release", cxx_release, METH_VARARGS, "cxx_release(slot)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "redirected", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_redirected(void)
{
    PyObject *m;
    if (PyType_Ready(&BlockType) < 0 || PyType_Ready(&OldType) < 0
        || (m = PyModule_Create(&module)) == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "BLOCK_SIZE", (long)sizeof(Block)) < 0
        || PyModule_AddIntConstant(m, "OLD_SIZE", (long)sizeof(Old)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
