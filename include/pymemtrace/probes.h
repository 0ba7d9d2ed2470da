/* SPDX-License-Identifier: MIT
 * pymemtrace/probes.h: the USDT provider `pymemtrace`: its probe sites, its semaphores, and the
 * test of whether a tracer is attached. Most code wants <pymemtrace/pymemtrace.h> instead.
 *
 * The probe table (the contract with every tracer script; README.md repeats it):
 *
 *   probe      arguments (bpftrace arg0..)                                  fires
 *   alloc      ptr, size, domain                                            after an allocation that returned non-NULL
 *   realloc    old_ptr, new_ptr, size, domain                               after every realloc, with its result
 *   free       ptr, domain                                                  before a release; every call, NULL included
 *   pyalloc    ptr, size, domain, filename, function, lineno, stack         as alloc, with the Python location
 *   pyrealloc  old_ptr, new_ptr, size, filename, function, lineno, stack    a live block moved or resized
 *   pyfree     ptr, domain, filename, function, lineno, stack               as free, with the Python location
 *   pystack4   -                                                            never: attached, it asks for 4 frames
 *   pystack16  -                                                            never: attached, it asks for 16 frames
 *   pynative   -                                                            never: attached, it asks for the native caller
 *   pybatch    ring, last                                                   with a tracer attached to it, once per batch of py* events (batch.h)
 *
 * Types: pointers (passed as uintptr_t) and size are 8 bytes unsigned, domain and lineno 4 bytes signed, filename and
 * function are `const char *`, never NULL ("" and line 0 when no Python frame is known). `stack` is the address of
 * the calling thread's `struct pymemtrace_stack` (location.h: up to 16 frames, each with a content id and the id of
 * the stack up to it) while a tracer is attached to pystack4 or pystack16, else 0. pyalloc's and pyrealloc's
 * seventh argument is on the stack on x86-64 (8@8(%rsp)), which bpftrace 0.17 refuses to read as arg6; read it
 * there as *(uint64 *)(reg("sp") + 8). pystack4/pystack16 have a site and a semaphore but are never called: their
 * semaphores are the request, read only on the py* path. So has pynative: while it is attached, `stack` is passed
 * (requested 0 when no depth is asked) and its `native` field holds the return address of the code that called the
 * allocator, as an offset from the shared object's ELF header (location.h). pybatch's `ring` is the address of the
 * calling thread's `struct pymemtrace_batch_ring` (batch.h) and `last` the sequence number of its newest event, 0
 * when the ring is announced (its thread's first event): while a tracer is attached to it, the py* probes are not
 * fired; their events go to the ring (a tracer reads the ring, not the probes' arguments).
 *
 * How a probe is built (64-bit ELF on x86-64 or aarch64): each probe is one tiny function,
 * `pymemtrace_probe_NAME`, whose first instruction is the probe site and whose arguments are
 * exactly the probe's, in the argument registers (System V: rdi, rsi, ...; AAPCS64: x0, x1, ...).
 * The function and its .note.stapsdt entry sit in a COMDAT group, so one shared object has exactly
 * one site per probe however many translation units call it (bpftrace refuses more than 512
 * sites). The ten semaphores are one 20-byte COMDAT block in `.probes`, hidden so that each
 * shared object traces independently, laid out in pairs (alloc|pyalloc, realloc|pyrealloc,
 * free|pyfree, pystack4|pystack16, pynative|pybatch) so that "is anyone listening" is one 32-bit
 * load; the requests and pybatch are read one at a time, only on the py* path. (All translation
 * units of one shared object must use the same headers: the block's size is the COMDAT's.)
 * The site is a nop: on x86-64 1 byte (int3 when traced), safe across fork() on every kernel; on
 * aarch64 the one 4-byte nop (BRK when traced). With PYMEMTRACE_CONFIG_NOP5=1 (x86-64 only) it is
 * a 5-byte nop, which the kernel's nop5 uprobe optimisation (Linux 6.18) rewrites into a call to
 * a [uprobes-trampoline] page: faster, and the call writes below the stack pointer, which is safe
 * here (the entry of a leaf function that keeps nothing there), but a child forked after that
 * inherits the call and not the trampoline (the kernel maps it VM_DONTCOPY) and dies with SIGSEGV
 * on its first probe hit. See config.h and docs/probes.md.
 */
