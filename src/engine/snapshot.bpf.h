// SPDX-License-Identifier: MIT
// snapshot.bpf.h (included by engine.bpf.c): --interval's live blocks by (pid, location, domain),
// read at one instant while recording goes on. Every block kept in `live` adds to its row, every
// block forgotten takes from it, in the slot of the epoch the event belongs to (`snapshot_epoch`
// & 1). The loader takes a snapshot by moving the epoch on: the slot of the epoch that ended
// stops changing and is read at leisure, while events go on into the other slot. The live blocks
// at the instant are the sum of every epoch's changes up to it (snapshot.hpp). Nothing pauses:
// a free made during the read is recorded, so a block freed then is not live at the next one.

// Set by the loader before load (--interval): without it the verifier prunes all of this.
const volatile uint32_t snapshots = 0;

// Moved on by the loader at each snapshot's instant.
volatile uint32_t snapshot_epoch = 0;

// Sized by the loader before load (--max-locations).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, struct engine_summary_key);
    __type(value, struct engine_live_row);
} live_rows SEC(".maps");

// A block of `size` bytes at (pid, location, domain) became live (sign 1) or went (sign -1).
static __always_inline void snapshot_change(uint32_t pid, uint64_t location, int32_t domain,
                                            uint64_t size, __s64 sign)
{
    if (!snapshots)
        return;
    uint32_t slot = snapshot_epoch & 1;
    struct engine_summary_key key = {.location = location, .pid = pid, .domain = domain};
    struct engine_live_row *row = bpf_map_lookup_elem(&live_rows, &key);
    if (!row) {
        struct engine_live_row first = {};
        bpf_map_update_elem(&live_rows, &key, &first, BPF_NOEXIST); // or another CPU made it
        row = bpf_map_lookup_elem(&live_rows, &key);
        if (!row) {
            count(COUNTER_SNAPSHOT_ROWS_FULL);
            return;
        }
    }
    __sync_fetch_and_add(&row->count[slot], (uint64_t)sign);
    __sync_fetch_and_add(&row->bytes[slot], (uint64_t)sign * size);
}

// The block `key` leaves `live` (freed, moved, or replaced by a block at the same address whose
// free was not seen): its row loses it. Call before the delete or the overwrite.
static __always_inline void snapshot_forget(const struct engine_live_key *key)
{
    if (!snapshots)
        return;
    struct engine_live_value *value = bpf_map_lookup_elem(&live, key);
    if (value)
        snapshot_change(key->pid, value->location, value->domain, value->size, -1);
}
