// SPDX-License-Identifier: MIT
// batch.hpp: --batch at a report's instant. The events the targets' rings hold and BPF has not
// read yet (pymemtrace/batch.h, batch.bpf.h) are read from each process's memory
// (process_vm_readv: nothing is written into a target), claimed with the same compare-and-swap
// as BPF's, which also freezes the ring (BPF reads it no more), and recorded in the maps as BPF
// records an event: the report then holds every event up to its instant, none twice.
#ifndef PYMEMTRACE_ENGINE_BATCH_HPP
#define PYMEMTRACE_ENGINE_BATCH_HPP

#include <cstdint> // uint64_t
#include <map>     // std::map
#include <tuple>   // std::tuple
#include <utility> // std::pair

namespace engine {

class Tracer;

struct PendingRead {
    uint64_t rings = 0;  // rings read
    uint64_t events = 0; // events recorded from them
};

// After Tracer::pause(), before the maps are read for the report.
PendingRead read_pending_batches(const Tracer &tracer);

// A row of the live blocks (pid, location, domain), and what events did to it (blocks, bytes).
using BatchRow = std::tuple<uint32_t, uint64_t, int32_t>;
using RowChanges = std::map<BatchRow, std::pair<int64_t, int64_t>>;

// --interval: just before a snapshot's instant, claims and records the events the rings hold as
// read_pending_batches does, but BPF goes on reading the rings after them. What they did to the
// live blocks' rows is added to `changes` (BPF's records change `live_rows` instead); their
// summary waits for the report (BPF adds to it meanwhile).
PendingRead read_batches_for_snapshot(const Tracer &tracer, RowChanges &changes);

// The targets' clock now, as pymemtrace/batch.h stamps events (x86-64 TSC, aarch64 CNTVCT).
uint64_t target_clock_now();

} // namespace engine

#endif // PYMEMTRACE_ENGINE_BATCH_HPP
