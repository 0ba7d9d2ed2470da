# SPDX-License-Identifier: MIT
# Cython declarations of the traced twins of <pymemtrace/python.h>, for hand-written calls:
#     from pymemtrace.python cimport pymemtrace_mem_malloc, pymemtrace_mem_free
# with pymemtrace.get_include() on Cython's include path and the C compiler's. (An unmodified
# Cython module is traced by the redirect route instead: docs/extensions.md.)
cdef extern from "pymemtrace/python.h":
    void *pymemtrace_raw_malloc(size_t size) nogil
    void *pymemtrace_raw_calloc(size_t count, size_t size) nogil
    void *pymemtrace_raw_realloc(void *ptr, size_t size) nogil
    void pymemtrace_raw_free(void *ptr) nogil
    void *pymemtrace_mem_malloc(size_t size)
    void *pymemtrace_mem_calloc(size_t count, size_t size)
    void *pymemtrace_mem_realloc(void *ptr, size_t size)
    void pymemtrace_mem_free(void *ptr)
    void *pymemtrace_object_malloc(size_t size)
    void *pymemtrace_object_calloc(size_t count, size_t size)
    void *pymemtrace_object_realloc(void *ptr, size_t size)
    void pymemtrace_object_free(void *ptr)

cdef extern from "pymemtrace/pymemtrace.h":
    void *pymemtrace_malloc(size_t size) nogil
    void *pymemtrace_calloc(size_t count, size_t size) nogil
    void *pymemtrace_realloc(void *ptr, size_t size) nogil
    void pymemtrace_free(void *ptr) nogil
    void pymemtrace_note_alloc(void *ptr, size_t size, int domain) nogil
    void pymemtrace_note_realloc(const void *old_ptr, const void *new_ptr, size_t size,
                                 int domain) nogil
    void pymemtrace_note_free(const void *ptr, int domain) nogil
