/* SPDX-License-Identifier: MIT
 * codesize: one call site per function, compiled at -O2 twice, with CODESIZE_WRAPPED=0 (plain
 * malloc/realloc/free) and =1 (pymemtrace's wrappers); benchmarks/bench.py compares the sizes
 * of the same functions (`nm -S`), hot part and any .cold part, and the one-off out-of-line
 * helpers (pymemtrace_detail_fire_*) the wrapped object adds once per translation unit.
 * Each site does something with the result, as real code does, so no call becomes a tail jump.
 */
#include <stddef.h> /* size_t */
#include <stdlib.h> /* malloc, realloc, free */

#include <pymemtrace/pymemtrace.h> /* pymemtrace_malloc, pymemtrace_realloc, pymemtrace_free */

#if CODESIZE_WRAPPED
#  define SITE_MALLOC pymemtrace_malloc
#  define SITE_REALLOC pymemtrace_realloc
#  define SITE_FREE pymemtrace_free
#else
#  define SITE_MALLOC malloc
#  define SITE_REALLOC realloc
#  define SITE_FREE free
#endif

void consume(void *block);

void site_malloc(size_t size)
{
    consume(SITE_MALLOC(size));
}

void site_realloc(void *block, size_t size)
{
    consume(SITE_REALLOC(block, size));
}

void site_free(void *block)
{
    SITE_FREE(block);
    consume(NULL);
}
