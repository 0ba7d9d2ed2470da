/* SPDX-License-Identifier: MIT
 * pymemtrace/redirect.h: trace an extension without editing it. Force-include it in every
 * translation unit and link with the C heap wrapped:
 *
 *   cc ... -include pymemtrace/redirect.h ... -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free
 *
 * and, for C++ (cxxheap.h; harmless in a C-only link), -Wl,--wrap= each operator new and delete
 * it names.
 * (`pkg-config --cflags --libs pymemtrace-redirect`, or meson's `pymemtrace_redirect_dep`, give
 * exactly that; docs/extensions.md says why each choice was made.)
 *
 * CPython's allocators: every PyMem_Raw*, PyMem_* and PyObject_Malloc/Calloc/Realloc/Free name
 * after this header is an object-like macro for its traced twin in <pymemtrace/python.h>, so
 * calls and function-pointer uses alike (`tp_free = PyObject_Free`, an allocator table of
 * `PyMem_Malloc, PyMem_Realloc, PyMem_Free`) are traced, and CPython's own macros built on them
 * (PyMem_New, PyMem_Resize, PyMem_Del, PyObject_Del) keep their overflow checks. PyObject_New and
 * PyObject_NewVar go through _PyObject_New/_PyObject_NewVar, redirected to their twins.
 *
 * The C heap: a macro named `malloc` would also rename struct members (`dec->malloc(...)`), so
 * the linker's --wrap redirects the extension's own references to malloc/calloc/realloc/free to
 * the __wrap_* functions defined here: weak and hidden, one per shared object, whichever
 * translation units define them. Only references in the objects being linked are wrapped; libc,
 * libpython and other libraries keep their own.
 *
 * Python.h is included here, before the translation unit's own lines, so it is included with
 * PY_SSIZE_T_CLEAN defined: 3.10-3.12 raise SystemError on a `#` format without it and 3.13
 * ignores it, so on 3.10+ it changes nothing a working extension does. On 3.8-3.9 an extension
 * that does not define it and passes an `int` length to a `#` format must build with
 * -DPYMEMTRACE_REDIRECT_SSIZE_T_CLEAN=0. A translation unit that cannot see Python.h (a configure
 * check) gets the C heap wrappers only.
 */
#ifndef PYMEMTRACE_REDIRECT_H
#define PYMEMTRACE_REDIRECT_H

#ifndef PYMEMTRACE_REDIRECT_SSIZE_T_CLEAN
#  define PYMEMTRACE_REDIRECT_SSIZE_T_CLEAN 1
#endif

#if defined(__has_include)
#  if __has_include(<Python.h>)
#    define PYMEMTRACE_REDIRECT_PYTHON 1
#  endif
#endif

#ifdef PYMEMTRACE_REDIRECT_PYTHON
#  if PYMEMTRACE_REDIRECT_SSIZE_T_CLEAN && !defined(PY_SSIZE_T_CLEAN)
#    define PY_SSIZE_T_CLEAN
#  endif
#  include <Python.h>
#  include "python.h"
#else
#  include "pymemtrace.h"
#endif

/* --- the C heap, for -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free --- */
#if defined(__ELF__) && defined(__GNUC__)

#define PYMEMTRACE_DETAIL_WRAPPER PYMEMTRACE_EXTERN_C __attribute__((weak, used)) PYMEMTRACE_HIDDEN

PYMEMTRACE_EXTERN_C void *__real_malloc(size_t size);
PYMEMTRACE_EXTERN_C void *__real_calloc(size_t count, size_t size);
PYMEMTRACE_EXTERN_C void *__real_realloc(void *ptr, size_t size);
PYMEMTRACE_EXTERN_C void __real_free(void *ptr);

/* Twins of the real functions, as pymemtrace_malloc... are of libc's names: the extension's own
 * references to malloc are wrapped, so these name the real ones. */
PYMEMTRACE_DETAIL_WRAP_ALLOCATOR(pymemtrace_detail_wrap_malloc, pymemtrace_detail_wrap_calloc,
                                 pymemtrace_detail_wrap_realloc, pymemtrace_detail_wrap_free,
                                 __real_malloc, __real_calloc, __real_realloc, __real_free,
                                 PYMEMTRACE_DOMAIN_C_HEAP)

PYMEMTRACE_DETAIL_WRAPPER void *__wrap_malloc(size_t size)
{
    return pymemtrace_detail_wrap_malloc(size);
}

PYMEMTRACE_DETAIL_WRAPPER void *__wrap_calloc(size_t count, size_t size)
{
    return pymemtrace_detail_wrap_calloc(count, size);
}

PYMEMTRACE_DETAIL_WRAPPER void *__wrap_realloc(void *ptr, size_t size)
{
    return pymemtrace_detail_wrap_realloc(ptr, size);
}

PYMEMTRACE_DETAIL_WRAPPER void __wrap_free(void *ptr)
{
    pymemtrace_detail_wrap_free(ptr);
}

#undef PYMEMTRACE_DETAIL_WRAPPER
#endif /* __ELF__ && __GNUC__ */

/* --- the C++ heap, for -Wl,--wrap= every replaceable operator new and delete (cxxheap.h) --- */
#ifdef __cplusplus
#  include "cxxheap.h"
#endif

/* --- CPython's allocators: names, so function-pointer uses are redirected too --- */
#ifdef PYMEMTRACE_REDIRECT_PYTHON
#  define PyMem_RawMalloc pymemtrace_raw_malloc
#  define PyMem_RawCalloc pymemtrace_raw_calloc
#  define PyMem_RawRealloc pymemtrace_raw_realloc
#  define PyMem_RawFree pymemtrace_raw_free
#  define PyMem_Malloc pymemtrace_mem_malloc
#  define PyMem_Calloc pymemtrace_mem_calloc
#  define PyMem_Realloc pymemtrace_mem_realloc
#  define PyMem_Free pymemtrace_mem_free
#  define PyObject_Malloc pymemtrace_object_malloc
#  define PyObject_Calloc pymemtrace_object_calloc
#  define PyObject_Realloc pymemtrace_object_realloc
#  define PyObject_Free pymemtrace_object_free
#  define _PyObject_New pymemtrace_object_new_of
#  define _PyObject_NewVar pymemtrace_object_newvar_of
/* Py_BEGIN/END_ALLOW_THREADS, Py_UNBLOCK/BLOCK_THREADS: allocations without the GIL keep the
 * location where the thread released it. */
#  define PyEval_SaveThread pymemtrace_save_thread
#  define PyEval_RestoreThread pymemtrace_restore_thread
#endif

#endif /* PYMEMTRACE_REDIRECT_H */
