// SPDX-License-Identifier: MIT
#include "batch.hpp"

#include <cstring> // std::memcpy, strnlen
#include <ctime>   // nanosleep
#include <string>  // std::string
#include <vector>  // std::vector

#include <sys/mman.h> // mmap: the claims words, shared with BPF
#include <sys/uio.h>  // process_vm_readv

#include <bpf/bpf.h>    // bpf_map_lookup_elem, bpf_map_update_elem, bpf_map_delete_elem
#include <bpf/libbpf.h> // libbpf_num_possible_cpus

#include "engine.h"
#include "error.hpp"
#include "maps.hpp"
#include "tracer.hpp"

namespace engine {

namespace {

using Ring = pymemtrace_batch_ring;
using Event = pymemtrace_batch_event;

// Reads `size` bytes at `address` of process `pid`; false if any of them cannot be read.
bool read_target(pid_t pid, uint64_t address, void *into, size_t size)
{
    iovec local{into, size};
    iovec remote{reinterpret_cast<void *>(address), size};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

// A NUL-terminated name of at most ENGINE_NAME_BYTES - 1 bytes, as bpf_probe_read_user_str
// reads it: a page at a time, so that a name ending just before an unmapped page is read.
// Returns its length with the NUL, ENGINE_NAME_BYTES when cut, or -1 when unreadable.
long read_name(pid_t pid, uint64_t address, char (&name)[ENGINE_NAME_BYTES])
{
    size_t done = 0;
    while (done < ENGINE_NAME_BYTES) {
        const uint64_t at = address + done;
        size_t chunk = 4096 - (at & 4095);
        if (chunk > ENGINE_NAME_BYTES - done)
            chunk = ENGINE_NAME_BYTES - done;
        if (!read_target(pid, at, name + done, chunk))
            break;
        const size_t length = strnlen(name + done, chunk);
        if (length < chunk)
            return static_cast<long>(done + length + 1);
        done += chunk;
    }
    if (done == 0) {
        name[0] = 0;
        return -1;
    }
    if (done == ENGINE_NAME_BYTES) {
        name[ENGINE_NAME_BYTES - 1] = 0;
        return ENGINE_NAME_BYTES;
    }
    name[done] = 0; // unreadable further on: what was read
    return static_cast<long>(done + 1);
}

// engine.bpf.c's mix() and name_hash(): a location's id must not depend on who computed it.
uint64_t mix(uint64_t bits)
{
    bits ^= bits >> 30;
    bits *= 0xbf58476d1ce4e5b9ULL;
    bits ^= bits >> 27;
    bits *= 0x94d049bb133111ebULL;
    return bits ^ (bits >> 31);
}

uint64_t name_hash(const char *name)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (int i = 0; i < ENGINE_NAME_BYTES && name[i] != 0; i++)
        hash = (hash ^ static_cast<unsigned char>(name[i])) * 0x100000001b3ULL;
    return hash;
}

// Records events in the maps as batch.bpf.h's record_event does, counting into `counts`.
class Recorder {
public:
    Recorder(const Tracer &tracer)
        : live_(tracer.map_fd("live")), early_(tracer.map_fd("early")),
          summary_(tracer.map_fd("summary")),
          names_(tracer.map_fd("names")), frames_(tracer.map_fd("frames")),
          counters_(tracer.map_fd("engine_counts")), counts_(COUNTER_COUNT, 0)
    {
    }

    void record(uint32_t pid, const Event &event)
    {
        if (event.kind == PYMEMTRACE_BATCH_ALLOC) {
            const uint64_t location = locate(pid, event);
            add_to_summary(pid, location, event.domain, event.size);
            if (!freed_already(pid, event.ptr, event.time))
                keep(pid, event.ptr, event.size, location, event.domain, event.time);
            ++counts_[COUNTER_PYALLOC];
        } else if (event.kind == PYMEMTRACE_BATCH_REALLOC) {
            const uint64_t location = locate(pid, event);
            engine_live_key old_key{event.old_ptr, pid, 0};
            engine_live_value old_value{};
            int32_t domain = -1;
            if (live_before(old_key, event.time, old_value)) {
                domain = old_value.domain;
                bpf_map_delete_elem(live_, &old_key);
            } else {
                ++counts_[COUNTER_UNMATCHED_REALLOC];
                free_early(old_key, event.time, 1);
            }
            add_to_summary(pid, location, -1, event.size); // as record_realloc: "realloc"
            if (!freed_already(pid, event.ptr, event.time))
                keep(pid, event.ptr, event.size, location, domain, event.time);
            ++counts_[COUNTER_PYREALLOC];
        } else if (event.kind == PYMEMTRACE_BATCH_FREE) {
            ++counts_[COUNTER_PYFREE];
            engine_live_key key{event.ptr, pid, 0};
            engine_live_value value{};
            if (event.ptr == 0) {
                ++counts_[COUNTER_FREE_NULL];
            } else if (live_before(key, event.time, value)) {
                bpf_map_delete_elem(live_, &key);
            } else {
                ++counts_[COUNTER_UNMATCHED_FREE];
                free_early(key, event.time, 0);
            }
        }
    }

