/* SPDX-License-Identifier: MIT
 * pymemtrace/pymemtrace.h: allocation events for any tracer, free until one attaches.
 *
 *   pymemtrace_malloc/calloc/realloc/free   the C heap, domain 0, same results as libc
 *   pymemtrace_note_alloc/realloc/free      report your own allocator's events (domains 16+)
 *   pymemtrace_probe_enabled(probe)         is a tracer attached to this probe?
 *
 * The probe table and the domains are in <pymemtrace/probes.h>. Untraced, a wrapper costs the
 * allocator call plus one load and one predicted branch; all probe work is out of line.
 *
 * Corner cases, reported as they happen (the plain probes) and as what happens to live blocks
 * (the py* probes):
 *   realloc(NULL, n) -> p       realloc(NULL, p, n);      pyalloc(p, n)
 *   realloc(p, n) -> q          realloc(p, q, n);         pyrealloc(p, q, n)
 *   realloc(p, 0) -> NULL       realloc(p, NULL, 0);      pyfree(p)     (glibc released p)
 *   realloc(p, n>0) -> NULL     realloc(p, NULL, n);      nothing       (failed; p is still live)
 *   malloc(n) -> NULL           nothing
 *   free(NULL)                  free(NULL);               pyfree(NULL)
 */
#ifndef PYMEMTRACE_PYMEMTRACE_H
#define PYMEMTRACE_PYMEMTRACE_H

#include <stdlib.h> /* malloc, calloc, realloc, free */

#include "batch.h"
#include "config.h"
#include "location.h"
#include "probes.h"

#if PYMEMTRACE_HAVE_USDT

/* Out of line and cold: this is the only code that runs while a tracer is attached. */
PYMEMTRACE_OUTLINE void pymemtrace_detail_fire_alloc(uintptr_t ptr, size_t size, int domain)
{
    if (ptr == 0)
        return;
    if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_ALLOC))
        pymemtrace_probe_alloc(ptr, size, domain);
    if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYALLOC)) {
        struct pymemtrace_location where = pymemtrace_detail_locate();
        if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYBATCH)) /* a tracer reads batches */
            pymemtrace_detail_batch_append(PYMEMTRACE_BATCH_ALLOC, ptr, 0, size, domain, &where);
        else
            pymemtrace_probe_pyalloc(ptr, size, domain, where.filename, where.function,
                                     where.lineno, where.stack);
    }
}

/* A batched free carries no location: the tracer matches it to its block by the pointer. Looking
 * it up was a tenth of a batched event's cost, and a free in a frame not yet sent fired a batch. */
#define PYMEMTRACE_DETAIL_FREE_LOCATION()                                                          \
    (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYBATCH) ? pymemtrace_detail_nowhere                \
                                                        : pymemtrace_detail_locate())

PYMEMTRACE_OUTLINE void pymemtrace_detail_fire_free(uintptr_t ptr, int domain)
{
    if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_FREE))
        pymemtrace_probe_free(ptr, domain);
    if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYFREE)) {
        struct pymemtrace_location where = PYMEMTRACE_DETAIL_FREE_LOCATION();
        if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYBATCH))
            pymemtrace_detail_batch_append(PYMEMTRACE_BATCH_FREE, ptr, 0, 0, domain, &where);
        else
            pymemtrace_probe_pyfree(ptr, domain, where.filename, where.function, where.lineno,
                                    where.stack);
    }
}

/* Pointers travel as integers: they are only reported, never dereferenced (the old one of a
 * realloc is already freed), and gcc's -Wuse-after-free and -Wmaybe-uninitialized stay quiet. */
PYMEMTRACE_OUTLINE void pymemtrace_detail_fire_realloc(uintptr_t old_ptr, uintptr_t new_ptr,
                                                          size_t size, int domain)
{
    if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_REALLOC))
        pymemtrace_probe_realloc(old_ptr, new_ptr, size, domain);
    if (!pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYREALLOC)
        && !pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYALLOC)
        && !pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYFREE))
        return;
    /* What happened to live blocks: a new one, a moved or resized one, a released one. */
    if (old_ptr == 0) {
        if (new_ptr != 0 && pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYALLOC)) {
            struct pymemtrace_location where = pymemtrace_detail_locate();
            if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYBATCH))
                pymemtrace_detail_batch_append(PYMEMTRACE_BATCH_ALLOC, new_ptr, 0, size, domain,
                                               &where);
            else
                pymemtrace_probe_pyalloc(new_ptr, size, domain, where.filename, where.function,
                                         where.lineno, where.stack);
        }
    } else if (new_ptr != 0) {
        if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYREALLOC)) {
            struct pymemtrace_location where = pymemtrace_detail_locate();
            if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYBATCH))
                pymemtrace_detail_batch_append(PYMEMTRACE_BATCH_REALLOC, new_ptr, old_ptr, size,
                                               domain, &where);
            else
                pymemtrace_probe_pyrealloc(old_ptr, new_ptr, size, where.filename,
                                           where.function, where.lineno, where.stack);
        }
    } else if (size == 0 && pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYFREE)) {
        struct pymemtrace_location where = PYMEMTRACE_DETAIL_FREE_LOCATION();
        if (pymemtrace_probe_enabled(PYMEMTRACE_PROBE_PYBATCH))
            pymemtrace_detail_batch_append(PYMEMTRACE_BATCH_FREE, old_ptr, 0, 0, domain, &where);
        else
            pymemtrace_probe_pyfree(old_ptr, domain, where.filename, where.function,
                                    where.lineno, where.stack);
    }
}

