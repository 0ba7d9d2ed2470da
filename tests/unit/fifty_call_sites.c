/* SPDX-License-Identifier: MIT */
#include <pymemtrace/pymemtrace.h>

#include "fifty_call_sites.h"

int FIFTY(c_calls)(void)
{
    int blocks = 0;
    void *p;
    FIFTY_TIMES_50(p = pymemtrace_malloc(16); p = pymemtrace_realloc(p, 32);
                   blocks += p != NULL; pymemtrace_free(p);)
    return blocks;
}

uintptr_t FIFTY(semaphores)(void)
{
    return (uintptr_t)pymemtrace_semaphores;
}
