/* SPDX-License-Identifier: MIT
 * histograms.h: --histograms' map layout, shared by histograms.bpf.h and histograms.cpp. The
 * summary's rows by size bucket too: the bucket is the size's power of two, floor(log2(size)),
 * -1 for 0, as the bpftrace runner's summary script keys @alloc (scripts._bt_size_bucket), so
 * the runner draws the same histograms from either engine's rows. Plain C, fixed-width types.
 */
#ifndef PYMEMTRACE_ENGINE_HISTOGRAMS_H
#define PYMEMTRACE_ENGINE_HISTOGRAMS_H

struct engine_bucket_key {
    uint64_t location; /* as engine_summary_key's: a content id, or at --depth N a stack id */
    uint32_t pid;
    int32_t domain;
    int32_t bucket;    /* floor(log2(size)); -1 for size 0 */
    uint32_t reserved; /* 0 */
};

/* The value is an engine_summary_value: events and bytes. */

#endif /* PYMEMTRACE_ENGINE_HISTOGRAMS_H */
