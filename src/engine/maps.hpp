// SPDX-License-Identifier: MIT
// maps.hpp: every entry of a BPF hash map, read in batches (one system call for thousands of
// entries: a million live blocks read in well under a second), or key by key where the kernel
// has no batch operations.
#ifndef PYMEMTRACE_ENGINE_MAPS_HPP
#define PYMEMTRACE_ENGINE_MAPS_HPP

#include <cerrno>  // errno
#include <cstdint> // uint64_t
#include <cstring> // std::strerror
#include <string>  // std::string
#include <vector>  // std::vector

#include <bpf/bpf.h> // bpf_map_lookup_batch, bpf_map_get_next_key

#include "error.hpp"

namespace engine {

template <typename Key, typename Value, typename Visit>
void for_each_key(int fd, Visit visit)
{
    Key key{}, next{};
    Value value{};
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (bpf_map_lookup_elem(fd, &key, &value) == 0)
            visit(key, value);
    }
}

// Calls visit(key, value) for every entry of the hash map `fd`.
template <typename Key, typename Value, typename Visit>
void for_each_entry(int fd, Visit visit)
{
    uint32_t batch = 8192;
    std::vector<Key> keys(batch);
    std::vector<Value> values(batch);
    uint64_t in = 0, out = 0; // the kernel's position (a hash map's bucket), opaque here
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, options);
    for (;;) {
        uint32_t count = batch;
        const int result = bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, keys.data(),
                                                values.data(), &count, &options);
        const int error = result != 0 ? errno : 0;
        for (uint32_t i = 0; i < count && i < batch; ++i)
            visit(keys[i], values[i]);
        if (result == 0) {
            in = out;
            first = false;
            continue;
        }
        if (error == ENOENT)
            return; // the end
        if (error == ENOSPC && count == 0) { // one bucket holds more than a batch
            batch *= 2;
            keys.resize(batch);
            values.resize(batch);
            continue;
        }
        if (first && (error == EINVAL || error == EOPNOTSUPP || error == ENOTSUP))
            return for_each_key<Key, Value>(fd, visit);
        throw Error(std::string("cannot read a BPF map: ") + std::strerror(error));
    }
}

} // namespace engine

#endif // PYMEMTRACE_ENGINE_MAPS_HPP
