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

#include <stdint.h> /* uint64_t, uintptr_t */

#include "config.h"
#include "probes.h" /* the pynative request's semaphore */

/* The most frames a stack record holds (pystack16). */
#define PYMEMTRACE_STACK_FRAMES 16

/* One Python frame of a stack record (40 bytes; tracers read it at these offsets). */
struct pymemtrace_frame {
    uint64_t id;          /*  0: the frame's content (file, function, line) mixed; 0: no frame */
    uint64_t stack;       /*  8: the ids of frames 0..this one mixed: the key of that stack */
    const char *filename; /* 16: as pymemtrace_location's */
    const char *function; /* 24 */
    int32_t lineno;       /* 32 */
    int32_t reserved;     /* 36: 0 */
};

/* The calling thread's Python stack, innermost frame first: what the py* probes' 7th argument
 * points at while a tracer asks for depth (pystack4, pystack16), else that argument is NULL.
 * frames[depth..requested) repeat the last stack id with no names ("", line 0), so the key of N
 * frames is always frames[N - 1].stack for any N <= requested. The record is the thread's own,
 * overwritten by its next lookup. */
struct pymemtrace_stack {
    uint32_t depth;     /*  0: frames found, at most `requested` */
    uint32_t requested; /*  4: frames filled: 4 or 16 */
    struct pymemtrace_frame frames[PYMEMTRACE_STACK_FRAMES]; /* 8 */
    uint64_t native; /* 648: while pynative is attached, the code that called the allocator:
                        its return address as an offset from this shared object's ELF header
                        (symbolize offset - 1); 0: unknown, or not asked */
};

struct pymemtrace_location {
    const char *filename; /* co_filename of the innermost Python frame, or "" */
    const char *function; /* its qualified name (3.11+) or name (3.8-3.10), or "" */
    int lineno;           /* the line being executed, or 0 */
    uintptr_t stack;      /* the thread's struct pymemtrace_stack while depth is asked, else 0 */
    uintptr_t native;     /* in: the native caller's offset (pymemtrace_detail_locate) */
    uint64_t frame;       /* the innermost frame's content id while events are batched, else 0 */
};

#if PYMEMTRACE_HAVE_USDT
PYMEMTRACE_EXTERN_C void pymemtrace_python_locate(struct pymemtrace_location *location)
    __attribute__((weak)) PYMEMTRACE_HIDDEN;

/* This shared object's ELF header (GNU ld and lld define it): return addresses are given as
 * offsets from it, which symbolize from the file alone, after the process has ended. */
#ifdef __cplusplus
extern "C" {
#endif
extern const char __ehdr_start[] __attribute__((weak)) PYMEMTRACE_HIDDEN;
#ifdef __cplusplus
} /* extern "C" */
#endif

/* The native caller that an out-of-line layer between the extension's code and a fire helper (a
 * twin's _traced path, a __wrap_ operator new) hands down while pynative is attached; 0 when none
 * does. One per thread and shared object. */
__attribute__((weak)) PYMEMTRACE_HIDDEN __thread uintptr_t
    pymemtrace_detail_native_handoff; /* a definition (a global's name is the same in C++) */

/* Around `fire` (a fire helper's call) in an out-of-line layer: while pynative is attached,
 * `caller` is the native caller. Without pynative: one load and a branch, traced path only. */
#define PYMEMTRACE_DETAIL_HANDING(caller, fire)                                                    \
    do {                                                                                           \
        uintptr_t pymemtrace_handed = 0;                                                           \
        if (PYMEMTRACE_UNLIKELY(pymemtrace_semaphores[PYMEMTRACE_PROBE_PYNATIVE] != 0))            \
            pymemtrace_detail_native_handoff = pymemtrace_handed = (caller);                       \
        fire;                                                                                      \
        if (PYMEMTRACE_UNLIKELY(pymemtrace_handed != 0))                                           \
            pymemtrace_detail_native_handoff = 0;                                                  \
    } while (0)
/* The same, the native caller being the caller of the function it is written in. */
#define PYMEMTRACE_DETAIL_HANDING_CALLER(fire)                                                     \
    PYMEMTRACE_DETAIL_HANDING((uintptr_t)__builtin_return_address(0), fire)

/* No location: what an event that needs none carries. */
static const struct pymemtrace_location pymemtrace_detail_nowhere = {"", "", 0, 0, 0, 0};

/* The location of the calling thread; valid until the calling Python frame returns. Always
 * inlined into the fire helper that asks, so that its return address is the helper's: the code
 * that called the allocator (the wrappers are inlined there), unless a layer handed one down.
 * While pynative is attached it goes in the stack record (python.h); never read otherwise. */
__attribute__((always_inline)) PYMEMTRACE_INLINE struct pymemtrace_location
pymemtrace_detail_locate(void)
{
    struct pymemtrace_location location = {"", "", 0, 0, 0, 0};
    if (PYMEMTRACE_UNLIKELY(pymemtrace_semaphores[PYMEMTRACE_PROBE_PYNATIVE] != 0)) {
        uintptr_t caller = pymemtrace_detail_native_handoff;
        if (caller == 0)
            caller = (uintptr_t)__builtin_return_address(0);
        location.native = caller - (uintptr_t)__ehdr_start;
    }
    if (pymemtrace_python_locate != 0)
        pymemtrace_python_locate(&location);
    return location;
}
#endif

#endif /* PYMEMTRACE_LOCATION_H */
