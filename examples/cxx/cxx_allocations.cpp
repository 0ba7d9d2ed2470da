// SPDX-License-Identifier: MIT
// The C++ side of pymemtrace: standard containers on pymemtrace::allocator (domain 4) and the C
// heap wrappers (domain 0), each allocation printed as it happens, so that a tracer's output can
// be set beside this program's.
//
//   cxx_allocations [--count N] [--wait]
//
// --count N  rounds of allocations (default 1)
// --wait     print the PID and wait for Enter first, so a tracer can attach with -p
//
// Traced, for example, with:
//   bpftrace -e 'usdt:./cxx_allocations:pymemtrace:alloc { printf("alloc 0x%lx %lu domain %d\n",
//                 arg0, arg1, arg2); }' -c './cxx_allocations'
#include <pymemtrace/pymemtrace.hpp> // pymemtrace::allocator, pymemtrace_malloc/realloc/free

#include <cstdint>  // std::uintptr_t, std::uintmax_t
#include <cstdio>   // std::printf, std::fprintf, std::getchar
#include <cstdlib>  // std::strtol, EXIT_SUCCESS, EXIT_FAILURE
#include <cstring>  // std::strcmp
#include <functional> // std::less
#include <map>      // std::map
#include <string>   // std::basic_string, std::char_traits
#include <unistd.h> // getpid
#include <utility>  // std::pair
#include <vector>   // std::vector

namespace {

template <class T>
using traced_vector = std::vector<T, pymemtrace::allocator<T>>;
using traced_string = std::basic_string<char, std::char_traits<char>, pymemtrace::allocator<char>>;
template <class K, class V>
using traced_map = std::map<K, V, std::less<K>, pymemtrace::allocator<std::pair<const K, V>>>;

void one_round(int round)
{
    std::printf("round %d\n", round);

    traced_vector<double> values;
    for (int i = 0; i < 100; ++i) {
        const double *before = values.data();
        values.push_back(i * 0.5);
        if (values.data() != before)
            std::printf("  vector<double> capacity %zu (%zu bytes) at %p\n", values.capacity(),
                        values.capacity() * sizeof(double), static_cast<void *>(values.data()));
    }

    // Longer than any small-string buffer, so the characters live on the heap.
    traced_string text("pymemtrace sees this string's characters being allocated");
    std::printf("  string of %zu chars (capacity %zu) at %p\n", text.size(), text.capacity(),
                static_cast<const void *>(text.data()));

    traced_map<int, traced_string> names;
    for (int key = 0; key < 3; ++key) {
        auto inserted = names.emplace(key, traced_string(40, static_cast<char>('a' + key)));
        std::printf("  map node for key %d, its value's chars at %p\n", key,
                    static_cast<const void *>(inserted.first->second.data()));
    }

    void *block = pymemtrace_malloc(1000);
    std::printf("  pymemtrace_malloc(1000) -> %p\n", block);
    const std::uintptr_t old_address = reinterpret_cast<std::uintptr_t>(block); // printed after
    void *grown = pymemtrace_realloc(block, 100000);
    if (grown == nullptr) {
        pymemtrace_free(block);
        std::fprintf(stderr, "realloc failed\n");
        return;
    }
    std::printf("  pymemtrace_realloc(0x%jx, 100000) -> %p\n", static_cast<std::uintmax_t>(old_address),
                grown);
    std::printf("  pymemtrace_free(%p)\n", grown);
    pymemtrace_free(grown);
    std::printf("  containers freed as the round ends\n");
}

int usage(const char *program)
{
    std::fprintf(stderr, "usage: %s [--count N] [--wait]\n", program);
    return EXIT_FAILURE;
}

} // namespace

int main(int argc, char **argv)
{
    long count = 1;
    bool wait = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            char *end = nullptr;
            count = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || count < 0)
                return usage(argv[0]);
        } else {
            return usage(argv[0]);
        }
    }
    std::printf("probes %s\n", PYMEMTRACE_HAVE_USDT ? "compiled in" : "absent on this platform");
    if (wait) {
        std::printf("Waiting to start tracing PID: %d (<cr> to continue):", static_cast<int>(getpid()));
        std::fflush(stdout);
        for (int c = std::getchar(); c != '\n' && c != EOF; c = std::getchar()) {
        }
    }
    for (long round = 0; round < count; ++round)
        one_round(static_cast<int>(round));
    return EXIT_SUCCESS;
}
