/* SPDX-License-Identifier: MIT
 * locate_ext: a C99 extension that allocates through every pymemtrace wrapper, for
 * test_locations.py. Pointers go back to Python as ints so the test can match them with the
 * py* probes' pointers. Built per interpreter by the test; needs no libpython at link time.
 *
 *   malloc(domain, size), calloc(domain, count, size), realloc(domain, ptr, size), free(domain, ptr)
 *       domain 0 C heap, 1 PyMem_Raw, 2 PyMem, 3 PyObject
 *   c_thread(hold_gil)       raw and C heap calls from a new pthread that has no Python thread
 *                            state, joined with the GIL held or released; returns its records
 *   without_gil()            the same calls between Py_BEGIN/END_ALLOW_THREADS
 *   released_gil()           the same, the GIL released through pymemtrace_save_thread (as
 *                            redirect.h renames PyEval_SaveThread): located where it released it
 *   keep_pending_error(size) allocates and frees while a ValueError is set; returns (ptr, kept)
 *   hook_object_allocator(on) wraps the PyObject domain with a hook that reports its blocks with
 *                            pymemtrace_note_* (domain 16): the lookup's own allocations come back
 *   run_in_subinterpreter(source, filename) runs the code in a new sub-interpreter and returns
 *                            its global `records` (a str)
 *   probes_enabled()         the six semaphores, as 0/1
 *   init_block               the block allocated and freed by the module's exec slot
 * A record is (op, domain, size, ptr, new_ptr), op one of malloc calloc realloc free.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h> /* pthread_create, pthread_join */
#include <stdint.h>  /* uintptr_t */
#include <string.h>  /* strlen, memcpy */

#include <pymemtrace/python.h> /* the wrappers; also turns on Python locations for this .so */

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);

static const struct family {
    malloc_fn malloc;
    calloc_fn calloc;
    realloc_fn realloc;
    free_fn free;
} families[4] = {
    {pymemtrace_malloc, pymemtrace_calloc, pymemtrace_realloc, pymemtrace_free},
    {pymemtrace_raw_malloc, pymemtrace_raw_calloc, pymemtrace_raw_realloc, pymemtrace_raw_free},
    {pymemtrace_mem_malloc, pymemtrace_mem_calloc, pymemtrace_mem_realloc, pymemtrace_mem_free},
    {pymemtrace_object_malloc, pymemtrace_object_calloc, pymemtrace_object_realloc,
     pymemtrace_object_free},
};

static const struct family *family(int domain)
{
    if (domain < 0 || domain > 3) {
        PyErr_Format(PyExc_ValueError, "no allocator family for domain %d", domain);
        return NULL;
    }
    return &families[domain];
}

static PyObject *pointer(const void *ptr)
{
    return PyLong_FromSize_t((size_t)(uintptr_t)ptr);
}

static PyObject *ext_malloc(PyObject *self, PyObject *args)
{
    int domain;
    Py_ssize_t size;
    const struct family *f;
    (void)self;
    if (!PyArg_ParseTuple(args, "in", &domain, &size) || !(f = family(domain)))
        return NULL;
    return pointer(f->malloc((size_t)size));
}

static PyObject *ext_calloc(PyObject *self, PyObject *args)
{
    int domain;
    Py_ssize_t count, size;
    const struct family *f;
    (void)self;
    if (!PyArg_ParseTuple(args, "inn", &domain, &count, &size) || !(f = family(domain)))
        return NULL;
    return pointer(f->calloc((size_t)count, (size_t)size));
}

static PyObject *ext_realloc(PyObject *self, PyObject *args)
{
    int domain;
    unsigned long long ptr;
    Py_ssize_t size;
    const struct family *f;
    (void)self;
    if (!PyArg_ParseTuple(args, "iKn", &domain, &ptr, &size) || !(f = family(domain)))
        return NULL;
    return pointer(f->realloc((void *)(uintptr_t)ptr, (size_t)size));
}

static PyObject *ext_free(PyObject *self, PyObject *args)
{
    int domain;
    unsigned long long ptr;
    const struct family *f;
    (void)self;
    if (!PyArg_ParseTuple(args, "iK", &domain, &ptr) || !(f = family(domain)))
        return NULL;
    f->free((void *)(uintptr_t)ptr);
    Py_RETURN_NONE;
}

/* Allocations made where no Python location exists: a thread without a thread state, or one
 * that released the GIL. Only the raw and C heap families may be called there. */
struct record {
    const char *op;
    int domain;
    size_t size;
    void *ptr, *new_ptr;
};

#define GILLESS_RECORDS 7

struct gilless_work {
    struct record records[GILLESS_RECORDS];
};

