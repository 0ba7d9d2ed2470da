// SPDX-License-Identifier: MIT
// pymemtrace/pymemtrace.hpp: the C++ face. pymemtrace::allocator<T> is a standard Allocator
// (std::vector, std::map, std::allocate_shared...) whose blocks fire alloc/free with domain 4.
#ifndef PYMEMTRACE_PYMEMTRACE_HPP
#define PYMEMTRACE_PYMEMTRACE_HPP

#include <cstddef>     // std::size_t
#include <limits>      // std::numeric_limits
#include <new>         // ::operator new, std::align_val_t, std::bad_array_new_length
#include <type_traits> // std::true_type

#include "pymemtrace.h"

namespace pymemtrace {

enum class domain : int {
    c_heap = PYMEMTRACE_DOMAIN_C_HEAP,
    pymem_raw = PYMEMTRACE_DOMAIN_PYMEM_RAW,
    pymem = PYMEMTRACE_DOMAIN_PYMEM,
    pyobject = PYMEMTRACE_DOMAIN_PYOBJECT,
    cxx = PYMEMTRACE_DOMAIN_CXX,
    user = PYMEMTRACE_DOMAIN_USER,
};

// Stateless: every pymemtrace::allocator can free what any other allocated.
template <class T>
class allocator {
public:
    using value_type = T;
    using is_always_equal = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;

    allocator() noexcept = default;
    template <class U>
    allocator(const allocator<U> &) noexcept {}

    T *allocate(std::size_t count)
    {
        if (count > std::numeric_limits<std::size_t>::max() / sizeof(T))
            throw std::bad_array_new_length();
        const std::size_t bytes = count * sizeof(T);
        void *ptr = over_aligned ? ::operator new(bytes, std::align_val_t(alignof(T)))
                                 : ::operator new(bytes);
        pymemtrace_note_alloc(ptr, bytes, PYMEMTRACE_DOMAIN_CXX);
        return static_cast<T *>(ptr);
    }

    // Unsized delete: clang enables sized deallocation only with -fsized-deallocation.
    void deallocate(T *ptr, std::size_t) noexcept
    {
        pymemtrace_note_free(ptr, PYMEMTRACE_DOMAIN_CXX);
        if constexpr (over_aligned)
            ::operator delete(ptr, std::align_val_t(alignof(T)));
        else
            ::operator delete(ptr);
    }

private:
    static constexpr bool over_aligned = alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__;
};

template <class T, class U>
constexpr bool operator==(const allocator<T> &, const allocator<U> &) noexcept
{
    return true;
}

template <class T, class U>
constexpr bool operator!=(const allocator<T> &, const allocator<U> &) noexcept
{
    return false;
}

// Is a tracer attached to `probe` in this shared object?
inline bool probe_enabled(pymemtrace_probe probe) noexcept
{
    return pymemtrace_probe_enabled(probe) != 0;
}

} // namespace pymemtrace

#endif // PYMEMTRACE_PYMEMTRACE_HPP
