/* SPDX-License-Identifier: MIT
 * A shared library whose C and C++ halves call the wrappers from fifty places each, built twice
 * (FIFTY_NAME = fifty_a, fifty_b) to check that probe sites and semaphores stay one per probe
 * and per library. */
#ifndef FIFTY_CALL_SITES_H
#define FIFTY_CALL_SITES_H

#ifndef FIFTY_NAME
#  error "define FIFTY_NAME"
#endif
#define FIFTY_GLUE2(a, b) a##_##b
#define FIFTY_GLUE(a, b) FIFTY_GLUE2(a, b)
#define FIFTY(fn) FIFTY_GLUE(FIFTY_NAME, fn)

#define FIFTY_TIMES_10(x) x x x x x x x x x x
#define FIFTY_TIMES_50(x) FIFTY_TIMES_10(x) FIFTY_TIMES_10(x) FIFTY_TIMES_10(x) \
                          FIFTY_TIMES_10(x) FIFTY_TIMES_10(x)

#include <stdint.h>

/* Declares one library's functions: the library itself and the test use it. */
#ifdef __cplusplus
#  define FIFTY_DECLARE(name) extern "C" {
#  define FIFTY_END }
#else
#  define FIFTY_DECLARE(name)
#  define FIFTY_END
#endif
#define FIFTY_FUNCTIONS(name)                                                                  \
    FIFTY_DECLARE(name)                                                                        \
    /* Each returns the number of blocks it allocated and freed. */                           \
    int FIFTY_GLUE(name, c_calls)(void);                                                       \
    int FIFTY_GLUE(name, cxx_calls)(void);                                                     \
    /* The address of this library's semaphore block, to compare between libraries. */        \
    uintptr_t FIFTY_GLUE(name, semaphores)(void);                                              \
    FIFTY_END

FIFTY_FUNCTIONS(FIFTY_NAME)

#endif
