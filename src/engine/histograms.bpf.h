// SPDX-License-Identifier: MIT
// histograms.bpf.h (included by engine.bpf.c): --histograms. Every event the summary counts is
// also counted by its size's power-of-two bucket in `size_buckets`, from which the runner draws
// the text summary's size histograms per Python file and function and per domain. Only with the
// option: otherwise the verifier prunes it, and the summary costs what it did.
#include "histograms.h"

// Set by the loader before load (--histograms).
const volatile uint32_t size_histograms = 0;

// Sized by the loader before load (--max-locations): the bpftrace runner's @alloc is keyed by
// the bucket too, within --max-entries.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, struct engine_bucket_key);
    __type(value, struct engine_summary_value);
} size_buckets SEC(".maps");

// Events the full map refused (per CPU): the report's loss `histograms_full`.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, uint32_t);
    __type(value, uint64_t);
} size_buckets_refused SEC(".maps");

// floor(log2(size)), -1 for 0: the bpftrace summary script's $bucket, by the same halvings.
static __always_inline int32_t size_bucket(uint64_t size)
{
    if (size == 0)
        return -1;
    int32_t bucket = 0;
    if (size >= 1ULL << 32) { bucket += 32; size >>= 32; }
    if (size >= 1ULL << 16) { bucket += 16; size >>= 16; }
    if (size >= 1ULL << 8) { bucket += 8; size >>= 8; }
    if (size >= 1ULL << 4) { bucket += 4; size >>= 4; }
    if (size >= 1ULL << 2) { bucket += 2; size >>= 2; }
    if (size >= 1ULL << 1) { bucket += 1; }
    return bucket;
}

// One event of `size` bytes at (pid, location, domain), by its bucket.
static __always_inline void add_to_histogram(uint32_t pid, uint64_t location, int32_t domain,
                                             uint64_t size)
{
    if (!size_histograms)
        return;
    struct engine_bucket_key key = {.location = location, .pid = pid, .domain = domain,
                                    .bucket = size_bucket(size)};
    struct engine_summary_value *value = bpf_map_lookup_elem(&size_buckets, &key);
    if (!value) {
        struct engine_summary_value first = {};
        bpf_map_update_elem(&size_buckets, &key, &first, BPF_NOEXIST); // or another CPU made it
        value = bpf_map_lookup_elem(&size_buckets, &key);
        if (!value) {
            uint32_t zero = 0;
            uint64_t *refused = bpf_map_lookup_elem(&size_buckets_refused, &zero);
            if (refused)
                *refused += 1; // per CPU: no other writer
            return;
        }
    }
    __sync_fetch_and_add(&value->count, 1);
    __sync_fetch_and_add(&value->bytes, size);
}