#ifndef PYMEMTRACE_PROBES_H
#define PYMEMTRACE_PROBES_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint32_t */

#include "config.h"

/* Domains: which allocator a block belongs to. 16 and up are for users' own allocators. */
enum pymemtrace_domain {
    PYMEMTRACE_DOMAIN_C_HEAP = 0,    /* malloc family */
    PYMEMTRACE_DOMAIN_PYMEM_RAW = 1, /* PyMem_Raw* */
    PYMEMTRACE_DOMAIN_PYMEM = 2,     /* PyMem_* */
    PYMEMTRACE_DOMAIN_PYOBJECT = 3,  /* PyObject_* */
    PYMEMTRACE_DOMAIN_CXX = 4,       /* pymemtrace::allocator, operator new/delete (cxxheap.h) */
    PYMEMTRACE_DOMAIN_USER = 16      /* first domain for users' own allocators */
};

/* Probes, in semaphore order: a plain probe and its py twin share one 32-bit word. */
enum pymemtrace_probe {
    PYMEMTRACE_PROBE_ALLOC = 0,
    PYMEMTRACE_PROBE_PYALLOC = 1,
    PYMEMTRACE_PROBE_REALLOC = 2,
    PYMEMTRACE_PROBE_PYREALLOC = 3,
    PYMEMTRACE_PROBE_FREE = 4,
    PYMEMTRACE_PROBE_PYFREE = 5,
    PYMEMTRACE_PROBE_PYSTACK4 = 6, /* requests, never fired: a stack of 4 frames */
    PYMEMTRACE_PROBE_PYSTACK16 = 7, /* and of 16 */
    PYMEMTRACE_PROBE_PYNATIVE = 8,  /* request, never fired: the native caller in the record */
    PYMEMTRACE_PROBE_PYBATCH = 9    /* the py* events in batches (batch.h) */
};

#if PYMEMTRACE_HAVE_USDT

#include <sys/sdt.h> /* _SDT_ASM_BODY, _SDT_ASM_BASE: the stapsdt note format */

/* The notes are written by <sys/sdt.h>'s own note body rather than a copy of its format, so they
 * are whatever the installed tracers' header says they are. That body is private API: these are
 * the macros used below (systemtap-sdt-dev 4.x: _SDT_ASM_BODY(provider, name, pack_args, args,
 * ...) emits label 990 with _SDT_NOP, then the note, whose semaphore word is _SDT_SEMAPHORE).
 * A header without them fails here, by name; one that changed their meaning fails
 * tests/unit/test_stapsdt_notes.cpp, which reads this binary's notes back. */
#if !defined(_SDT_ASM_BODY) || !defined(_SDT_ASM_BASE) || !defined(_SDT_ASM_1) \
    || !defined(_SDT_ASM_ADDR) || !defined(_SDT_ASM_SUBSTR) || !defined(_SDT_NOP) \
    || !defined(_SDT_SEMAPHORE)
#  error "pymemtrace/probes.h: this <sys/sdt.h> lacks the _SDT_ASM_* note macros of systemtap-sdt-dev 4.x; build with PYMEMTRACE_CONFIG_DISABLE=1 or install systemtap-sdt-dev >= 4.0"
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Defined by the assembly below; hidden, so each shared object has its own. */
extern volatile unsigned short pymemtrace_semaphores[10] PYMEMTRACE_HIDDEN;
extern volatile uint32_t pymemtrace_semaphore_pairs[5] PYMEMTRACE_HIDDEN;

void pymemtrace_probe_alloc(uintptr_t ptr, size_t size, int domain) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_realloc(uintptr_t old_ptr, uintptr_t new_ptr, size_t size, int domain)
    PYMEMTRACE_HIDDEN;
