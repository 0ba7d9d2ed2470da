// SPDX-License-Identifier: MIT
// snapshot.hpp: --interval's snapshots, the live blocks by (pid, location, domain) at one instant
// while recording goes on (snapshot.bpf.h). At the instant the epoch moves on from e to e + 1;
// slot e & 1 then holds every change of the epochs e, e - 2, ... and no longer changes, and slot
// (e + 1) & 1 held at the end of epoch e - 1 what was read at the previous snapshot. Their sum
// is everything up to the instant: the live blocks then, exactly, with no pause. With --batch,
// the events still in the rings are read and recorded by the engine just before the instant
// (batch.hpp), and what they did to the rows is kept here, beside the slots.
#ifndef PYMEMTRACE_ENGINE_SNAPSHOT_HPP
#define PYMEMTRACE_ENGINE_SNAPSHOT_HPP

#include <cstdint> // uint64_t
#include <map>     // std::map
#include <string>  // std::string
#include <tuple>   // std::tuple

#include "batch.hpp" // RowChanges
#include "tracer.hpp"

namespace engine {

class Snapshots {
public:
    // Takes one: moves the epoch on, reads the slot that stopped changing; returns the
    // `snapshot` line (JSON, no newline) with the instant's CLOCK_MONOTONIC time.
    std::string take(Tracer &tracer);

private:
    using Row = std::tuple<uint32_t, uint64_t, int32_t>; // pid, location, domain
    struct Frozen {
        uint64_t count[2] = {0, 0};
        uint64_t bytes[2] = {0, 0};
    };
    std::map<Row, Frozen> frozen_; // each row's slots as last read: at most --max-locations
    RowChanges read_from_rings_;   // --batch: what the events the engine read did to the rows
    uint32_t epoch_ = 0;
    uint64_t number_ = 0;
};

} // namespace engine

#endif // PYMEMTRACE_ENGINE_SNAPSHOT_HPP
