// SPDX-License-Identifier: MIT
// The headers in C99 and C++17 translation units linked into one program share one probe set.
#include <pymemtrace/pymemtrace.h>

#include <doctest/doctest.h>

#include <cstdint>

#include "c_translation_unit.h"

TEST_CASE("the wrappers compiled as C99 behave as libc")
{
    CHECK(c_unit_roundtrip(1) == 1);
    CHECK(c_unit_roundtrip(4096) == 1);
    CHECK(c_unit_any_probe_enabled() == 0);
}

TEST_CASE("C and C++ translation units of one program read the same semaphores")
{
#if PYMEMTRACE_HAVE_USDT
    CHECK(c_unit_semaphores() == reinterpret_cast<std::uintptr_t>(pymemtrace_semaphores));
#else
    CHECK(c_unit_semaphores() == 0);
#endif
}
