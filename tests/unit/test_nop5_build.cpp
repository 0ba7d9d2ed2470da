// SPDX-License-Identifier: MIT
// Built with -DPYMEMTRACE_CONFIG_NOP5=1, the opt-in 5-byte probe sites (unsafe across fork() on
// kernels with the uprobe nop5 optimisation; docs/probes.md): each note points at a 5-byte nopl
// followed by the probe function's ret. The default build's 1-byte sites are checked in
// test_stapsdt_notes.cpp.
#include <pymemtrace/pymemtrace.h>

#include <doctest/doctest.h>
#include <link.h> // dl_iterate_phdr

#include <cstdint>
#include <vector>

#include "stapsdt_notes.hpp"

#if !PYMEMTRACE_CONFIG_NOP5
#  error "this test must be built with PYMEMTRACE_CONFIG_NOP5=1"
#endif

TEST_CASE("with PYMEMTRACE_CONFIG_NOP5=1 every probe site is a 5-byte nopl")
{
    std::uintptr_t base = 0;
    dl_iterate_phdr(
        [](dl_phdr_info *info, size_t, void *data) {
            *static_cast<std::uintptr_t *>(data) = static_cast<std::uintptr_t>(info->dlpi_addr);
            return 1; // the first object is the executable
        },
        &base);
    const auto probes = stapsdt::read("/proc/self/exe").probes_of("pymemtrace");
    CHECK(probes.size() == 10); // six probes, three requests, pybatch
    const std::vector<unsigned char> expected = {0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3}; // nopl; ret
    for (const auto &probe : probes) {
        CAPTURE(probe.name);
        const auto *site = reinterpret_cast<const unsigned char *>(base + probe.pc);
        CHECK(std::vector<unsigned char>(site, site + expected.size()) == expected);
    }
    void *block = pymemtrace_malloc(16);
    CHECK(block != nullptr);
    pymemtrace_free(block);
}
