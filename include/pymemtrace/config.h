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
 *                              x86-64 only: an aarch64 site is always one 4-byte nop.
 *
 * Detected:
 *   PYMEMTRACE_HAVE_SDT_H       1 when <sys/sdt.h> is found.
 *   PYMEMTRACE_HAVE_PROBE_SITES 1 on the targets probes.h has sites for: Linux, 64-bit ELF on
 *                               x86-64 or aarch64, with gcc or clang.
 *   PYMEMTRACE_HAVE_USDT        1 when probes are emitted: probe sites, <sys/sdt.h>, not disabled.
 *
 * A target with probe sites but no <sys/sdt.h> gets a #warning naming the package to install:
 * without it the build would silently have no probes, and a trace would come back empty.
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

/* The probe sites are written in assembly for these targets (probes.h); others get no probes.
 * Linux: FreeBSD's and illumos' <sys/sdt.h> are DTrace's, without systemtap's note macros (there
 * the provider is pymemtrace.d; docs/probes.md). __LP64__: the notes give pointers 8 bytes
 * (no x32, no aarch64 ILP32). */
#if defined(__linux__) && defined(__ELF__) && defined(__GNUC__) && defined(__LP64__) \
    && (defined(__x86_64__) || defined(__aarch64__))
#  define PYMEMTRACE_HAVE_PROBE_SITES 1
#else
#  define PYMEMTRACE_HAVE_PROBE_SITES 0
#endif

#if !PYMEMTRACE_CONFIG_DISABLE && PYMEMTRACE_HAVE_SDT_H && PYMEMTRACE_HAVE_PROBE_SITES
#  define PYMEMTRACE_HAVE_USDT 1
#else
#  define PYMEMTRACE_HAVE_USDT 0
#endif

/* Probes were wanted and could be built, but the header is missing: say so at build time rather
 * than let the user find out from an empty trace. (Without __has_include we cannot tell.) */
#if !PYMEMTRACE_CONFIG_DISABLE && PYMEMTRACE_HAVE_PROBE_SITES && !PYMEMTRACE_HAVE_SDT_H \
    && defined(__has_include)
#  warning "pymemtrace: <sys/sdt.h> not found, so this build has NO probes: install systemtap-sdt-dev (Debian, Ubuntu) or systemtap-sdt-devel (Fedora), or define PYMEMTRACE_CONFIG_DISABLE=1 to build without probes on purpose"
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
