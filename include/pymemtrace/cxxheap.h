// SPDX-License-Identifier: MIT
// pymemtrace/cxxheap.h: the C++ heap of an unmodified extension, for the linker's --wrap.
// redirect.h includes it in C++ translation units; the link wraps every replaceable global
// operator new and delete the extension's own code calls, all 20 defined below (the list is
// pymemtrace_redirect_cxx_wrapped in meson.build, which the pkg-config and meson flags carry):
//
//   c++ ... -include pymemtrace/redirect.h ... -Wl,--wrap=_Znwm,--wrap=_ZdlPv,...
//
// Each __wrap_ function here calls the real operator (libstdc++'s, or the program's replacement)
// through its __real_ name and notes the block in domain 4 (C++ heap). They are weak and hidden,
// as redirect.h's C heap wrappers: one per shared object, whichever C++ translation units define
// them. C translation units define none and reference none, so a C-only link with the same flags
// wraps nothing and needs no __real_ symbol; a C extension linking a C++ archive not compiled with
// the -include fails with `undefined reference to __wrap__Znwm` (as for malloc).
//
// The names are the Itanium C++ ABI's with size_t as `m` (unsigned long): x86-64 and aarch64
// Linux. Alignment is passed as a size_t (std::align_val_t is an enum of size_t, passed the same
// way), so these compile as C++11 too.
//
// Only the extension's own references are wrapped: code compiled into libstdc++.so (std::string's
// out-of-line members, iostreams, locale) keeps libstdc++'s operators. A block made by one side
// and released by the other is seen at one end only; docs/extensions.md says how reports treat it.
#ifndef PYMEMTRACE_CXXHEAP_H
#define PYMEMTRACE_CXXHEAP_H

#include <cstddef> // std::size_t
#include <new>     // std::nothrow_t

#include "pymemtrace.h"

#if defined(__ELF__) && defined(__GNUC__) && defined(__LP64__)

#define PYMEMTRACE_DETAIL_CXX_WRAPPER extern "C" __attribute__((weak, used)) PYMEMTRACE_HIDDEN

// pymemtrace_note_alloc/free's test, then, out of line, their fire helper with this wrapper's
// caller handed down as the native caller (--native): the code that said `new` or `delete`.
#if PYMEMTRACE_HAVE_USDT
PYMEMTRACE_OUTLINE void pymemtrace_detail_cxx_fire_alloc(uintptr_t ptr, std::size_t size,
                                                         uintptr_t caller)
{
    PYMEMTRACE_DETAIL_HANDING(caller,
                              pymemtrace_detail_fire_alloc(ptr, size, PYMEMTRACE_DOMAIN_CXX));
}
PYMEMTRACE_OUTLINE void pymemtrace_detail_cxx_fire_free(uintptr_t ptr, uintptr_t caller)
{
    PYMEMTRACE_DETAIL_HANDING(caller, pymemtrace_detail_fire_free(ptr, PYMEMTRACE_DOMAIN_CXX));
}
#  define PYMEMTRACE_DETAIL_CXX_NOTE(probe, fire, ...)                                             \
      do {                                                                                         \
          if (PYMEMTRACE_UNLIKELY(pymemtrace_detail_pair_enabled(probe)))                          \
              fire(__VA_ARGS__, (uintptr_t)__builtin_return_address(0));                          \
      } while (0)
#else
#  define PYMEMTRACE_DETAIL_CXX_NOTE(probe, fire, ...) ((void)0)
#endif

// new: the block is noted once the real operator returned it (it throws, or the nothrow forms
// return NULL, which is never noted).
#define PYMEMTRACE_DETAIL_CXX_NEW(symbol, parameters, arguments)                                   \
    extern "C" void *__real_##symbol parameters;                                                   \
    PYMEMTRACE_DETAIL_CXX_WRAPPER void *__wrap_##symbol parameters                                 \
    {                                                                                              \
        void *ptr = __real_##symbol arguments;                                                     \
        PYMEMTRACE_DETAIL_CXX_NOTE(PYMEMTRACE_PROBE_ALLOC, pymemtrace_detail_cxx_fire_alloc,       \
                                   (uintptr_t)ptr, size);                                          \
        return ptr;                                                                                \
    }