void pymemtrace_probe_free(uintptr_t ptr, int domain) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pyalloc(uintptr_t ptr, size_t size, int domain, const char *filename,
                              const char *function, int lineno, uintptr_t stack) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pyrealloc(uintptr_t old_ptr, uintptr_t new_ptr, size_t size,
                                const char *filename, const char *function, int lineno,
                                uintptr_t stack) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pyfree(uintptr_t ptr, int domain, const char *filename,
                             const char *function, int lineno, uintptr_t stack) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pystack4(void) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pystack16(void) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pynative(void) PYMEMTRACE_HIDDEN;
void pymemtrace_probe_pybatch(uintptr_t ring, uint64_t last) PYMEMTRACE_HIDDEN;
#ifdef __cplusplus
} /* extern "C" */
#endif

/* sys/sdt.h's note body, with our semaphore symbols and with the nop emitted by us. */
#pragma push_macro("_SDT_NOP")
#pragma push_macro("_SDT_SEMAPHORE")
#undef _SDT_NOP
#undef _SDT_SEMAPHORE
#define _SDT_NOP
#define _SDT_SEMAPHORE(p, n) _SDT_ASM_1(_SDT_ASM_ADDR p##_##n##_semaphore)

/* What is specific to a target: the site's nop and where each argument is when the probe
 * function is entered (its calling convention's argument registers, as tracers spell them). The
 * argument strings are string literals, out of reach of users' macros (a `#define x0`). */
#if defined(__x86_64__)
#  if PYMEMTRACE_CONFIG_NOP5
#    define PYMEMTRACE_DETAIL_NOP ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n" /* nopl 0(%rax,%rax,1) */
#  else
#    define PYMEMTRACE_DETAIL_NOP "nop\n"
#  endif
#  define PYMEMTRACE_DETAIL_ARGS_alloc "8@%rdi 8@%rsi -4@%edx"
#  define PYMEMTRACE_DETAIL_ARGS_realloc "8@%rdi 8@%rsi 8@%rdx -4@%ecx"
#  define PYMEMTRACE_DETAIL_ARGS_free "8@%rdi -4@%esi"
/* A seventh argument is the first on the stack, above the return address. */
#  define PYMEMTRACE_DETAIL_ARGS_pyalloc "8@%rdi 8@%rsi -4@%edx 8@%rcx 8@%r8 -4@%r9d 8@8(%rsp)"
#  define PYMEMTRACE_DETAIL_ARGS_pyrealloc "8@%rdi 8@%rsi 8@%rdx 8@%rcx 8@%r8 -4@%r9d 8@8(%rsp)"
#  define PYMEMTRACE_DETAIL_ARGS_pyfree "8@%rdi -4@%esi 8@%rdx 8@%rcx -4@%r8d 8@%r9"
#  define PYMEMTRACE_DETAIL_ARGS_pybatch "8@%rdi 8@%rsi"
#elif defined(__aarch64__)
/* AAPCS64: arguments in x0..x7. A 4-byte argument is named by its x register, as <sys/sdt.h>
 * itself writes an int here: bcc's and bpftrace's aarch64 parsers accept x0..x30 and sp, not w
 * registers, and the size before the @ says to read the low 4 bytes. The nop is 4 bytes, as every
 * aarch64 instruction; uprobes replace it with a BRK. */
#  define PYMEMTRACE_DETAIL_NOP "nop\n"
#  define PYMEMTRACE_DETAIL_ARGS_alloc "8@x0 8@x1 -4@x2"
#  define PYMEMTRACE_DETAIL_ARGS_realloc "8@x0 8@x1 8@x2 -4@x3"
#  define PYMEMTRACE_DETAIL_ARGS_free "8@x0 -4@x1"
#  define PYMEMTRACE_DETAIL_ARGS_pyalloc "8@x0 8@x1 -4@x2 8@x3 8@x4 -4@x5 8@x6"
#  define PYMEMTRACE_DETAIL_ARGS_pyrealloc "8@x0 8@x1 8@x2 8@x3 8@x4 -4@x5 8@x6"
#  define PYMEMTRACE_DETAIL_ARGS_pyfree "8@x0 -4@x1 8@x2 8@x3 -4@x4 8@x5"
#  define PYMEMTRACE_DETAIL_ARGS_pybatch "8@x0 8@x1"
#else
#  error "pymemtrace/probes.h: PYMEMTRACE_HAVE_PROBE_SITES is set for a target without sites"
#endif
/* The requests carry nothing: a tracer attaches to them only to set their semaphores. */
#define PYMEMTRACE_DETAIL_ARGS_pystack4 ""
#define PYMEMTRACE_DETAIL_ARGS_pystack16 ""
#define PYMEMTRACE_DETAIL_ARGS_pynative ""