/* Hides a value from the optimiser, so gcc's -Wuse-after-free cannot follow the old pointer. */
PYMEMTRACE_INLINE uintptr_t pymemtrace_detail_opaque(uintptr_t bits)
{
    __asm__("" : "+r"(bits));
    return bits;
}

#endif /* PYMEMTRACE_HAVE_USDT */

/* Report that `ptr` (size bytes, in `domain`) was allocated. NULL is ignored. Not `const void *`:
 * gcc -Wmaybe-uninitialized would take a fresh block passed as const for a read of it. */
PYMEMTRACE_INLINE void pymemtrace_note_alloc(void *ptr, size_t size, int domain)
{
#if PYMEMTRACE_HAVE_USDT
    if (PYMEMTRACE_UNLIKELY(pymemtrace_detail_pair_enabled(PYMEMTRACE_PROBE_ALLOC)))
        pymemtrace_detail_fire_alloc((uintptr_t)ptr, size, domain);
#else
    (void)ptr, (void)size, (void)domain;
#endif
}

/* Report that `ptr` is about to be released. Call it before releasing. */
PYMEMTRACE_INLINE void pymemtrace_note_free(const void *ptr, int domain)
{
#if PYMEMTRACE_HAVE_USDT
    if (PYMEMTRACE_UNLIKELY(pymemtrace_detail_pair_enabled(PYMEMTRACE_PROBE_FREE)))
        pymemtrace_detail_fire_free((uintptr_t)ptr, domain);
#else
    (void)ptr, (void)domain;
#endif
}

/* Report a realloc of `old_ptr` to `size` bytes that returned `new_ptr` (NULL on failure, or
 * when size 0 released the block). Semantics as in the table above. */
PYMEMTRACE_INLINE void pymemtrace_note_realloc(const void *old_ptr, const void *new_ptr,
                                               size_t size, int domain)
{
#if PYMEMTRACE_HAVE_USDT
    if (PYMEMTRACE_UNLIKELY(pymemtrace_detail_pair_enabled(PYMEMTRACE_PROBE_REALLOC)))
        pymemtrace_detail_fire_realloc((uintptr_t)old_ptr, (uintptr_t)new_ptr, size, domain);
#else
    (void)old_ptr, (void)new_ptr, (void)size, (void)domain;
#endif
}

/* Defines traced twins of one allocator family: `wrapped_malloc(size)`, `wrapped_calloc(count,
 * size)`, `wrapped_realloc(ptr, size)`, `wrapped_free(ptr)`, each with the signature and result
 * of the function it wraps. Untraced, a twin is one compare and branch, then a tail call of the
 * real function: the semaphore is tested before the call, so nothing stays live across it (the
 * size for the probe, the result), and the traced path, out of line, calls the real function
 * itself and fires (`wrapped_NAME_traced`). A tracer attaching during an allocator call misses
 * that one event, as it would any event before it attached. calloc's probe size is count *
 * size, which cannot overflow once the allocation succeeded. The old pointer of a realloc is
 * hidden from the optimiser so that gcc's -Wuse-after-free does not follow it into the probe. */