static void *gilless_allocations(void *arg)
{
    struct record *r = ((struct gilless_work *)arg)->records;
    void *raw = pymemtrace_raw_malloc(40);
    void *moved = pymemtrace_raw_realloc(raw, 4000);
    void *zeroed = pymemtrace_raw_calloc(3, 16);
    void *heap = pymemtrace_malloc(56);
    struct record done[GILLESS_RECORDS] = {
        {"malloc", 1, 40, raw, NULL},    {"realloc", 1, 4000, raw, moved},
        {"calloc", 1, 48, zeroed, NULL}, {"malloc", 0, 56, heap, NULL},
        {"free", 1, 0, moved, NULL},     {"free", 0, 0, heap, NULL},
        {"free", 1, 0, zeroed, NULL},
    };
    pymemtrace_raw_free(moved);
    pymemtrace_free(heap);
    pymemtrace_raw_free(zeroed);
    memcpy(r, done, sizeof done);
    return NULL;
}

static PyObject *records_list(const struct record *r, size_t count)
{
    PyObject *list = PyList_New(0);
    size_t i;
    for (i = 0; list != NULL && i < count; i++) {
        PyObject *item = Py_BuildValue("(sinNN)", r[i].op, r[i].domain, (Py_ssize_t)r[i].size,
                                       pointer(r[i].ptr), pointer(r[i].new_ptr));
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

/* Holding the GIL while the thread allocates is the case that catches a lookup which takes
 * "the GIL holder" for "the calling thread" (what _PyThreadState_UncheckedGet is on 3.8-3.11). */
static PyObject *ext_c_thread(PyObject *self, PyObject *args)
{
    struct gilless_work work;
    pthread_t thread;
    int hold_gil, failed;
    (void)self;
    if (!PyArg_ParseTuple(args, "p", &hold_gil))
        return NULL;
    memset(&work, 0, sizeof work);
    if (hold_gil) {
        failed = pthread_create(&thread, NULL, gilless_allocations, &work)
                 || pthread_join(thread, NULL);
    } else {
        Py_BEGIN_ALLOW_THREADS
        failed = pthread_create(&thread, NULL, gilless_allocations, &work)
                 || pthread_join(thread, NULL);
        Py_END_ALLOW_THREADS
    }
    if (failed)
        return PyErr_Format(PyExc_OSError, "pthread_create or pthread_join failed");
    return records_list(work.records, GILLESS_RECORDS);
}

/* The gilless calls between Py_BEGIN/END_ALLOW_THREADS, as `name`. Py_BEGIN_ALLOW_THREADS
 * expands where the function is defined, so a PyEval_SaveThread macro in force there applies. */
#define GILLESS_BETWEEN_ALLOW_THREADS(name)                                                        \
    static PyObject *name(PyObject *self, PyObject *args)                                          \
    {                                                                                              \
        struct gilless_work work;                                                                  \
        (void)self, (void)args;                                                                    \
        Py_BEGIN_ALLOW_THREADS gilless_allocations(&work);                                         \
        Py_END_ALLOW_THREADS return records_list(work.records, GILLESS_RECORDS);                   \
    }

/* CPython's PyEval_SaveThread: the thread has no location until it takes the GIL back. */
GILLESS_BETWEEN_ALLOW_THREADS(ext_without_gil)

/* As redirect.h renames it: the twin keeps the location of the frame that released the GIL. */
#define PyEval_SaveThread pymemtrace_save_thread
#define PyEval_RestoreThread pymemtrace_restore_thread
GILLESS_BETWEEN_ALLOW_THREADS(ext_released_gil)
#undef PyEval_SaveThread
#undef PyEval_RestoreThread

/* The lookup runs Python C API calls; an exception set before it must come out unchanged. */
static PyObject *ext_keep_pending_error(PyObject *self, PyObject *args)
{
    Py_ssize_t size;
    PyObject *pending, *type, *value, *traceback;
    void *ptr;
    int kept;
    (void)self;
    if (!PyArg_ParseTuple(args, "n", &size))
        return NULL;
    pending = PyObject_CallFunction(PyExc_ValueError, "s", "pending");
    if (pending == NULL)
        return NULL;
    PyErr_SetObject(PyExc_ValueError, pending);
    ptr = pymemtrace_mem_malloc((size_t)size);
    pymemtrace_mem_free(ptr);
    PyErr_Fetch(&type, &value, &traceback);
    kept = type == PyExc_ValueError && value == pending;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    Py_DECREF(pending);
    return Py_BuildValue("(NO)", pointer(ptr), kept ? Py_True : Py_False);
}

/* An allocator hook made of pymemtrace_note_*: looking up a location may allocate Python
 * objects (3.11+ creates the frame object), which comes back through this hook. */
static PyMemAllocatorEx original_object_allocator;

static void *hook_malloc(void *ctx, size_t size)
{
    void *ptr = original_object_allocator.malloc(ctx, size);
    pymemtrace_note_alloc(ptr, size, PYMEMTRACE_DOMAIN_USER);
    return ptr;
}

static void *hook_calloc(void *ctx, size_t count, size_t size)
{
    void *ptr = original_object_allocator.calloc(ctx, count, size);
    pymemtrace_note_alloc(ptr, count * size, PYMEMTRACE_DOMAIN_USER);
    return ptr;
}

/* Not reported: pyrealloc has no domain to tell this hook's events from locate_ext's. */
static void *hook_realloc(void *ctx, void *ptr, size_t size)
{
    return original_object_allocator.realloc(ctx, ptr, size);
}

static void hook_free(void *ctx, void *ptr)
{
    pymemtrace_note_free(ptr, PYMEMTRACE_DOMAIN_USER);
    original_object_allocator.free(ctx, ptr);
}

static PyObject *ext_hook_object_allocator(PyObject *self, PyObject *args)
{
    static int hooked;
    int on;
    (void)self;
    if (!PyArg_ParseTuple(args, "p", &on))
        return NULL;
    if (on && !hooked) {
        PyMemAllocatorEx hook = {NULL, hook_malloc, hook_calloc, hook_realloc, hook_free};
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &original_object_allocator);
        hook.ctx = original_object_allocator.ctx;
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &hook);
    } else if (!on && hooked) {
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &original_object_allocator);
    }
    hooked = on;
    Py_RETURN_NONE;
}

