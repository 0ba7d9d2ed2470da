// SPDX-License-Identifier: MIT
// The probe notes a tracer reads, checked in this test binary and in two libraries built from a
// C and a C++ file that call the wrappers from fifty places each. No root, no tracer.
#include <pymemtrace/pymemtrace.h>

#include <doctest/doctest.h>
#include <link.h> // dl_iterate_phdr

#include <map>
#include <set>
#include <string>
#include <vector>

#define FIFTY_NAME fifty_a
#include "fifty_call_sites.h"
#include "stapsdt_notes.hpp"
FIFTY_FUNCTIONS(fifty_b)

namespace {

// The probe table of probes.h: each argument's size, negative when signed.
const std::map<std::string, std::vector<int>> probe_table = {
    {"alloc", {8, 8, -4}},
    {"realloc", {8, 8, 8, -4}},
    {"free", {8, -4}},
    {"pyalloc", {8, 8, -4, 8, 8, -4, 8}},
    {"pyrealloc", {8, 8, 8, 8, 8, -4, 8}},
    {"pyfree", {8, -4, 8, 8, -4, 8}},
    {"pystack4", {}},
    {"pystack16", {}},
    {"pynative", {}},
    {"pybatch", {8, 8}},
};

struct LoadedObject {
    std::string path;
    std::uintptr_t base = 0;
};

// Where the dynamic loader put the object whose path ends with `suffix` ("" = the executable).
LoadedObject loaded_object(const std::string &suffix)
{
    struct Search {
        std::string suffix;
        LoadedObject found;
    } search{suffix, {}};
    dl_iterate_phdr(
        [](dl_phdr_info *info, size_t, void *data) {
            auto *s = static_cast<Search *>(data);
            std::string name = info->dlpi_name ? info->dlpi_name : "";
            bool is_exe = name.empty() && s->suffix.empty();
            bool matches = !s->suffix.empty() && name.size() >= s->suffix.size()
                           && name.compare(name.size() - s->suffix.size(), s->suffix.size(), s->suffix) == 0;
            if (!is_exe && !matches)
                return 0;
            s->found = {is_exe ? "/proc/self/exe" : name, static_cast<std::uintptr_t>(info->dlpi_addr)};
            return 1;
        },
        &search);
    return search.found;
}

int argument_size(const std::string &argument)
{
    return std::stoi(argument.substr(0, argument.find('@')));
}

// The checks every object with the headers must pass; returns its probes by name.
std::map<std::string, stapsdt::Probe> check_probes(const stapsdt::Elf &elf)
{
    std::map<std::string, stapsdt::Probe> by_name;
    const auto probes = elf.probes_of("pymemtrace");
    for (const auto &probe : probes) {
        CAPTURE(probe.name);
        CHECK_MESSAGE(by_name.count(probe.name) == 0, "one site per probe, however many callers");
        by_name[probe.name] = probe;
    }
    REQUIRE(by_name.size() == probe_table.size());
    const stapsdt::Section *semaphores = elf.section(".probes");
    REQUIRE(semaphores != nullptr);
    std::set<std::uint64_t> distinct;
    for (const auto &entry : probe_table) {
        const std::string &name = entry.first;
        const std::vector<int> &sizes = entry.second;
        CAPTURE(name);
        REQUIRE(by_name.count(name) == 1);
        const auto &probe = by_name[name];
        REQUIRE(probe.arguments.size() == sizes.size());
        for (std::size_t i = 0; i < sizes.size(); ++i)
            CHECK(argument_size(probe.arguments[i]) == sizes[i]);
        CHECK(probe.semaphore != 0);
        CHECK(semaphores->contains(probe.semaphore));
        distinct.insert(probe.semaphore);
    }
    CHECK(distinct.size() == probe_table.size());
    // Pairs share one aligned 32-bit word: alloc|pyalloc, realloc|pyrealloc, free|pyfree, and
    // the requests pystack4|pystack16 and pynative after them, outside the words the wrappers read.
    for (const char *plain : {"alloc", "realloc", "free"}) {
        const auto &p = by_name[plain];
        const auto &py = by_name[std::string("py") + plain];
        CHECK(p.semaphore % 4 == 0);
        CHECK(py.semaphore == p.semaphore + 2);
    }
    CHECK(by_name["pystack4"].semaphore == by_name["alloc"].semaphore + 12);
    CHECK(by_name["pystack16"].semaphore == by_name["pystack4"].semaphore + 2);
    CHECK(by_name["pynative"].semaphore == by_name["pystack4"].semaphore + 4);
    CHECK(by_name["pybatch"].semaphore == by_name["alloc"].semaphore + 18);
    return by_name;
}

// The bytes at each probe's site in the loaded object: the nop, then the probe function's `ret`.
void check_sites(const std::map<std::string, stapsdt::Probe> &probes, std::uintptr_t base,
                 const std::vector<unsigned char> &expected)
{
    for (const auto &entry : probes) {
        CAPTURE(entry.first);
        const auto *site = reinterpret_cast<const unsigned char *>(base + entry.second.pc);
        CHECK(std::vector<unsigned char>(site, site + expected.size()) == expected);
    }
}

// Per target: the default site (the nop, then the probe function's ret) and each probe's
// arguments, in the registers its calling convention passes them in.
#if defined(__x86_64__)
const std::vector<unsigned char> default_site = {0x90, 0xc3}; // nop; ret
const std::map<std::string, std::vector<std::string>> argument_registers = {
    {"alloc", {"8@%rdi", "8@%rsi", "-4@%edx"}},
    {"realloc", {"8@%rdi", "8@%rsi", "8@%rdx", "-4@%ecx"}},
    {"free", {"8@%rdi", "-4@%esi"}},
    // A seventh argument is on the stack, above the return address.
    {"pyalloc", {"8@%rdi", "8@%rsi", "-4@%edx", "8@%rcx", "8@%r8", "-4@%r9d", "8@8(%rsp)"}},
    {"pyrealloc", {"8@%rdi", "8@%rsi", "8@%rdx", "8@%rcx", "8@%r8", "-4@%r9d", "8@8(%rsp)"}},
    {"pyfree", {"8@%rdi", "-4@%esi", "8@%rdx", "8@%rcx", "-4@%r8d", "8@%r9"}},
    {"pystack4", {}},
    {"pystack16", {}},
    {"pynative", {}},
    {"pybatch", {"8@%rdi", "8@%rsi"}},
};
#elif defined(__aarch64__)
// nop (d503201f); ret (d65f03c0): aarch64 instructions are little-endian words.
const std::vector<unsigned char> default_site = {0x1f, 0x20, 0x03, 0xd5, 0xc0, 0x03, 0x5f, 0xd6};
// 4-byte arguments are named by their x register, as <sys/sdt.h> names them and as bcc's and
// bpftrace's aarch64 note parsers require (no w registers).
const std::map<std::string, std::vector<std::string>> argument_registers = {
    {"alloc", {"8@x0", "8@x1", "-4@x2"}},
    {"realloc", {"8@x0", "8@x1", "8@x2", "-4@x3"}},
    {"free", {"8@x0", "-4@x1"}},
    {"pyalloc", {"8@x0", "8@x1", "-4@x2", "8@x3", "8@x4", "-4@x5", "8@x6"}},
    {"pyrealloc", {"8@x0", "8@x1", "8@x2", "8@x3", "8@x4", "-4@x5", "8@x6"}},
    {"pyfree", {"8@x0", "-4@x1", "8@x2", "8@x3", "-4@x4", "8@x5"}},
    {"pystack4", {}},
    {"pystack16", {}},
    {"pynative", {}},
    {"pybatch", {"8@x0", "8@x1"}},
};
#else
#  error "no expected probe sites for this target"
#endif
} // namespace

