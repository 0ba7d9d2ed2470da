// SPDX-License-Identifier: MIT
// histograms.hpp: --histograms, the summary's rows by size bucket (histograms.bpf.h), read for
// the report at its instant.
#ifndef PYMEMTRACE_ENGINE_HISTOGRAMS_HPP
#define PYMEMTRACE_ENGINE_HISTOGRAMS_HPP

#include <cstdint> // uint64_t
#include <string>  // std::string

#include "tracer.hpp"

namespace engine {

// The report's `size_buckets`: [{"pid","location","domain","bucket","count","bytes"}...] (a row's
// location is the summary's: its names are the summary row's of that location, or at --depth N
// its stack's), and in `refused` the events the full map could not count.
std::string size_buckets_json(const Tracer &tracer, uint64_t &refused);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_HISTOGRAMS_HPP