#if PYMEMTRACE_HAVE_USDT
#  define PYMEMTRACE_DETAIL_TRACED_FAMILY(wrapped_malloc, wrapped_calloc, wrapped_realloc,         \
                                          wrapped_free, real_malloc, real_calloc, real_realloc,    \
                                          real_free, domain)                                       \
      PYMEMTRACE_OUTLINE void *wrapped_malloc##_traced(size_t size)                                \
      {                                                                                            \
          void *ptr = real_malloc(size);                                                           \
          PYMEMTRACE_DETAIL_HANDING_CALLER(                                                        \
              pymemtrace_detail_fire_alloc((uintptr_t)ptr, size, domain));                         \
          return ptr;                                                                              \
      }                                                                                            \
      PYMEMTRACE_OUTLINE void *wrapped_calloc##_traced(size_t count, size_t size)                  \
      {                                                                                            \
          void *ptr = real_calloc(count, size);                                                    \
          PYMEMTRACE_DETAIL_HANDING_CALLER(                                                        \
              pymemtrace_detail_fire_alloc((uintptr_t)ptr, count * size, domain));                 \
          return ptr;                                                                              \
      }                                                                                            \
      PYMEMTRACE_OUTLINE void *wrapped_realloc##_traced(void *ptr, size_t size)                    \
      {                                                                                            \
          uintptr_t old_bits = pymemtrace_detail_opaque((uintptr_t)ptr);                           \
          void *new_ptr = real_realloc(ptr, size);                                                 \
          PYMEMTRACE_DETAIL_HANDING_CALLER(                                                        \
              pymemtrace_detail_fire_realloc(old_bits, (uintptr_t)new_ptr, size, domain));         \
          return new_ptr;                                                                          \
      }                                                                                            \
      PYMEMTRACE_OUTLINE void wrapped_free##_traced(void *ptr)                                     \
      {                                                                                            \
          PYMEMTRACE_DETAIL_HANDING_CALLER(pymemtrace_detail_fire_free((uintptr_t)ptr, domain));   \
          real_free(ptr);                                                                          \
      }
/* A twin's body: the test of its pair (OFFSET: the pair's byte offset, 4 * (PROBE / 2); probes.h),
 * the untraced call, then the traced path after its label. */
#  define PYMEMTRACE_DETAIL_TWIN_BODY(offset, probe, untraced, traced)                             \
      PYMEMTRACE_DETAIL_GOTO_IF_TRACED(offset, probe);                                             \
      untraced                                                                                     \
  pymemtrace_traced:                                                                               \
      traced
#else
#  define PYMEMTRACE_DETAIL_TRACED_FAMILY(wrapped_malloc, wrapped_calloc, wrapped_realloc,         \
                                          wrapped_free, real_malloc, real_calloc, real_realloc,    \
                                          real_free, domain)
#  define PYMEMTRACE_DETAIL_TWIN_BODY(offset, probe, untraced, traced) untraced
#endif

#define PYMEMTRACE_DETAIL_WRAP_ALLOCATOR(wrapped_malloc, wrapped_calloc, wrapped_realloc,          \
                                         wrapped_free, real_malloc, real_calloc, real_realloc,     \
                                         real_free, domain)                                        \
    PYMEMTRACE_DETAIL_TRACED_FAMILY(wrapped_malloc, wrapped_calloc, wrapped_realloc, wrapped_free, \
                                    real_malloc, real_calloc, real_realloc, real_free, domain)     \
    PYMEMTRACE_INLINE void *wrapped_malloc(size_t size)                                            \
    {                                                                                              \
        PYMEMTRACE_DETAIL_TWIN_BODY(0, PYMEMTRACE_PROBE_ALLOC, return real_malloc(size);,          \
                                    return wrapped_malloc##_traced(size);)                         \
    }                                                                                              \
    PYMEMTRACE_INLINE void *wrapped_calloc(size_t count, size_t size)                              \
    {                                                                                              \
        PYMEMTRACE_DETAIL_TWIN_BODY(0, PYMEMTRACE_PROBE_ALLOC, return real_calloc(count, size);,   \
                                    return wrapped_calloc##_traced(count, size);)                  \
    }                                                                                              \
    PYMEMTRACE_INLINE void *wrapped_realloc(void *ptr, size_t size)                                \
    {                                                                                              \
        PYMEMTRACE_DETAIL_TWIN_BODY(4, PYMEMTRACE_PROBE_REALLOC, return real_realloc(ptr, size);,  \
                                    return wrapped_realloc##_traced(ptr, size);)                   \
    }                                                                                              \
    PYMEMTRACE_INLINE void wrapped_free(void *ptr)                                                 \
    {                                                                                              \
        PYMEMTRACE_DETAIL_TWIN_BODY(8, PYMEMTRACE_PROBE_FREE, real_free(ptr); return;,             \
                                    wrapped_free##_traced(ptr);)                                   \
    }

/* pymemtrace_malloc, pymemtrace_calloc, pymemtrace_realloc, pymemtrace_free: the C heap. */
PYMEMTRACE_DETAIL_WRAP_ALLOCATOR(pymemtrace_malloc, pymemtrace_calloc, pymemtrace_realloc,
                                 pymemtrace_free, malloc, calloc, realloc, free,
                                 PYMEMTRACE_DOMAIN_C_HEAP)

#endif /* PYMEMTRACE_PYMEMTRACE_H */
