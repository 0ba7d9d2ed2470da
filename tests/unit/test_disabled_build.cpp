// SPDX-License-Identifier: MIT
// Built with -DPYMEMTRACE_CONFIG_DISABLE=1: plain allocator calls, no probes, no semaphores.
#include <pymemtrace/pymemtrace.hpp>

#include <doctest/doctest.h>

#include <vector>

#include "c_translation_unit.h"
#include "stapsdt_notes.hpp"

#if PYMEMTRACE_HAVE_USDT || !PYMEMTRACE_CONFIG_DISABLE
#  error "this test must be built with PYMEMTRACE_CONFIG_DISABLE=1"
#endif

TEST_CASE("the disabled build keeps the wrappers' behaviour")
{
    CHECK(c_unit_roundtrip(100) == 1);
    std::vector<int, pymemtrace::allocator<int>> v(10, 7);
    CHECK(v[9] == 7);
    CHECK_FALSE(pymemtrace::probe_enabled(PYMEMTRACE_PROBE_ALLOC));
}

TEST_CASE("the disabled build emits no probe notes and no semaphores")
{
    const auto elf = stapsdt::read("/proc/self/exe");
    CHECK(elf.probes_of("pymemtrace").empty());
    CHECK(elf.section(".probes") == nullptr);
    CHECK(c_unit_semaphores() == 0);
}
