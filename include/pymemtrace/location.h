/* SPDX-License-Identifier: MIT
 * pymemtrace/location.h: where in Python an event happened, for the py* probes.
 *
 * The lookup lives in <pymemtrace/python.h>, which defines pymemtrace_python_locate() as a weak,
 * hidden function. Every wrapper in a shared object calls it through this weak reference, so once
 * any translation unit of the library includes <pymemtrace/python.h>, every wrapper in it (C heap
 * and C++ allocator included) reports Python locations; in a library without Python it is absent
 * and the py* probes carry "" and line 0.
 */
#ifndef PYMEMTRACE_LOCATION_H
#define PYMEMTRACE_LOCATION_H

#include "config.h"

struct pymemtrace_location {
    const char *filename; /* co_filename of the innermost Python frame, or "" */
    const char *function; /* its qualified name (3.11+) or name (3.8-3.10), or "" */
    int lineno;           /* the line being executed, or 0 */
};

#if PYMEMTRACE_HAVE_USDT
PYMEMTRACE_EXTERN_C void pymemtrace_python_locate(struct pymemtrace_location *location)
    __attribute__((weak)) PYMEMTRACE_HIDDEN;

/* The location of the calling thread; valid until the calling Python frame returns. */
PYMEMTRACE_INLINE struct pymemtrace_location pymemtrace_detail_locate(void)
{
    struct pymemtrace_location location = {"", "", 0};
    if (pymemtrace_python_locate != 0)
        pymemtrace_python_locate(&location);
    return location;
}
#endif

#endif /* PYMEMTRACE_LOCATION_H */
