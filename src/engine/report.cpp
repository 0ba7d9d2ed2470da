// SPDX-License-Identifier: MIT
#include "report.hpp"

#include <algorithm>     // std::sort
#include <cstdint>       // uint64_t
#include <map>           // std::map
#include <set>           // std::set
#include <string>        // std::string, std::to_string
#include <tuple>         // std::tuple
#include <unordered_map> // names by location id
#include <vector>        // std::vector

#include "engine.h" // the maps' layouts
#include "histograms.hpp"
#include "json.hpp"
#include "maps.hpp"

namespace engine {

namespace {

// Counter names, in enum engine_counter order.
const char *const counter_names[COUNTER_COUNT] = {
    "pyalloc", "pyrealloc", "pyfree", "free_null", "unmatched_free", "unmatched_realloc",
    "live_full", "summary_full", "names_full", "paused", "records_lost", "alloc", "realloc",
    "free", "snapshot_rows_full", "batches", "batch_overwritten", "batch_unread",
    "batch_rings_full", "batch_freed_first", "batch_moved_first", "batch_unordered",
    "call", "rtn"};

struct Names {
    std::string file, function;
    int line = 0;
    bool truncated = false;
};

using Grouping = std::tuple<uint32_t, uint64_t, int32_t, uint64_t>; // pid, location, domain,
                                                                   // native (--native)

struct Totals {
    uint64_t count = 0, bytes = 0;
};

std::unordered_map<uint64_t, Names> read_names(int fd)
{
    std::unordered_map<uint64_t, Names> names;
    for_each_entry<uint64_t, engine_names>(fd, [&](const uint64_t &id, const engine_names &n) {
        Names &entry = names[id];
        entry.file.assign(n.file, strnlen(n.file, sizeof n.file));
        entry.function.assign(n.function, strnlen(n.function, sizeof n.function));
        entry.line = n.line;
        entry.truncated = n.truncated != 0;
    });
    return names;
}

// The entries of one report, biggest first, as a JSON array.
std::string entries(const std::map<Grouping, Totals> &groups,
                    const std::unordered_map<uint64_t, Names> &names, uint64_t &unnamed)
{
    std::vector<std::pair<Grouping, Totals>> sorted(groups.begin(), groups.end());
    std::sort(sorted.begin(), sorted.end(), [](const auto &a, const auto &b) {
        if (a.second.bytes != b.second.bytes)
            return a.second.bytes > b.second.bytes;
        if (a.second.count != b.second.count)
            return a.second.count > b.second.count;
        return a.first < b.first;
    });
    static const Names nowhere; // location 0: no Python frame
    std::string out = "[";
    for (const auto &group : sorted) {
        const uint64_t location = std::get<1>(group.first);
        const Names *where = &nowhere;
        Names lost;
        if (location != 0) {
            const auto found = names.find(location);
            if (found != names.end()) {
                where = &found->second;
            } else { // the names map was full when it was first seen
                ++unnamed;
                lost.file = "?";
                lost.function = "?";
                where = &lost;
            }
        }
        if (out.size() > 1)
            out += ',';
        out += "{\"pid\":" + std::to_string(std::get<0>(group.first))
               + ",\"file\":" + quote(where->file) + ",\"function\":" + quote(where->function)
               + ",\"line\":" + std::to_string(where->line)
               + ",\"domain\":" + std::to_string(std::get<2>(group.first))
               + ",\"count\":" + std::to_string(group.second.count)
               + ",\"bytes\":" + std::to_string(group.second.bytes)
               + ",\"location\":" + std::to_string(location) // --depth: the stack id
               + (where->truncated ? ",\"truncated\":true" : "")
               + (std::get<3>(group.first) != 0
                      ? ",\"native\":" + std::to_string(std::get<3>(group.first))
                      : "")
               + "}";
    }
    return out + "]";
}

// How a process ended, as JSON.
std::string ending(const Process &process)
{
    if (!process.ended)
        return "\"running\"";
    if (!process.exit_known)
        return "\"unknown\"";
    const int status = process.exit_code;
    if ((status & 0x7f) == 0)
        return "{\"exit\":" + std::to_string((status >> 8) & 0xff) + "}";
    return "{\"signal\":" + std::to_string(status & 0x7f) + "}";
}

// The probes a forked process hit before its attach, as a JSON array.
std::string names_json(const std::set<std::string> &names)
{
    std::string out = "[";
    for (const auto &name : names)
        out += (out.size() > 1 ? "," : "") + quote(name);
    return out + "]";
}

// What a forked process missed between its fork and its attach (window.hpp): "exact" (nothing),
// "dropped" (hits of window_dropped's probes, at least), or "unknown" (possibly some).
std::string window_json(const Process &process)
{
    if (process.window_exact)
        return ",\"window\":\"exact\"";
    if (process.window_dropped.empty())
        return ",\"window\":\"unknown\"";
    return ",\"window\":\"dropped\",\"window_dropped\":" + names_json(process.window_dropped);
}

std::string processes_json(const Tracer &tracer, uint64_t &unattached, uint64_t &window_lost)
{
    std::string out = "[";
    for (const auto &entry : tracer.processes()) {
        const Process &process = entry.second;
        if (out.size() > 1)
            out += ',';
        out += "{\"pid\":" + std::to_string(process.pid)
               + ",\"parent\":" + std::to_string(process.parent)
               + ",\"ended\":" + ending(process);
        if (process.parent != 0 && process.attached_ns != 0)
            // Between the fork and the attach the child's probe hits are not delivered.
            out += ",\"attach_window_us\":"
                   + std::to_string((process.attached_ns - process.forked_ns) / 1000);
        if (process.parent != 0 && process.attached_ns != 0) {
            out += window_json(process);
            window_lost += process.window_exact ? 0 : 1;
        }
        if (process.setid) // traced until it exec'd a set-ID program (--setid-stop)
            out += ",\"setid\":true";
        if (!process.attach_error.empty()) {
            out += ",\"attach_error\":" + quote(process.attach_error);
            // A child that ended before its probes were attached lost nothing it could report
            // only if it made no event; that cannot be known, so it counts as a loss.
            ++unattached;
        }
        out += '}';
    }
    return out + "]";
}

// The instrumented libraries mapped before their probes were attached (mappings.hpp): what
// the process allocated through them in `window_us` was not seen, so each counts as a loss.
std::string late_libraries_json(const Tracer &tracer)
{
    std::string out = "[";
    for (const auto &late : tracer.late_libraries())
        out += std::string(out.size() > 1 ? "," : "") + "{\"pid\":" + std::to_string(late.pid)
               + ",\"path\":" + quote(late.shown) + ",\"window_us\":"
               + std::to_string(late.window_ns / 1000) + ",\"window\":\"unknown\""
               + (late.attached_ns == 0
                      ? ",\"attached\":false,\"attach_error\":" + quote(late.attach_error)
                      : "")
               + "}";
    return out + "]";
}

// Files mapped by traced processes that the engine never could look at, as a JSON array.
std::string unexamined_json(const std::vector<UnexaminedFile> &files)
{
    std::string out = "[";
    for (const auto &file : files)
        out += std::string(out.size() > 1 ? "," : "") + "{\"pid\":" + std::to_string(file.pid)
               + ",\"file\":\"" + std::to_string(std::get<0>(file.id)) + ":"
               + std::to_string(std::get<1>(file.id)) + ":" + std::to_string(std::get<2>(file.id))
               + "\"}";
    return out + "]";
}

// The libraries attached by path (--all, --by-path): every process on the host that maps one
// traps its probes while the engine runs (docs/engine.md).
std::string by_path_json(const Tracer &tracer)
{
    std::string out = "[";
    for (size_t index = 0; index < tracer.libraries_by_path(); ++index)
        out += (out.size() > 1 ? "," : "") + quote(tracer.libraries()[index].shown);
    return out + "]";
}

// --native: the libraries in the order their index is in the rows' `native` (attach cookies).
std::string native_libraries_json(const Tracer &tracer)
{
    if (!tracer.plan().native)
        return "";
    std::string out = ",\"native_libraries\":[";
    for (const auto &library : tracer.libraries())
        out += (out.back() == '[' ? "" : ",") + quote(library.path);
    return out + "]";
}

} // namespace

Report make_report(const Tracer &tracer,
                   const std::vector<std::pair<std::string, uint64_t>> &more_losses)
{
    const uint64_t read_ns = monotonic_ns();
    auto counters = tracer.counters();
    // --batch: a free read before its allocation was counted unmatched until the allocation came.
    counters[COUNTER_UNMATCHED_FREE] -= counters[COUNTER_BATCH_FREED_FIRST];
    counters[COUNTER_UNMATCHED_REALLOC] -= counters[COUNTER_BATCH_MOVED_FIRST];
    const auto names = read_names(tracer.map_fd("names"));

    std::map<Grouping, Totals> summary, leaks;
    for_each_entry<engine_summary_key, engine_summary_value>(
        tracer.map_fd("summary"),
        [&](const engine_summary_key &key, const engine_summary_value &value) {
            Totals &totals = summary[Grouping{key.pid, key.location, key.domain, key.native}];
            totals.count += value.count;
            totals.bytes += value.bytes;
        });
    uint64_t live_blocks = 0;
    for_each_entry<engine_live_key, engine_live_value>(
        tracer.map_fd("live"), [&](const engine_live_key &key, const engine_live_value &value) {
            Totals &totals =
                leaks[Grouping{key.pid, value.location, value.domain, value.native}];
            totals.count += 1;
            totals.bytes += value.size;
            ++live_blocks;
        });

    uint64_t unnamed = 0, unattached = 0, window_lost = 0;
    Report report;
    std::string json = "{\"event\":\"report\",\"time_ns\":" + std::to_string(read_ns);
    json += ",\"summary\":" + entries(summary, names, unnamed);
    json += ",\"leaks\":" + entries(leaks, names, unnamed);
    json += ",\"live_blocks\":" + std::to_string(live_blocks);
    json += native_libraries_json(tracer);
    uint64_t histograms_refused = 0; // --histograms: events its full map could not count
    if (tracer.plan().histograms)
        json += ",\"size_buckets\":" + size_buckets_json(tracer, histograms_refused);
    // Every library attached, named or mapped later: none means nothing could be traced.
    json += ",\"libraries_attached\":" + std::to_string(tracer.libraries().size());
    json += ",\"attached_by_path\":" + by_path_json(tracer);
    json += ",\"processes\":" + processes_json(tracer, unattached, window_lost);
    json += ",\"late_libraries\":" + late_libraries_json(tracer);
    const auto unexamined = tracer.unexamined_files();
    json += ",\"unexamined_files\":" + unexamined_json(unexamined);
    json += ",\"counters\":{";
    for (int i = 0; i < COUNTER_COUNT; ++i)
        json += std::string(i ? "," : "") + "\"" + counter_names[i]
                + "\":" + std::to_string(counters[i]);
    json += "}";
    // What the report misses, exactly. (Paused events came after the instant it was read.)
    const std::pair<const char *, uint64_t> losses[] = {
        {"live_full", counters[COUNTER_LIVE_FULL]},
        {"summary_full", counters[COUNTER_SUMMARY_FULL]},
        {"names_full", counters[COUNTER_NAMES_FULL]},
        {"records_lost", counters[COUNTER_RECORDS_LOST]},
        {"batch_overwritten", counters[COUNTER_BATCH_OVERWRITTEN]},
        {"batch_unread", counters[COUNTER_BATCH_UNREAD]},
        {"batch_rings_full", counters[COUNTER_BATCH_RINGS_FULL]},
        {"batch_unordered", counters[COUNTER_BATCH_UNORDERED]},
        {"unattached_processes", unattached},
        {"forked_window", window_lost},
        {"snapshot_rows_full", counters[COUNTER_SNAPSHOT_ROWS_FULL]},
        {"late_window", tracer.late_libraries().size()},
        {"unexamined_files", unexamined.size()},
        {"histograms_full", histograms_refused}};
    json += ",\"loss\":{";
    bool first = true;
    for (const auto &loss : losses) {
        json += std::string(first ? "" : ",") + "\"" + loss.first
                + "\":" + std::to_string(loss.second);
        first = false;
        report.lost = report.lost || loss.second != 0;
    }
    for (const auto &loss : more_losses) {
        json += ",\"" + loss.first + "\":" + std::to_string(loss.second);
        report.lost = report.lost || loss.second != 0;
    }
    json += "},\"complete\":" + std::string(report.lost ? "false" : "true") + "}";
    report.json = std::move(json);
    return report;
}

std::string rows_json(const std::map<std::tuple<uint32_t, uint64_t, int32_t>,
                                      std::pair<uint64_t, uint64_t>> &rows,
                      int names_fd, uint64_t &unnamed)
{
    std::map<Grouping, Totals> groups;
    for (const auto &row : rows)
        groups[Grouping{std::get<0>(row.first), std::get<1>(row.first), std::get<2>(row.first),
                        0}] = Totals{row.second.first, row.second.second};
    return entries(groups, read_names(names_fd), unnamed);
}

} // namespace engine
