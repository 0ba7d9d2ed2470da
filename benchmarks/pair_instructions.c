/* SPDX-License-Identifier: MIT
 * pair_instructions: N x (allocate 64 bytes; free them), plain or through pymemtrace's untraced
 * wrappers, for callgrind to count instructions (benchmarks/bench.py section 1). One allocator
 * family per run: c (malloc/free, pymemtrace_malloc/free), realloc (realloc(NULL, 64)/free).
 *
 * Usage: pair_instructions plain|wrapped c|realloc N
 */
#include <stdio.h>  /* fprintf */
#include <stdlib.h> /* strtoul */
#include <string.h> /* strcmp */

#include <pymemtrace/pymemtrace.h> /* pymemtrace_malloc, pymemtrace_realloc, pymemtrace_free */

/* Not inlined, so that each pair is a call site as an extension has them; one function a
 * family and kind, so that no branch of the benchmark's own is counted with it. */
#define PAIR(name, allocate, release)                                                              \
    __attribute__((noinline)) static void name(void)                                               \
    {                                                                                              \
        char *block = allocate;                                                                    \
        __asm__ volatile("" : : "r"(block) : "memory");                                            \
        release(block);                                                                            \
    }
PAIR(plain_c, malloc(64), free)
PAIR(plain_realloc, realloc(NULL, 64), free)
PAIR(wrapped_c, pymemtrace_malloc(64), pymemtrace_free)
PAIR(wrapped_realloc, pymemtrace_realloc(NULL, 64), pymemtrace_free)

int main(int argc, char **argv)
{
    unsigned long i, n;
    void (*pair)(void);
    int wrapped, use_realloc;
    if (argc != 4) {
        fprintf(stderr, "usage: %s plain|wrapped c|realloc N\n", argv[0]);
        return 2;
    }
    wrapped = strcmp(argv[1], "wrapped") == 0;
    use_realloc = strcmp(argv[2], "realloc") == 0;
    pair = wrapped ? (use_realloc ? wrapped_realloc : wrapped_c)
                   : (use_realloc ? plain_realloc : plain_c);
    n = strtoul(argv[3], NULL, 10);
    for (i = 0; i < n; ++i)
        pair();
    return 0;
}
