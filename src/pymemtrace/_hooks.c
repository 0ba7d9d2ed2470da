/* SPDX-License-Identifier: MIT
 * pymemtrace._hooks: what CPython allocates on an extension's behalf (objects from tp_alloc, the
 * strings, lists and dicts it builds through the C API), which no build flag can see. Opt in:
 *
 *   import pymemtrace._hooks; pymemtrace._hooks.install()
 *
 * installs PyMem_SetAllocator hooks on the PyMem and PyObject domains that call the allocators
 * they replace and fire this module's alloc/realloc/free and py* probes in domains 2 and 3, at the
 * Python line of the calling thread (<pymemtrace/python.h>'s lookup): the same events an extension
 * built with the redirect flags gives, for every allocation of those domains in the process.
 * The PyMem_Raw domain (callable without the GIL) is left alone.
 *
 * Untraced, each allocation of those domains costs one more indirect call and a semaphore test;
 * the lookup runs only while a tracer is attached. uninstall() puts back the allocators install()
 * found, and refuses (RuntimeError) if another hook was installed over these since (tracemalloc
 * started later: stop it first).
 *
 * An extension built with the redirect flags reports its own PyMem/PyObject blocks through its
 * twins as well: with the hooks installed those blocks come twice in summaries and flows (a leak
 * report, one entry a block, stays exact; docs/extensions.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h> /* uintptr_t */

#include <pymemtrace/python.h> /* the probes, and the Python location for the py* ones */

/* One per domain: the allocator replaced, and the domain its events carry. */
struct hook {
    PyMemAllocatorEx replaced;
    int domain;
    int installed;
};

static struct hook mem_hook = {{NULL, NULL, NULL, NULL, NULL}, PYMEMTRACE_DOMAIN_PYMEM, 0};
static struct hook object_hook = {{NULL, NULL, NULL, NULL, NULL}, PYMEMTRACE_DOMAIN_PYOBJECT, 0};

static void *hook_malloc(void *ctx, size_t size)
{
    struct hook *hook = (struct hook *)ctx;
    void *ptr = hook->replaced.malloc(hook->replaced.ctx, size);
    pymemtrace_note_alloc(ptr, size, hook->domain);
    return ptr;
}

static void *hook_calloc(void *ctx, size_t count, size_t size)
{
    struct hook *hook = (struct hook *)ctx;
    void *ptr = hook->replaced.calloc(hook->replaced.ctx, count, size);
    pymemtrace_note_alloc(ptr, count * size, hook->domain); /* no overflow once it succeeded */
    return ptr;
}

static void *hook_realloc(void *ctx, void *ptr, size_t size)
{
    struct hook *hook = (struct hook *)ctx;
    uintptr_t old_bits = (uintptr_t)ptr; /* reported only, never read after the call */
    void *new_ptr = hook->replaced.realloc(hook->replaced.ctx, ptr, size);
    pymemtrace_note_realloc((const void *)old_bits, new_ptr, size, hook->domain);
    return new_ptr;
}

static void hook_free(void *ctx, void *ptr)
{
    struct hook *hook = (struct hook *)ctx;
    if (ptr != NULL)
        pymemtrace_note_free(ptr, hook->domain);
    hook->replaced.free(hook->replaced.ctx, ptr);
}

static void install_one(PyMemAllocatorDomain domain, struct hook *hook)
{
    PyMemAllocatorEx ours = {hook, hook_malloc, hook_calloc, hook_realloc, hook_free};
    if (hook->installed)
        return;
    PyMem_GetAllocator(domain, &hook->replaced);
    PyMem_SetAllocator(domain, &ours);
    hook->installed = 1;
}

/* Ours is still the allocator of `domain`: nothing installed over it since. */
static int on_top(PyMemAllocatorDomain domain, const struct hook *hook)
{
    PyMemAllocatorEx current;
    PyMem_GetAllocator(domain, &current);
    return !hook->installed || (current.ctx == hook && current.malloc == hook_malloc);
}

static PyObject *install(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    install_one(PYMEM_DOMAIN_MEM, &mem_hook);
    install_one(PYMEM_DOMAIN_OBJ, &object_hook);
    Py_RETURN_NONE;
}

static PyObject *uninstall(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    if (!on_top(PYMEM_DOMAIN_MEM, &mem_hook) || !on_top(PYMEM_DOMAIN_OBJ, &object_hook))
        return PyErr_Format(PyExc_RuntimeError,
                            "another allocator hook was installed over pymemtrace's "
                            "(tracemalloc?): remove it first (tracemalloc.stop())");
    if (mem_hook.installed)
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem_hook.replaced);
    if (object_hook.installed)
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &object_hook.replaced);
    mem_hook.installed = object_hook.installed = 0;
    Py_RETURN_NONE;
}

static PyObject *installed(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return PyBool_FromLong(mem_hook.installed && object_hook.installed);
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS,
     "install(): report every PyMem and PyObject allocation of the process (domains 2, 3)"},
    {"uninstall", uninstall, METH_NOARGS, "uninstall(): put back the allocators install() found"},
    {"installed", installed, METH_NOARGS, "installed() -> whether the hooks are in place"},
    {NULL, NULL, 0, NULL},
};

/* Single-phase init: the hooks are process-wide, one set whatever the interpreters. */
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pymemtrace._hooks", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hooks(void)
{
    return PyModule_Create(&module);
}
