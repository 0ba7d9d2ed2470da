// SPDX-License-Identifier: MIT
// nativeext's C++ part: operator new[] under the redirect flags (cxxheap.h's __wrap__Znam).
#include <cstddef>
#include <cstring> // std::memset

extern "C" void *nativeext_cxx_block(std::size_t size);

extern "C" __attribute__((noinline)) void *nativeext_cxx_block(std::size_t size)
{
    char *block = new char[size]; // operator new
    std::memset(block, 3, size);  // used: the call is not in tail position
    return block;
}
