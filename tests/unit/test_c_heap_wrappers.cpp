// SPDX-License-Identifier: MIT
// pymemtrace_malloc/calloc/realloc/free and the note_* API behave as libc does (no tracer here).
#include <pymemtrace/pymemtrace.h>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace {
// Sizes no allocator can serve, hidden from gcc's compile-time -Walloc-size-larger-than.
volatile std::size_t huge = SIZE_MAX;
} // namespace

TEST_CASE("pymemtrace_malloc returns usable memory like malloc")
{
    SUBCASE("a block of the size asked for")
    {
        auto *p = static_cast<unsigned char *>(pymemtrace_malloc(1477));
        REQUIRE(p != nullptr);
        std::memset(p, 0xab, 1477);
        CHECK(p[1476] == 0xab);
        pymemtrace_free(p);
    }
    SUBCASE("size 0 gives what malloc(0) gives: a unique pointer that free accepts")
    {
        void *p = pymemtrace_malloc(0);
        pymemtrace_free(p);
    }
    SUBCASE("an impossible size gives NULL and ENOMEM")
    {
        errno = 0;
        CHECK(pymemtrace_malloc(huge) == nullptr);
        CHECK(errno == ENOMEM);
    }
}

TEST_CASE("pymemtrace_calloc zeroes and detects overflow like calloc")
{
    SUBCASE("memory is zeroed")
    {
        auto *p = static_cast<unsigned char *>(pymemtrace_calloc(3, 40));
        REQUIRE(p != nullptr);
        for (int i = 0; i < 120; ++i)
            CHECK(p[i] == 0);
        pymemtrace_free(p);
    }
    SUBCASE("count * size overflowing gives NULL, not a short block")
    {
        CHECK(pymemtrace_calloc(huge / 2, 4) == nullptr);
        CHECK(pymemtrace_calloc(huge, huge) == nullptr);
    }
}

TEST_CASE("pymemtrace_realloc follows realloc in every case")
{
    SUBCASE("from NULL it allocates")
    {
        void *p = pymemtrace_realloc(nullptr, 50);
        REQUIRE(p != nullptr);
        pymemtrace_free(p);
    }
    SUBCASE("growing keeps the contents")
    {
        auto *p = static_cast<char *>(pymemtrace_malloc(8));
        REQUIRE(p != nullptr);
        std::memcpy(p, "pymemtr", 8);
        p = static_cast<char *>(pymemtrace_realloc(p, 100000));
        REQUIRE(p != nullptr);
        CHECK(std::strcmp(p, "pymemtr") == 0);
        pymemtrace_free(p);
    }
    SUBCASE("failure returns NULL and leaves the block alive")
    {
        auto *p = static_cast<char *>(pymemtrace_malloc(16));
        REQUIRE(p != nullptr);
        p[0] = 'x';
        CHECK(pymemtrace_realloc(p, huge / 2) == nullptr);
        CHECK(p[0] == 'x');
        pymemtrace_free(p);
    }
    SUBCASE("size 0 releases the block (glibc) and returns NULL")
    {
        void *p = pymemtrace_malloc(16);
        CHECK(pymemtrace_realloc(p, 0) == nullptr);
    }
}

TEST_CASE("pymemtrace_free accepts NULL")
{
    pymemtrace_free(nullptr);
}

TEST_CASE("the note_* API reports users' own allocators without touching them")
{
    static char pool[64];
    pymemtrace_note_alloc(pool, sizeof pool, PYMEMTRACE_DOMAIN_USER);
    pymemtrace_note_realloc(pool, pool + 8, 32, PYMEMTRACE_DOMAIN_USER + 1);
    pymemtrace_note_free(pool + 8, PYMEMTRACE_DOMAIN_USER + 1);
    pymemtrace_note_alloc(nullptr, 10, PYMEMTRACE_DOMAIN_USER);
    CHECK(pool[0] == 0);
}

TEST_CASE("pymemtrace_probe_enabled is false with no tracer attached")
{
    for (int probe = PYMEMTRACE_PROBE_ALLOC; probe <= PYMEMTRACE_PROBE_PYSTACK16; ++probe)
        CHECK(pymemtrace_probe_enabled(static_cast<pymemtrace_probe>(probe)) == 0);
}
