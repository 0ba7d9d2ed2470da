// SPDX-License-Identifier: MIT
// report.hpp: the maps, read at one instant (recording paused), as the engine's JSON report:
// summary and leak entries by process, location and domain, the counters, the loss, and how each
// traced process came and went.
#ifndef PYMEMTRACE_ENGINE_REPORT_HPP
#define PYMEMTRACE_ENGINE_REPORT_HPP

#include <cstdint> // uint64_t
#include <map>     // std::map
#include <string>  // std::string
#include <tuple>   // std::tuple
#include <utility> // std::pair

#include "tracer.hpp"

namespace engine {

struct Report {
    std::string json; // one line, no newline
    bool lost = false; // the report states a loss (exit 3 unless --allow-loss)
};

// Reads the tracer's maps; call with recording paused.
Report make_report(const Tracer &tracer);

// Rows {(pid, location, domain): (count, bytes)} as the report's entries (a JSON array, biggest
// first, with the names of `names_fd`'s map); `unnamed` counts locations whose names are missing.
std::string rows_json(const std::map<std::tuple<uint32_t, uint64_t, int32_t>,
                                      std::pair<uint64_t, uint64_t>> &rows,
                      int names_fd, uint64_t &unnamed);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_REPORT_HPP
