/* SPDX-License-Identifier: MIT
 * spam: a C99 extension whose memory pymemtrace reports. Including <pymemtrace/python.h> gives
 * the traced twins of CPython's allocators; their probes cost nothing until a tracer attaches:
 *
 *   bpftrace -e 'usdt:./spam.cpython-311-x86_64-linux-gnu.so:pymemtrace:pyalloc {
 *       printf("%s:%d %s %lu bytes\n", str(arg3), arg5, str(arg4), arg1); }'
 */
#include <pymemtrace/python.h> /* Python.h, pymemtrace_raw_malloc, pymemtrace_raw_free */

#include <stdint.h> /* uintptr_t */
#include <string.h> /* memset */

/* spam.churn(size): allocates size bytes with PyMem_RawMalloc, fills them, frees them, and
 * returns the address they had. */
static PyObject *spam_churn(PyObject *module, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    void *block;
    uintptr_t address;
    (void)module;
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    block = pymemtrace_raw_malloc((size_t)size);
    if (block == NULL)
        return PyErr_NoMemory();
    memset(block, 0x5a, (size_t)size);
    address = (uintptr_t)block;
    pymemtrace_raw_free(block);
    return PyLong_FromSize_t((size_t)address);
}

static PyMethodDef spam_methods[] = {
    {"churn", spam_churn, METH_O,
     "churn(size, /)\n--\n\n"
     "Allocates size bytes with PyMem_RawMalloc, frees them, returns the address they had."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef spam_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "spam",
    .m_doc = "An example extension traced by pymemtrace.",
    .m_size = 0,
    .m_methods = spam_methods,
};

PyMODINIT_FUNC PyInit_spam(void)
{
    return PyModuleDef_Init(&spam_module);
}