TEST_CASE("probe sites are the plain nop by default (1 byte on x86-64): safe across fork() on every kernel")
{
    // A 5-byte site is opt-in (PYMEMTRACE_CONFIG_NOP5=1, x86-64): on kernels with the uprobe nop5
    // optimisation a child forked from a traced process dies on its first probe hit.
    CHECK(PYMEMTRACE_CONFIG_NOP5 == 0);
    const LoadedObject exe = loaded_object("");
    check_sites(check_probes(stapsdt::read(exe.path)), exe.base, default_site);
    for (const char *library : {"libfifty_a.so", "libfifty_b.so"}) {
        CAPTURE(library);
        const LoadedObject object = loaded_object(library);
        REQUIRE(!object.path.empty());
        check_sites(check_probes(stapsdt::read(object.path)), object.base, default_site);
    }
}

TEST_CASE("the test binary's notes list the ten probes, once each, with semaphores")
{
    const LoadedObject exe = loaded_object("");
    const auto probes = check_probes(stapsdt::read(exe.path));
    SUBCASE("the notes point at the semaphores the code reads")
    {
        for (int p = PYMEMTRACE_PROBE_ALLOC; p <= PYMEMTRACE_PROBE_PYBATCH; ++p) {
            static const char *names[] = {"alloc",    "pyalloc",   "realloc",  "pyrealloc",
                                          "free",     "pyfree",    "pystack4", "pystack16",
                                          "pynative", "pybatch"};
            CAPTURE(names[p]);
            CHECK(probes.at(names[p]).semaphore + exe.base
                  == reinterpret_cast<std::uintptr_t>(&pymemtrace_semaphores[p]));
        }
    }
    SUBCASE("argument registers are the ones the probe functions receive (System V, AAPCS64)")
    {
        for (const auto &entry : argument_registers) {
            CAPTURE(entry.first);
            CHECK(probes.at(entry.first).arguments == entry.second);
        }
    }
}

TEST_CASE("a library whose C and C++ files call the wrappers from fifty places has one site per probe")
{
    CHECK(fifty_a_c_calls() == 50);
    CHECK(fifty_a_cxx_calls() == 50);
    for (const char *library : {"libfifty_a.so", "libfifty_b.so"}) {
        CAPTURE(library);
        const LoadedObject object = loaded_object(library);
        REQUIRE(!object.path.empty());
        check_probes(stapsdt::read(object.path));
    }
}

TEST_CASE("two libraries in one process have their own semaphores")
{
    CHECK(fifty_b_c_calls() == 50);
    const std::uintptr_t a = fifty_a_semaphores();
    const std::uintptr_t b = fifty_b_semaphores();
    CHECK(a != b);
    CHECK(a != reinterpret_cast<std::uintptr_t>(pymemtrace_semaphores));
    const LoadedObject object = loaded_object("libfifty_a.so");
    const auto probes = check_probes(stapsdt::read(object.path));
    CHECK(probes.at("alloc").semaphore + object.base == a);
}
