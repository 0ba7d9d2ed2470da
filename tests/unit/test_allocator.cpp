// SPDX-License-Identifier: MIT
// pymemtrace::allocator meets the standard Allocator requirements with real containers.
#include <pymemtrace/pymemtrace.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {
template <class T>
using traced = pymemtrace::allocator<T>;
using traced_string = std::basic_string<char, std::char_traits<char>, traced<char>>;

struct alignas(64) CacheLine {
    unsigned char bytes[64];
};
} // namespace

TEST_CASE("pymemtrace::allocator works with standard containers")
{
    SUBCASE("std::vector grows and keeps its elements")
    {
        std::vector<int, traced<int>> v;
        for (int i = 0; i < 1000; ++i)
            v.push_back(i);
        CHECK(v.size() == 1000);
        CHECK(v[999] == 999);
    }
    SUBCASE("std::map rebinds the allocator to its node type")
    {
        std::map<int, std::string, std::less<int>, traced<std::pair<const int, std::string>>> m;
        m[3] = "three";
        m[1] = "one";
        CHECK(m.begin()->second == "one");
        CHECK(m.size() == 2);
    }
    SUBCASE("std::list and std::unordered_map")
    {
        std::list<double, traced<double>> l(5, 2.5);
        CHECK(l.back() == 2.5);
        std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, traced<std::pair<const int, int>>> u;
        for (int i = 0; i < 100; ++i)
            u[i] = i * i;
        CHECK(u.at(9) == 81);
    }
    SUBCASE("std::basic_string beyond the small-string buffer")
    {
        traced_string s(100, 'x');
        s += "tail";
        CHECK(s.size() == 104);
    }
    SUBCASE("std::allocate_shared")
    {
        auto p = std::allocate_shared<std::string>(traced<std::string>(), "shared");
        CHECK(*p == "shared");
        std::weak_ptr<std::string> w = p;
        p.reset();
        CHECK(w.expired());
    }
    SUBCASE("over-aligned types get their alignment")
    {
        std::vector<CacheLine, traced<CacheLine>> v(7);
        CHECK(reinterpret_cast<std::uintptr_t>(v.data()) % 64 == 0);
    }
}

TEST_CASE("pymemtrace::allocator is stateless and equal across types")
{
    traced<int> a;
    traced<double> b(a);
    CHECK(a == traced<int>(b));
    CHECK_FALSE(a != b);
    static_assert(std::allocator_traits<traced<int>>::is_always_equal::value, "stateless");
    static_assert(std::is_same<std::allocator_traits<traced<int>>::rebind_alloc<long>, traced<long>>::value,
                  "rebinds");
}

TEST_CASE("pymemtrace::allocator throws on impossible sizes")
{
    traced<std::uint64_t> a;
    CHECK_THROWS_AS(a.allocate(SIZE_MAX / 4), std::bad_array_new_length);
    CHECK_THROWS_AS(a.allocate(SIZE_MAX / 16), std::bad_alloc);
}