/* The argument string of a note, as sys/sdt.h's pack_args(args) step would write it. */
#define PYMEMTRACE_DETAIL_ASCII(text) ".ascii \"" text "\"\n"

/* `.ifndef` keeps a second copy out when LTO joins translation units into one assembly file. */
#define PYMEMTRACE_DETAIL_SITE(name)                                                         \
    ".ifndef pymemtrace_probe_" #name "\n"                                                   \
    ".pushsection .text.pymemtrace_probe_" #name ",\"axG\",@progbits,pymemtrace_probe_" #name \
    ",comdat\n"                                                                              \
    ".weak pymemtrace_probe_" #name "\n"                                                     \
    ".hidden pymemtrace_probe_" #name "\n"                                                   \
    ".type pymemtrace_probe_" #name ",@function\n"                                           \
    "pymemtrace_probe_" #name ":\n"                                                          \
    _SDT_ASM_BODY(pymemtrace, name, PYMEMTRACE_DETAIL_ASCII, (PYMEMTRACE_DETAIL_ARGS_##name), \
                  /* no extra */)                                                            \
    PYMEMTRACE_DETAIL_NOP                                                                    \
    "ret\n"                                                                                  \
    ".size pymemtrace_probe_" #name ", .-pymemtrace_probe_" #name "\n"                       \
    ".popsection\n"                                                                          \
    _SDT_ASM_BASE                                                                            \
    ".endif\n"

#define PYMEMTRACE_DETAIL_SEMAPHORE(name, offset)                                            \
    ".weak pymemtrace_" #name "_semaphore\n"                                                 \
    ".hidden pymemtrace_" #name "_semaphore\n"                                               \
    ".set pymemtrace_" #name "_semaphore, pymemtrace_semaphores + " #offset "\n"

__asm__(
    ".ifndef pymemtrace_semaphores\n"
    ".pushsection .probes,\"awG\",@progbits,pymemtrace_semaphores,comdat\n"
    ".weak pymemtrace_semaphores\n"
    ".hidden pymemtrace_semaphores\n"
    ".weak pymemtrace_semaphore_pairs\n"
    ".hidden pymemtrace_semaphore_pairs\n"
    ".type pymemtrace_semaphores,@object\n"
    ".balign 8\n"
    "pymemtrace_semaphores:\n"
    "pymemtrace_semaphore_pairs:\n"
    ".zero 20\n"
    ".size pymemtrace_semaphores, 20\n"
    PYMEMTRACE_DETAIL_SEMAPHORE(alloc, 0)
    PYMEMTRACE_DETAIL_SEMAPHORE(pyalloc, 2)
    PYMEMTRACE_DETAIL_SEMAPHORE(realloc, 4)
    PYMEMTRACE_DETAIL_SEMAPHORE(pyrealloc, 6)
    PYMEMTRACE_DETAIL_SEMAPHORE(free, 8)
    PYMEMTRACE_DETAIL_SEMAPHORE(pyfree, 10)
    PYMEMTRACE_DETAIL_SEMAPHORE(pystack4, 12)
    PYMEMTRACE_DETAIL_SEMAPHORE(pystack16, 14)
    PYMEMTRACE_DETAIL_SEMAPHORE(pynative, 16)
    PYMEMTRACE_DETAIL_SEMAPHORE(pybatch, 18)
    ".popsection\n"
    ".endif\n");
/* One statement a site: ISO C bounds a string literal's length. */
__asm__(PYMEMTRACE_DETAIL_SITE(alloc));
__asm__(PYMEMTRACE_DETAIL_SITE(realloc));
__asm__(PYMEMTRACE_DETAIL_SITE(free));
__asm__(PYMEMTRACE_DETAIL_SITE(pyalloc));
__asm__(PYMEMTRACE_DETAIL_SITE(pyrealloc));
__asm__(PYMEMTRACE_DETAIL_SITE(pyfree));
__asm__(PYMEMTRACE_DETAIL_SITE(pystack4));
__asm__(PYMEMTRACE_DETAIL_SITE(pystack16));
__asm__(PYMEMTRACE_DETAIL_SITE(pynative));
__asm__(PYMEMTRACE_DETAIL_SITE(pybatch));

#undef PYMEMTRACE_DETAIL_SEMAPHORE
#undef PYMEMTRACE_DETAIL_SITE
#undef PYMEMTRACE_DETAIL_ASCII
#undef PYMEMTRACE_DETAIL_ARGS_alloc
#undef PYMEMTRACE_DETAIL_ARGS_realloc
#undef PYMEMTRACE_DETAIL_ARGS_free
#undef PYMEMTRACE_DETAIL_ARGS_pyalloc
#undef PYMEMTRACE_DETAIL_ARGS_pyrealloc
#undef PYMEMTRACE_DETAIL_ARGS_pyfree
#undef PYMEMTRACE_DETAIL_ARGS_pystack4
#undef PYMEMTRACE_DETAIL_ARGS_pystack16
#undef PYMEMTRACE_DETAIL_ARGS_pynative
#undef PYMEMTRACE_DETAIL_ARGS_pybatch
#undef PYMEMTRACE_DETAIL_NOP
#pragma pop_macro("_SDT_SEMAPHORE")
#pragma pop_macro("_SDT_NOP")

/* Nonzero while a tracer is attached to `probe` in this shared object. */
PYMEMTRACE_INLINE int pymemtrace_probe_enabled(enum pymemtrace_probe probe)
{
    return pymemtrace_semaphores[probe] != 0;
}

/* Nonzero while a tracer is attached to the plain probe `probe` or to its py twin (or, for
 * PYMEMTRACE_PROBE_PYSTACK4, to either request): one load. */
PYMEMTRACE_INLINE int pymemtrace_detail_pair_enabled(enum pymemtrace_probe probe)
{
    return pymemtrace_semaphore_pairs[probe / 2] != 0;
}

/* The wrappers' test, `goto pymemtrace_traced` while a tracer is attached to a pair (OFFSET: the
 * pair's byte offset, 4 * (probe / 2), as a literal). On x86-64 it is one instruction, `cmpl $0,
 * pair(%rip)`, and its jump: gcc reads a volatile through a register (mov, test, jne) and keeps
 * the pairs' address in a saved register across calls; the symbol in the instruction costs
 * neither. On aarch64, which has no compare with memory, one load and cbnz. */
#if defined(__x86_64__)
#  define PYMEMTRACE_DETAIL_GOTO_IF_TRACED(offset, probe)                                          \
      __asm__ goto("cmpl $0, pymemtrace_semaphore_pairs+" #offset "(%%rip)\n\t"                     \
                   "jne %l[pymemtrace_traced]"                                                     \
                   : /* asm goto has no outputs */                                                 \
                   :                                                                               \
                   : "cc"                                                                          \
                   : pymemtrace_traced)
#else
#  define PYMEMTRACE_DETAIL_GOTO_IF_TRACED(offset, probe)                                          \
      if (PYMEMTRACE_UNLIKELY(pymemtrace_detail_pair_enabled(probe)))                              \
          goto pymemtrace_traced
#endif

#else /* !PYMEMTRACE_HAVE_USDT: no probes; everything folds away. */

PYMEMTRACE_INLINE int pymemtrace_probe_enabled(enum pymemtrace_probe probe)
{
    (void)probe;
    return 0;
}

PYMEMTRACE_INLINE int pymemtrace_detail_pair_enabled(enum pymemtrace_probe probe)
{
    (void)probe;
    return 0;
}

#endif /* PYMEMTRACE_HAVE_USDT */

#endif /* PYMEMTRACE_PROBES_H */
