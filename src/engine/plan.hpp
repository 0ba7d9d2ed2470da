// SPDX-License-Identifier: MIT
// plan.hpp: what to trace and how to report it, read once from the command line.
#ifndef PYMEMTRACE_ENGINE_PLAN_HPP
#define PYMEMTRACE_ENGINE_PLAN_HPP

#include <cstdint>  // uint32_t
#include <string>   // std::string
#include <vector>   // std::vector
#include <sys/types.h> // pid_t

namespace engine {

struct Plan {
    std::vector<pid_t> pids;             // processes to trace (and what they fork)
    std::vector<std::string> libraries;  // instrumented libraries, attached in every traced process
                                         // (with those found mapped: mappings.hpp)
    int ready_fd = 1;                    // where the `ready` line goes (stdout by default)
    bool allow_loss = false;             // exit 0, not 3, when the report states a loss
    bool verbose = false;                // libbpf's own messages on stderr
    bool setid_stop = false;             // stop tracing a process that execs a set-ID program
    bool plain = false;                  // alloc/realloc/free instead of pyalloc/pyrealloc/pyfree
    uint32_t max_live = 1u << 21;        // live blocks the leak map holds (its buckets: 16 B each)
    uint32_t max_locations = 1u << 16;   // (pid, location, domain) rows of the summary
    uint64_t interval_ms = 0;            // --interval: a snapshot line every so often (0: none)
    bool every_process = false;          // --all: every process that maps the libraries
    uint32_t depth = 1;                  // --depth N: locations are stacks of N (2..16) frames
    bool native = false;                 // rows keyed by the native caller too (pynative)
    int flow_fd = -1;                    // --flow-fd: every event there (flow.hpp); -1: none
    uint32_t flow_bytes = 1u << 24;      // the flow's ring buffer (a power of two of pages)
    bool batch = false;                  // read the py* events in batches (pybatch, batch.bpf.h)
    bool follow = true;                  // trace what the traced processes fork (--no-follow)
    bool histograms = false;             // the summary by size bucket too (histograms.bpf.h)
    int targets_fd = -1;                 // --targets-fd: pids and libraries named there later
    std::string python_frames;           // the plain probes located by CPython's probes of this
                                         // Python binary (cpython_frames.bpf.h); implies plain
    std::string allocator;               // --allocator: that binary's PREFIX Malloc... functions
                                         // instead of any library's probes (object_allocator.bpf.h)
    int32_t allocator_domain = 0;        // the domain their blocks are counted in
    std::string allocator_library;       // --allocator libc: the C library's file
    bool by_path = false;                // the libraries attached by path, only traced events kept
    bool python_call_stack = false;      // Python's calls and returns in the flow (call_stack.bpf.h)
    pid_t die_with = 0;                  // --die-with: killed when this parent ends (main.cpp)
    bool report_signals = false;         // a line for each stop signal to a traced process or the
                                         // parent (signals.hpp)
    bool stops_from_parent = false;      // only the parent's stop requests stop it (stop.hpp)
};

// The plan of argv, or throws engine::Error (bad input: one line, what and how to fix).
Plan parse_plan(int argc, char **argv);

extern const char *const usage;

} // namespace engine

#endif // PYMEMTRACE_ENGINE_PLAN_HPP
