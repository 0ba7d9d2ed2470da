/* SPDX-License-Identifier: MIT
 * pymemtrace/config.h: user settings, then platform detection. Every macro is 0 or 1.
 *
 * Settings (define before including any pymemtrace header):
 *   PYMEMTRACE_CONFIG_DISABLE  1: no probes at all; every wrapper is the plain allocator.
 *   PYMEMTRACE_CONFIG_NOP5     0 (default): probe sites are the classic 1-byte nop, which every
 *                              kernel traps with int3 and which survives fork().
 *                              1: 5-byte nops, which kernels with the uprobe nop5 optimisation
 *                              (Linux 6.18) trap faster, but UNSAFE ACROSS fork(): a child forked
 *                              after a site was optimised inherits a call into the parent's
 *                              [uprobes-trampoline], which the kernel does not copy, and dies with
 *                              SIGSEGV on its first probe hit (docs/probes.md). Only for processes
 *                              that never fork while traced (no multiprocessing, no os.fork()).
 *
 * Detected:
 *   PYMEMTRACE_HAVE_USDT       1 when probes are emitted: ELF on x86-64, <sys/sdt.h> present,
 *                              gcc or clang, and not disabled.
 */
#ifndef PYMEMTRACE_CONFIG_H
#define PYMEMTRACE_CONFIG_H

#ifndef PYMEMTRACE_CONFIG_DISABLE
#  define PYMEMTRACE_CONFIG_DISABLE 0
#endif
#ifndef PYMEMTRACE_CONFIG_NOP5
#  define PYMEMTRACE_CONFIG_NOP5 0
#endif

#if defined(__has_include)
#  define PYMEMTRACE_HAVE_SDT_H __has_include(<sys/sdt.h>)
#else
#  define PYMEMTRACE_HAVE_SDT_H 0
#endif

/* The probe sites are written in x86-64 assembly (see probes.h): other targets get no probes. */
#if !PYMEMTRACE_CONFIG_DISABLE && PYMEMTRACE_HAVE_SDT_H && defined(__ELF__) \
    && defined(__x86_64__) && defined(__GNUC__)
#  define PYMEMTRACE_HAVE_USDT 1
#else
#  define PYMEMTRACE_HAVE_USDT 0
#endif

#if defined(__GNUC__)
#  define PYMEMTRACE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define PYMEMTRACE_COLD __attribute__((unused, noinline, cold))
#  define PYMEMTRACE_HIDDEN __attribute__((visibility("hidden")))
#else
#  define PYMEMTRACE_UNLIKELY(x) (x)
#  define PYMEMTRACE_COLD
#  define PYMEMTRACE_HIDDEN
#endif

/* Functions defined in the headers: inline, with internal linkage in C (C99 has no other
 * header-only inline). Out-of-line helpers are PYMEMTRACE_OUTLINE: static, cold, never inlined. */
#ifdef __cplusplus
#  define PYMEMTRACE_INLINE inline
#  define PYMEMTRACE_EXTERN_C extern "C"
#else
#  define PYMEMTRACE_INLINE static inline
#  define PYMEMTRACE_EXTERN_C
#endif

#define PYMEMTRACE_OUTLINE static PYMEMTRACE_COLD

#endif /* PYMEMTRACE_CONFIG_H */
