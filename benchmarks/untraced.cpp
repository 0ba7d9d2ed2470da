// SPDX-License-Identifier: MIT
// untraced: what pymemtrace's wrappers cost while no tracer is attached, against the functions
// they wrap, with Google Benchmark. Python is embedded (Py_Initialize) so that the Python-domain
// wrappers call the real PyMem_Raw*, PyMem_* and PyObject_* with the GIL held.
//
// Each benchmark DOMAIN/tight|mix alternates blocks of 512 operations through the plain functions
// and through the wrappers (a noisy shared machine then slows both alike):
//   tight  allocate 64 bytes, free it
//   mix    a live set of 1024 blocks; each operation frees one block and allocates another, slot
//          and size (16 B..4 KiB, small sizes most frequent) from a fixed pseudo-random sequence
// Run with repetitions (and --benchmark_enable_random_interleaving=true): bench.py reports the
// median over repetitions of each one's median pair ratio.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <benchmark/benchmark.h> // BENCHMARK, benchmark::State, benchmark::DoNotOptimize

#include <pymemtrace/python.h> // the wrappers

#include <algorithm> // std::nth_element
#include <chrono>    // std::chrono::steady_clock
#include <cstdint>   // uint32_t
#include <cstdlib>   // malloc, free
#include <vector>    // std::vector

namespace {

using Alloc = void *(*)(size_t);
using Free = void (*)(void *);

constexpr size_t kLive = 1024;       // live blocks in the mix
constexpr size_t kSequence = 1 << 16; // length of the pseudo-random (slot, size) sequence

struct Step {
    uint32_t slot;
    uint32_t size;
};

const std::vector<Step> &sequence()
{
    static const std::vector<Step> steps = [] {
        std::vector<Step> result(kSequence);
        uint64_t state = 0x9e3779b97f4a7c15u;
        for (Step &step : result) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17; // xorshift64
            step.slot = static_cast<uint32_t>(state % kLive);
            // 16 << (0..8) scaled by 1..2: 16 B .. 4 KiB, small sizes most frequent
            const uint32_t shift = static_cast<uint32_t>((state >> 20) % 9);
            const uint32_t base = 16u << shift;
            step.size = base + static_cast<uint32_t>((state >> 32) % base);
            if (step.size > 4096)
                step.size = 4096;
        }
        return result;
    }();
    return steps;
}

// One block: `kBlock` operations of a loop, timed. Plain and wrapped blocks alternate (which
// goes first alternates too), on the same live set, so that both see the same machine and heap.
constexpr size_t kBlock = 512;

template <Alloc alloc, Free release>
double tight_block(std::vector<void *> &, size_t &)
{
    const auto start = std::chrono::steady_clock::now();
    for (size_t k = 0; k < kBlock; ++k) {
        void *block = alloc(64);
        benchmark::DoNotOptimize(block);
        release(block);
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
        .count();
}

template <Alloc alloc, Free release>
double mix_block(std::vector<void *> &live, size_t &i)
{
    const std::vector<Step> &steps = sequence();
    const auto start = std::chrono::steady_clock::now();
    for (size_t k = 0; k < kBlock; ++k) {
        const Step step = steps[i++ & (kSequence - 1)];
        release(live[step.slot]);
        void *block = alloc(step.size);
        benchmark::DoNotOptimize(block); // a local: benchmark 1.7.1's DoNotOptimize on a
        live[step.slot] = block;          // vector element lost the store under gcc 12 -O2
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
        .count();
}

using Block = double (*)(std::vector<void *> &, size_t &);

// Counters: plain_ns and pymemtrace_ns per operation (sums over the run), ratio = the median of
// the per-pair ratios wrapped/plain. bench.py takes the median of `ratio` over repetitions.
template <Alloc alloc, Free release, Block plain, Block wrapped>
void paired(benchmark::State &state)
{
    const std::vector<Step> &steps = sequence();
    std::vector<void *> live(kLive);
    for (size_t k = 0; k < kLive; ++k)
        live[k] = alloc(steps[k].size);
    size_t i = 0;
    bool plain_first = true;
    double plain_sum = 0, wrapped_sum = 0;
    std::vector<double> ratios;
    for (auto _ : state) {
        double p, w;
        if (plain_first) {
            p = plain(live, i);
            w = wrapped(live, i);
        } else {
            w = wrapped(live, i);
            p = plain(live, i);
        }
        plain_first = !plain_first;
        plain_sum += p, wrapped_sum += w;
        ratios.push_back(w / p);
    }
    for (void *block : live)
        release(block);
    std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
    const double pairs = static_cast<double>(ratios.size());
    state.counters["plain_ns"] = plain_sum / pairs / kBlock;
    state.counters["pymemtrace_ns"] = wrapped_sum / pairs / kBlock;
    state.counters["ratio"] = ratios.empty() ? 0.0 : ratios[ratios.size() / 2];
}

#define PAIR(domain, plain_alloc, plain_free, wrapped_alloc, wrapped_free)                      \
    BENCHMARK(paired<plain_alloc, plain_free, tight_block<plain_alloc, plain_free>,             \
                     tight_block<wrapped_alloc, wrapped_free>>)                                 \
        ->Name(domain "/tight");                                                                \
    BENCHMARK(paired<plain_alloc, plain_free, mix_block<plain_alloc, plain_free>,               \
                     mix_block<wrapped_alloc, wrapped_free>>)                                   \
        ->Name(domain "/mix");

PAIR("c_heap", std::malloc, std::free, pymemtrace_malloc, pymemtrace_free)
PAIR("pymem_raw", PyMem_RawMalloc, PyMem_RawFree, pymemtrace_raw_malloc, pymemtrace_raw_free)
PAIR("pymem", PyMem_Malloc, PyMem_Free, pymemtrace_mem_malloc, pymemtrace_mem_free)
PAIR("pyobject", PyObject_Malloc, PyObject_Free, pymemtrace_object_malloc,
     pymemtrace_object_free)

} // namespace

int main(int argc, char **argv)
{
    Py_Initialize(); // the main thread now holds the GIL, as PyMem_* and PyObject_* require
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return Py_FinalizeEx() < 0 ? 120 : 0;
}