    void count(uint32_t counter, uint64_t n) { counts_[counter] += n; }

    // Adds the counts to `engine_counts`, which Tracer::counters() adds to BPF's.
    void publish() const
    {
        for (uint32_t index = 0; index < COUNTER_COUNT; ++index) {
            uint64_t total = 0;
            if (counts_[index] == 0 || bpf_map_lookup_elem(counters_, &index, &total) != 0)
                continue;
            total += counts_[index];
            bpf_map_update_elem(counters_, &index, &total, BPF_ANY);
        }
    }

private:
    // engine.bpf.c's live_before(), free_early() and freed_already(): a block allocated by one
    // thread and freed by another is put back in order by the target's clock.
    bool live_before(const engine_live_key &key, uint64_t time, engine_live_value &value) const
    {
        return bpf_map_lookup_elem(live_, &key, &value) == 0 && value.time <= time;
    }

    void free_early(const engine_live_key &key, uint64_t time, uint32_t moved)
    {
        engine_early_free early{time, moved, 0};
        if (bpf_map_update_elem(early_, &key, &early, BPF_ANY) != 0)
            ++counts_[COUNTER_BATCH_UNORDERED];
    }

    bool freed_already(uint32_t pid, uint64_t ptr, uint64_t time)
    {
        engine_live_key key{ptr, pid, 0};
        engine_early_free early{};
        if (bpf_map_lookup_elem(early_, &key, &early) != 0 || early.time < time)
            return false;
        ++counts_[early.moved ? COUNTER_BATCH_MOVED_FIRST : COUNTER_BATCH_FREED_FIRST];
        bpf_map_delete_elem(early_, &key);
        return true;
    }

    // batch.bpf.h's locate_frame(): by the frame's id once its names were read.
    uint64_t locate(uint32_t pid, const Event &event)
    {
        uint64_t location = 0;
        if (event.frame != 0 && bpf_map_lookup_elem(frames_, &event.frame, &location) == 0)
            return location;
        engine_names names{};
        const long file_len = read_name(static_cast<pid_t>(pid), event.filename, names.file);
        const long function_len =
            read_name(static_cast<pid_t>(pid), event.function, names.function);
        if (names.file[0] == 0 && names.function[0] == 0 && event.lineno == 0)
            return 0;
        location = mix(name_hash(names.file)
                       ^ mix(name_hash(names.function)
                             + 0x9e3779b97f4a7c15ULL
                                   * (static_cast<uint64_t>(static_cast<uint32_t>(event.lineno))
                                      + 1)));
        if (location == 0)
            location = 1;
        names.line = event.lineno;
        names.truncated = file_len >= ENGINE_NAME_BYTES || function_len >= ENGINE_NAME_BYTES;
        engine_names known{};
        if (bpf_map_update_elem(names_, &location, &names, BPF_NOEXIST) != 0
            && bpf_map_lookup_elem(names_, &location, &known) != 0)
            ++counts_[COUNTER_NAMES_FULL];
        if (event.frame != 0)
            bpf_map_update_elem(frames_, &event.frame, &location, BPF_ANY);
        return location;
    }

    void add_to_summary(uint32_t pid, uint64_t location, int32_t domain, uint64_t size)
    {
        engine_summary_key key{};
        key.location = location;
        key.pid = pid;
        key.domain = domain; // native 0: --batch is not with --native
        engine_summary_value value{};
        if (bpf_map_lookup_elem(summary_, &key, &value) != 0)
            value = engine_summary_value{};
        value.count += 1;
        value.bytes += size;
        if (bpf_map_update_elem(summary_, &key, &value, BPF_ANY) != 0)
            ++counts_[COUNTER_SUMMARY_FULL];
    }

    void keep(uint32_t pid, uint64_t ptr, uint64_t size, uint64_t location, int32_t domain,
              uint64_t time)
    {
        engine_live_key key{ptr, pid, 0};
        engine_live_value value{};
        value.size = size;
        value.location = location;
        value.domain = domain;
        value.time = time;
        if (bpf_map_update_elem(live_, &key, &value, BPF_ANY) != 0)
            ++counts_[COUNTER_LIVE_FULL];
    }