/* Runs `source` as the __main__ of a new sub-interpreter sharing this thread, and returns a
 * copy of its str `records`. Objects never cross interpreters: the text is copied as bytes. */
static PyObject *ext_run_in_subinterpreter(PyObject *self, PyObject *args)
{
    const char *source, *filename;
    PyThreadState *main_state, *sub_state;
    PyObject *file, *code, *globals, *result, *records;
    char *copy = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "ss", &source, &filename))
        return NULL;
    main_state = PyThreadState_Get();
    sub_state = Py_NewInterpreter();
    if (sub_state == NULL) {
        PyThreadState_Swap(main_state);
        return PyErr_Format(PyExc_RuntimeError, "Py_NewInterpreter failed");
    }
    globals = PyModule_GetDict(PyImport_AddModule("__main__")); /* borrowed */
    file = PyUnicode_FromString(filename);
    code = file && PyDict_SetItemString(globals, "__file__", file) == 0
               ? Py_CompileString(source, filename, Py_file_input)
               : NULL;
    Py_XDECREF(file);
    result = code ? PyEval_EvalCode(code, globals, globals) : NULL;
    records = result ? PyDict_GetItemString(globals, "records") : NULL; /* borrowed */
    if (records != NULL && PyUnicode_Check(records)) {
        const char *text = PyUnicode_AsUTF8(records);
        if (text != NULL && (copy = PyMem_RawMalloc(strlen(text) + 1)) != NULL)
            memcpy(copy, text, strlen(text) + 1);
    }
    if (copy == NULL)
        PyErr_Print(); /* in the sub-interpreter, where the error is */
    Py_XDECREF(result);
    Py_XDECREF(code);
    Py_EndInterpreter(sub_state);
    PyThreadState_Swap(main_state);
    if (copy == NULL)
        return PyErr_Format(PyExc_RuntimeError, "the sub-interpreter left no str `records`");
    result = PyUnicode_FromString(copy);
    PyMem_RawFree(copy);
    return result;
}

static PyObject *ext_probes_enabled(PyObject *self, PyObject *args)
{
    (void)self, (void)args;
    return Py_BuildValue("(iiiiii)", pymemtrace_probe_enabled(PYMEMTRACE_PROBE_ALLOC),
                         pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYALLOC),
                         pymemtrace_probe_enabled(PYMEMTRACE_PROBE_REALLOC),
                         pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYREALLOC),
                         pymemtrace_probe_enabled(PYMEMTRACE_PROBE_FREE),
                         pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYFREE));
}

/* Runs at import, in every interpreter that imports the module. */
static int exec_module(PyObject *module)
{
    void *block = pymemtrace_mem_malloc(24);
    pymemtrace_mem_free(block);
    return PyModule_AddObject(module, "init_block", pointer(block));
}

static PyMethodDef methods[] = {
    {"malloc", ext_malloc, METH_VARARGS, NULL},
    {"calloc", ext_calloc, METH_VARARGS, NULL},
    {"realloc", ext_realloc, METH_VARARGS, NULL},
    {"free", ext_free, METH_VARARGS, NULL},
    {"c_thread", ext_c_thread, METH_VARARGS, NULL},
    {"without_gil", ext_without_gil, METH_NOARGS, NULL},
    {"released_gil", ext_released_gil, METH_NOARGS, NULL},
    {"keep_pending_error", ext_keep_pending_error, METH_VARARGS, NULL},
    {"hook_object_allocator", ext_hook_object_allocator, METH_VARARGS, NULL},
    {"run_in_subinterpreter", ext_run_in_subinterpreter, METH_VARARGS, NULL},
    {"probes_enabled", ext_probes_enabled, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, __extension__(void *)exec_module}, /* CPython's slot API needs this cast */
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "locate_ext", "Allocations for test_locations.py", 0, methods, slots,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_locate_ext(void)
{
    return PyModuleDef_Init(&module_def);
}
