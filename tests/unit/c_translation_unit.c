/* SPDX-License-Identifier: MIT
 * The wrappers compiled as C99, called from the C++ tests. */
#include <pymemtrace/pymemtrace.h>

#include <string.h>

#include "c_translation_unit.h"

int c_unit_roundtrip(size_t size)
{
    char *p = (char *)pymemtrace_malloc(size);
    if (p == NULL)
        return 0;
    memset(p, 'c', size);
    p = (char *)pymemtrace_realloc(p, size * 2);
    if (p == NULL)
        return 0;
    int intact = p[size - 1] == 'c';
    pymemtrace_free(p);
    p = (char *)pymemtrace_calloc(size, 1);
    intact = intact && p != NULL && p[0] == 0;
    pymemtrace_free(p);
    return intact;
}

int c_unit_any_probe_enabled(void)
{
    int probe, any = 0;
    for (probe = PYMEMTRACE_PROBE_ALLOC; probe <= PYMEMTRACE_PROBE_PYSTACK16; ++probe)
        any |= pymemtrace_probe_enabled((enum pymemtrace_probe)probe);
    return any;
}

uintptr_t c_unit_semaphores(void)
{
#if PYMEMTRACE_HAVE_USDT
    return (uintptr_t)pymemtrace_semaphores;
#else
    return 0;
#endif
}
