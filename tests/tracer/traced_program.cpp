// SPDX-License-Identifier: MIT
// A program for the tracer tests: it reports its semaphores, waits for the test to attach a
// tracer, makes a fixed sequence of allocations printing the event each should fire, then waits
// for the tracer to detach and checks that its semaphores are clear again.
//
// Protocol on stdin/stdout, one line each:
//   -> "semaphores A PA R PR F PF"   (before any tracer)
//   <- "go"                          (the test has attached its tracer)
//   -> "semaphores ..."              (as seen with the tracer attached)
//   -> "expect PROBE FIELDS..."      one per event the sequence must fire
//   -> "done"
//   <- "detached"
//   -> "semaphores ..."              (after the tracer is gone; waits up to 10 s for them to clear)
#include <pymemtrace/pymemtrace.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

void print_semaphores()
{
    std::printf("semaphores");
    for (int p = PYMEMTRACE_PROBE_ALLOC; p <= PYMEMTRACE_PROBE_PYFREE; ++p)
        std::printf(" %d", pymemtrace_probe_enabled(static_cast<pymemtrace_probe>(p)) ? 1 : 0);
    std::printf("\n");
    std::fflush(stdout);
}

bool any_semaphore()
{
    for (int p = PYMEMTRACE_PROBE_ALLOC; p <= PYMEMTRACE_PROBE_PYFREE; ++p)
        if (pymemtrace_probe_enabled(static_cast<pymemtrace_probe>(p)))
            return true;
    return false;
}

std::uintptr_t bits(const void *p)
{
    return reinterpret_cast<std::uintptr_t>(p);
}

// The py* probes of a program without Python carry "" and line 0.
void expect_alloc(const void *p, std::size_t size, int domain)
{
    std::printf("expect alloc %#lx %zu %d\n", bits(p), size, domain);
    std::printf("expect pyalloc %#lx %zu %d '' '' 0\n", bits(p), size, domain);
}

void expect_free(const void *p, int domain)
{
    std::printf("expect free %#lx %d\n", bits(p), domain);
    std::printf("expect pyfree %#lx %d '' '' 0\n", bits(p), domain);
}

void expect_realloc(std::uintptr_t old_p, const void *new_p, std::size_t size, int domain)
{
    std::printf("expect realloc %#lx %#lx %zu %d\n", old_p, bits(new_p), size, domain);
}

void run_sequence()
{
    const int heap = PYMEMTRACE_DOMAIN_C_HEAP;
    void *a = pymemtrace_malloc(100);
    expect_alloc(a, 100, heap);

    void *c = pymemtrace_calloc(3, 40);
    expect_alloc(c, 120, heap);

    std::uintptr_t old_a = bits(a);
    a = pymemtrace_realloc(a, 100000); // grows: moved or resized, a live block either way
    expect_realloc(old_a, a, 100000, heap);
    std::printf("expect pyrealloc %#lx %#lx 100000 '' '' 0\n", old_a, bits(a));

    void *r = pymemtrace_realloc(nullptr, 50); // from NULL: a new block
    expect_realloc(0, r, 50, heap);
    std::printf("expect pyalloc %#lx 50 0 '' '' 0\n", bits(r));

    volatile std::size_t huge = SIZE_MAX / 2;
    void *failed = pymemtrace_realloc(c, huge); // fails: c stays live, no py* event
    expect_realloc(bits(c), failed, huge, heap);

    std::uintptr_t old_r = bits(r);
    void *released = pymemtrace_realloc(r, 0); // glibc releases the block
    expect_realloc(old_r, released, 0, heap);
    std::printf("expect pyfree %#lx 0 '' '' 0\n", old_r);

    // Expectations are printed before each release: the pointer is not used after it.
    expect_free(a, heap);
    pymemtrace_free(a);
    expect_free(c, heap);
    pymemtrace_free(c);
    expect_free(nullptr, heap);
    pymemtrace_free(nullptr);

    void *none = pymemtrace_malloc(SIZE_MAX); // fails: no alloc event
    (void)none;

    static char pool[256];
    pymemtrace_note_alloc(pool, 64, PYMEMTRACE_DOMAIN_USER);
    expect_alloc(pool, 64, PYMEMTRACE_DOMAIN_USER);
    pymemtrace_note_realloc(pool, pool + 64, 128, PYMEMTRACE_DOMAIN_USER + 1);
    expect_realloc(bits(pool), pool + 64, 128, PYMEMTRACE_DOMAIN_USER + 1);
    std::printf("expect pyrealloc %#lx %#lx 128 '' '' 0\n", bits(pool), bits(pool + 64));
    expect_free(pool + 64, PYMEMTRACE_DOMAIN_USER + 1);
    pymemtrace_note_free(pool + 64, PYMEMTRACE_DOMAIN_USER + 1);

    pymemtrace::allocator<std::uint64_t> cxx;
    std::uint64_t *v = cxx.allocate(10);
    expect_alloc(v, 80, PYMEMTRACE_DOMAIN_CXX);
    expect_free(v, PYMEMTRACE_DOMAIN_CXX);
    cxx.deallocate(v, 10);
}

} // namespace

int main()
{
    std::string line;
    print_semaphores();
    if (!std::getline(std::cin, line) || line != "go")
        return 2;
    print_semaphores();
    run_sequence();
    std::printf("done\n");
    std::fflush(stdout);
    if (!std::getline(std::cin, line) || line != "detached")
        return 2;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (any_semaphore() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    print_semaphores();
    return 0;
}
