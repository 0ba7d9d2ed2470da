// SPDX-License-Identifier: MIT
#include "histograms.hpp"

#include <vector> // per-CPU values

#include <bpf/bpf.h>    // bpf_map_lookup_elem
#include <bpf/libbpf.h> // libbpf_num_possible_cpus

#include "engine.h"
#include "histograms.h"
#include "maps.hpp"

namespace engine {

std::string size_buckets_json(const Tracer &tracer, uint64_t &refused)
{
    std::string out = "[";
    for_each_entry<engine_bucket_key, engine_summary_value>(
        tracer.map_fd("size_buckets"),
        [&](const engine_bucket_key &key, const engine_summary_value &value) {
            out += std::string(out.size() > 1 ? "," : "") + "{\"pid\":" + std::to_string(key.pid)
                   + ",\"location\":" + std::to_string(key.location)
                   + ",\"domain\":" + std::to_string(key.domain)
                   + ",\"bucket\":" + std::to_string(key.bucket)
                   + ",\"count\":" + std::to_string(value.count)
                   + ",\"bytes\":" + std::to_string(value.bytes) + "}";
        });
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> per_cpu(cpus > 0 ? cpus : 1);
    const uint32_t zero = 0;
    refused = 0;
    if (bpf_map_lookup_elem(tracer.map_fd("size_buckets_refused"), &zero, per_cpu.data()) == 0)
        for (const uint64_t value : per_cpu)
            refused += value;
    return out + "]";
}

} // namespace engine