// delete: noted before the real operator releases it; delete of NULL does nothing, so it is not
// reported.
#define PYMEMTRACE_DETAIL_CXX_DELETE(symbol, parameters, arguments)                                \
    extern "C" void __real_##symbol parameters noexcept;                                           \
    PYMEMTRACE_DETAIL_CXX_WRAPPER void __wrap_##symbol parameters noexcept                         \
    {                                                                                              \
        if (ptr != nullptr)                                                                        \
            PYMEMTRACE_DETAIL_CXX_NOTE(PYMEMTRACE_PROBE_FREE, pymemtrace_detail_cxx_fire_free,     \
                                       (uintptr_t)ptr);                                            \
        __real_##symbol arguments;                                                                 \
    }

PYMEMTRACE_DETAIL_CXX_NEW(_Znwm, (std::size_t size), (size))
PYMEMTRACE_DETAIL_CXX_NEW(_Znam, (std::size_t size), (size))
PYMEMTRACE_DETAIL_CXX_NEW(_ZnwmRKSt9nothrow_t, (std::size_t size, const std::nothrow_t &tag),
                          (size, tag))
PYMEMTRACE_DETAIL_CXX_NEW(_ZnamRKSt9nothrow_t, (std::size_t size, const std::nothrow_t &tag),
                          (size, tag))
PYMEMTRACE_DETAIL_CXX_NEW(_ZnwmSt11align_val_t, (std::size_t size, std::size_t align),
                          (size, align))
PYMEMTRACE_DETAIL_CXX_NEW(_ZnamSt11align_val_t, (std::size_t size, std::size_t align),
                          (size, align))
PYMEMTRACE_DETAIL_CXX_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t,
                          (std::size_t size, std::size_t align, const std::nothrow_t &tag),
                          (size, align, tag))
PYMEMTRACE_DETAIL_CXX_NEW(_ZnamSt11align_val_tRKSt9nothrow_t,
                          (std::size_t size, std::size_t align, const std::nothrow_t &tag),
                          (size, align, tag))

PYMEMTRACE_DETAIL_CXX_DELETE(_ZdlPv, (void *ptr), (ptr))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdaPv, (void *ptr), (ptr))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdlPvm, (void *ptr, std::size_t size), (ptr, size))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdaPvm, (void *ptr, std::size_t size), (ptr, size))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdlPvRKSt9nothrow_t, (void *ptr, const std::nothrow_t &tag),
                             (ptr, tag))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdaPvRKSt9nothrow_t, (void *ptr, const std::nothrow_t &tag),
                             (ptr, tag))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdlPvSt11align_val_t, (void *ptr, std::size_t align), (ptr, align))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdaPvSt11align_val_t, (void *ptr, std::size_t align), (ptr, align))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdlPvmSt11align_val_t,
                             (void *ptr, std::size_t size, std::size_t align), (ptr, size, align))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdaPvmSt11align_val_t,
                             (void *ptr, std::size_t size, std::size_t align), (ptr, size, align))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t,
                             (void *ptr, std::size_t align, const std::nothrow_t &tag),
                             (ptr, align, tag))
PYMEMTRACE_DETAIL_CXX_DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t,
                             (void *ptr, std::size_t align, const std::nothrow_t &tag),
                             (ptr, align, tag))

#undef PYMEMTRACE_DETAIL_CXX_NEW
#undef PYMEMTRACE_DETAIL_CXX_DELETE
#undef PYMEMTRACE_DETAIL_CXX_WRAPPER
#undef PYMEMTRACE_DETAIL_CXX_NOTE
#endif // __ELF__ && __GNUC__ && __LP64__

#endif // PYMEMTRACE_CXXHEAP_H