    int live_, early_, summary_, names_, frames_, counters_;
    std::vector<uint64_t> counts_;
};

// What a ring held past its claimed events, read twice: a slot whose sequence number is the
// expected one in both copies was whole in the first (the target writes 0 there first).
struct Pending {
    uint64_t first = 0, end = 0; // events first..end are published (none when end < first)
    uint64_t overwritten = 0;    // events since the claim that the ring no longer holds
};

Pending published_after(uint64_t claimed, const Ring &copy, const Ring &again)
{
    Pending pending;
    const uint64_t head = copy.head;
    pending.first = claimed + 1;
    if (head > claimed + PYMEMTRACE_BATCH_SLOTS) {
        pending.overwritten = head - claimed - PYMEMTRACE_BATCH_SLOTS;
        pending.first = head - PYMEMTRACE_BATCH_SLOTS + 1;
    }
    pending.end = pending.first - 1;
    for (uint64_t seq = pending.first; seq <= head; ++seq) {
        const uint32_t slot = seq % PYMEMTRACE_BATCH_SLOTS;
        if (copy.events[slot].seq != seq || again.events[slot].seq != seq)
            break; // being written at the instant: after it
        pending.end = seq;
    }
    return pending;
}

struct KnownRing {
    engine_ring_key key;
    engine_ring_value value;
};

} // namespace

uint64_t target_clock_now()
{
    return pymemtrace_detail_batch_time(); // the same clock on every CPU (pymemtrace/batch.h)
}

PendingRead read_pending_batches(const Tracer &tracer)
{
    const uint64_t since = tracer.batch_since();
    PendingRead read;
    const int claims_fd = tracer.map_fd("claims");
    if (claims_fd < 0)
        return read;
    const size_t claims_size = ENGINE_MAX_RINGS * sizeof(uint64_t);
    void *mapped = mmap(nullptr, claims_size, PROT_READ | PROT_WRITE, MAP_SHARED, claims_fd, 0);
    if (mapped == MAP_FAILED)
        throw Error(std::string("cannot map the engine's claims map: ") + std::strerror(errno));
    auto *claims = static_cast<uint64_t *>(mapped);

    std::vector<KnownRing> rings;
    for_each_entry<engine_ring_key, engine_ring_value>(
        tracer.map_fd("rings"), [&](const engine_ring_key &key, const engine_ring_value &value) {
            rings.push_back({key, value});
        });

    Recorder recorder(tracer);
    std::vector<std::pair<uint32_t, std::vector<Event>>> claimed; // recorded once BPF is done
    Ring copy{}, again{};
    for (const auto &ring : rings) {
        if (ring.value.index >= ENGINE_MAX_RINGS)
            continue;
        uint64_t *word = &claims[ring.value.index];
        const pid_t pid = static_cast<pid_t>(ring.key.pid);
        for (;;) {
            const uint64_t old = __atomic_load_n(word, __ATOMIC_SEQ_CST);
            if (old & (ENGINE_CLAIM_FROZEN | ENGINE_CLAIM_DEAD))
                break;
            if (!read_target(pid, ring.key.ring, &copy, sizeof copy)
                || !read_target(pid, ring.key.ring, &again, sizeof again)) {
                // Gone with its process, which its exit would have read: unless it is dead by
                // now, what it held is lost (how much is unknown: at least one event).
                uint64_t expected = old;
                if (__atomic_compare_exchange_n(word, &expected, old | ENGINE_CLAIM_FROZEN, false,
                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                    recorder.count(COUNTER_BATCH_UNREAD, 1);
                break;
            }
            const Pending pending = published_after(old, copy, again);
            uint64_t expected = old;
            const uint64_t now = (pending.end >= pending.first ? pending.end : old);
            if (!__atomic_compare_exchange_n(word, &expected, now | ENGINE_CLAIM_FROZEN, false,
                                             __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                continue; // BPF read a batch meanwhile: read again
            ++read.rings;
            // As batch.bpf.h: events from before this engine's start are not this report's.
            if (copy.events[pending.first % PYMEMTRACE_BATCH_SLOTS].time >= since)
                recorder.count(COUNTER_BATCH_OVERWRITTEN, pending.overwritten);
            std::vector<Event> events;
            for (uint64_t seq = pending.first; seq <= pending.end && pending.end >= pending.first;
                 ++seq)
                if (copy.events[seq % PYMEMTRACE_BATCH_SLOTS].time >= since)
                    events.push_back(copy.events[seq % PYMEMTRACE_BATCH_SLOTS]);
            claimed.emplace_back(ring.key.pid, std::move(events));
            break;
        }
    }
    // A batch BPF claimed just before a freeze may still be recording: let it finish first, so
    // that a block's allocation (BPF's) is recorded before its free (ours).
    const timespec settle{0, 2000000};
    nanosleep(&settle, nullptr);
    for (const auto &entry : claimed) {
        for (const Event &event : entry.second)
            recorder.record(entry.first, event);
        read.events += entry.second.size();
    }
    recorder.publish();
    munmap(mapped, claims_size);
    return read;
}

} // namespace engine
