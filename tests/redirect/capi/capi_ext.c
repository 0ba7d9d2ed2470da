/* SPDX-License-Identifier: MIT
 * An extension that allocates nothing itself: every object it returns is built by CPython
 * through the C API (lists, dicts, ints, strings), as simplejson's decoder does. No build flag can
 * see those blocks; pymemtrace._hooks can (tests/redirect/test_cpython_made.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* rows(n) -> [{"id": 1000 + i, "name": "row-<i>"}, ...] */
static PyObject *rows(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), i;
    PyObject *list;
    (void)self;
    if (n < 0)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "n must be >= 0");
    if ((list = PyList_New(0)) == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *row = Py_BuildValue("{s:n,s:N}", "id", 1000 + i, "name",
                                      PyUnicode_FromFormat("row-%zd", i));
        if (row == NULL || PyList_Append(list, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(row);
    }
    return list;
}

/* index(rows) -> {row["name"]: row} */
static PyObject *index_rows(PyObject *self, PyObject *list)
{
    PyObject *index = PyDict_New(), *row;
    Py_ssize_t i;
    (void)self;
    for (i = 0; index != NULL && i < PyList_Size(list); i++) {
        row = PyList_GetItem(list, i);
        if (row == NULL || PyDict_SetItem(index, PyDict_GetItemString(row, "name"), row) < 0)
            Py_CLEAR(index);
    }
    return index;
}

/* text(n) -> "0,1,2,...,n-1", joined from n strings */
static PyObject *text(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), i;
    PyObject *parts, *comma, *joined = NULL;
    (void)self;
    if (n < 0 || (parts = PyList_New(n)) == NULL)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "n must be >= 0");
    for (i = 0; i < n; i++) {
        PyObject *part = PyUnicode_FromFormat("%zd", i);
        if (part == NULL) {
            Py_DECREF(parts);
            return NULL;
        }
        PyList_SET_ITEM(parts, i, part);
    }
    if ((comma = PyUnicode_FromString(",")) != NULL)
        joined = PyUnicode_Join(comma, parts);
    Py_XDECREF(comma);
    Py_DECREF(parts);
    return joined;
}

static PyMethodDef methods[] = {
    {"rows", rows, METH_O, "rows(n) -> list of dicts"},
    {"index", index_rows, METH_O, "index(rows) -> dict by name"},
    {"text", text, METH_O, "text(n) -> comma-joined numbers"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "capi_ext", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_capi_ext(void)
{
    return PyModule_Create(&module);
}
