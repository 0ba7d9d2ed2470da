// SPDX-License-Identifier: MIT
#include "snapshot.hpp"

#include <ctime>   // nanosleep
#include <utility> // std::pair
#include <vector>  // std::vector

#include "batch.hpp" // read_batches_for_snapshot
#include "engine.h"  // struct engine_live_row
#include "maps.hpp"
#include "report.hpp"

namespace engine {

std::string Snapshots::take(Tracer &tracer)
{
    if (tracer.plan().batch) // the events the rings hold, as BPF would record them
        read_batches_for_snapshot(tracer, read_from_rings_);
    const uint32_t ended = epoch_++;
    tracer.set_snapshot_epoch(epoch_); // the instant
    const uint64_t instant_ns = monotonic_ns();
    // A handler that read the old epoch just before runs to its end within microseconds (as
    // the pause of the final report assumes).
    const timespec settle{0, 2000000};
    nanosleep(&settle, nullptr);

    const uint32_t still = ended & 1, moving = epoch_ & 1;
    for_each_entry<engine_summary_key, engine_live_row>(
        tracer.map_fd("live_rows"), [&](const engine_summary_key &key, const engine_live_row &row) {
            Frozen &frozen = frozen_[Row{key.pid, key.location, key.domain}];
            frozen.count[still] = row.count[still];
            frozen.bytes[still] = row.bytes[still];
        });
    // Sums of changes, wrapping: the live count, never below 0.
    std::map<Row, std::pair<int64_t, int64_t>> sums = read_from_rings_;
    for (const auto &entry : frozen_) {
        const Frozen &frozen = entry.second;
        auto &sum = sums[entry.first];
        sum.first += static_cast<int64_t>(frozen.count[still] + frozen.count[moving]);
        sum.second += static_cast<int64_t>(frozen.bytes[still] + frozen.bytes[moving]);
    }
    std::map<Row, std::pair<uint64_t, uint64_t>> live;
    uint64_t blocks = 0, bytes = 0;
    for (const auto &entry : sums) {
        const auto count = entry.second.first, size = entry.second.second;
        if (count <= 0)
            continue;
        live[entry.first] = {static_cast<uint64_t>(count), static_cast<uint64_t>(size)};
        blocks += static_cast<uint64_t>(count);
        bytes += static_cast<uint64_t>(size);
    }
    uint64_t unnamed = 0;
    const std::string entries = rows_json(live, tracer.map_fd("names"), unnamed);
    const std::vector<uint64_t> counters = tracer.counters();
    return "{\"event\":\"snapshot\",\"snapshot\":" + std::to_string(++number_)
           + ",\"time_ns\":" + std::to_string(instant_ns) + ",\"leaks\":" + entries
           + ",\"live_blocks\":" + std::to_string(blocks) + ",\"live_bytes\":"
           + std::to_string(bytes) + ",\"refused\":"
           + std::to_string(counters[COUNTER_LIVE_FULL] + counters[COUNTER_SNAPSHOT_ROWS_FULL])
           + ",\"unnamed\":" + std::to_string(unnamed) + "}";
}

} // namespace engine
