// SPDX-License-Identifier: MIT
// batch.bpf.h (included by engine.bpf.c): --batch, the py* events in batches. The target appends
// each event to its thread's ring (pymemtrace/batch.h) and fires pybatch(ring, last) once per
// batch; on_pybatch reads the events not yet claimed, claims them with one compare-and-swap on
// the ring's word of `claims` (which the engine swaps too when it reads a ring for a report:
// batch.cpp), and records each as on_pyalloc, on_pyrealloc and on_pyfree do (record_*). A
// frame's names are read once per content id (`frames`). on_thread_exit reads what an exiting
// thread left in its rings (its memory is still mapped at sched_process_exit).

// The word per ring: the sequence number claimed, ENGINE_CLAIM_FROZEN, ENGINE_CLAIM_DEAD. Mapped
// into the engine, which swaps it as these programs do.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, ENGINE_MAX_RINGS);
    __type(key, uint32_t);
    __type(value, uint64_t);
} claims SEC(".maps");

// The rings announced: (ring, pid) -> its index in `claims` and its thread.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, ENGINE_MAX_RINGS);
    __type(key, struct engine_ring_key);
    __type(value, struct engine_ring_value);
} rings SEC(".maps");

// Thread id -> its rings, read when it exits.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, ENGINE_MAX_RINGS);
    __type(key, uint32_t);
    __type(value, struct engine_thread_rings);
} thread_rings SEC(".maps");

// A Python frame's content id (python.h: the names' hash() and the line, mixed; per process,
// shared by its forks) -> the location id locate() made from the names' bytes, so that batched
// and single events of one location are one entry.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1 << 16);
    __type(key, uint64_t);
    __type(value, uint64_t);
} frames SEC(".maps");

// A ring's events, copied before they are claimed: too big for the stack. Twice the ring, so
// that the verifier sees any run of up to a ring of slots from any slot fit (copy_slots).
struct engine_batch_copy {
    struct pymemtrace_batch_event events[2 * PYMEMTRACE_BATCH_SLOTS];
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, uint32_t);
    __type(value, struct engine_batch_copy);
} batch_copy SEC(".maps");

uint32_t rings_announced = 0; // the next free word of `claims`

// The counts of the events the engine read from the rings at a report (batch.cpp), kept apart
// from the per-CPU counters, which BPF programs still finishing a batch may be adding to.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, COUNTER_COUNT);
    __type(key, uint32_t);
    __type(value, uint64_t);
} engine_counts SEC(".maps");

// The target's clock when this engine was ready (set by the loader): a ring that an earlier
// tracer had announced still holds events from before, which are not this report's, and so do
// rings written between pybatch's semaphore being set and its program being attached. Until the
// loader sets it, nothing is: fires taken while attaching are before `ready`.
uint64_t batch_since = ~0ULL;

static __always_inline void count_n(uint32_t counter, uint64_t n)
{
    uint64_t *slot = bpf_map_lookup_elem(&counters, &counter);
    if (slot)
        *slot += n;
}

// The location of a batched event: by its frame id once the names were read.
static __always_inline uint64_t locate_frame(const struct pymemtrace_batch_event *event)
{
    if (event->frame == 0)
        return locate(event->filename, event->function, event->lineno);
    uint64_t *known = bpf_map_lookup_elem(&frames, &event->frame);
    if (known)
        return *known;
    uint64_t location = locate(event->filename, event->function, event->lineno);
    bpf_map_update_elem(&frames, &event->frame, &location, BPF_ANY);
    return location;
}

struct batch_walk {
    struct engine_batch_copy *copy;
    uint64_t ring;
    uint64_t first; // the first sequence number to read
    uint64_t end;   // the last one read and published so far
    uint32_t pid;
};

// Events first .. first + count - 1 copied from the ring into their slots of `copy`, with one
// read, or two where the run wraps around the ring's end (not one read an event: each read is
// a fault-handling copy with its own set-up). Returns false if a read failed.
static __always_inline bool copy_slots(struct engine_batch_copy *copy, uint64_t ring,
                                       uint64_t first, uint64_t count)
{
    const uint32_t size = sizeof(struct pymemtrace_batch_event);
    const uint64_t events = ring + __builtin_offsetof(struct pymemtrace_batch_ring, events);
    uint32_t slot = first & (PYMEMTRACE_BATCH_SLOTS - 1);
    uint32_t to_end = PYMEMTRACE_BATCH_SLOTS - slot;
    uint32_t head = count < to_end ? count : to_end;
    if (head > PYMEMTRACE_BATCH_SLOTS || head == 0)
        return false;
    if (bpf_probe_read_user(&copy->events[slot], head * size, (const void *)(events + slot * size))
        != 0)
        return false;
    uint32_t tail = count - head;
    if (tail == 0)
        return true;
    if (tail > PYMEMTRACE_BATCH_SLOTS)
        return false;
    return bpf_probe_read_user(&copy->events[0], tail * size, (const void *)events) == 0;
}

// The walk stops at the first event not published (a slot still being written).
static long check_event(uint32_t index, void *context)
{
    struct batch_walk *walk = context;
    uint64_t seq = walk->first + index;
    uint32_t slot = seq & (PYMEMTRACE_BATCH_SLOTS - 1);
    if (walk->copy->events[slot].seq != seq)
        return 1;
    walk->end = seq;
    return 0;
}

// One claimed event recorded, as its single probe's program would. A global function: the
// verifier checks it once per program, by its argument types, where inlined into the bpf_loop
// callback it was checked again in every state of the loop (570-1,000 ms of load for the three
// batch programs, most of a traced command's start; measured).
__attribute__((noinline)) int record_batched(uint32_t pid,
                                             const struct pymemtrace_batch_event *event)
{
    if (!event || event->time < batch_since)
        return 0; // appended while an earlier tracer was attached
    if (event->kind == PYMEMTRACE_BATCH_FREE) {
        record_free(pid, event->ptr, COUNTER_PYFREE, event->time);
        return 0;
    }
    uint64_t location = locate_frame(event); // one copy of it: the verifier walks each
    if (event->kind == PYMEMTRACE_BATCH_ALLOC)
        record_alloc(pid, event->ptr, event->size, event->domain, location, 0,
                     event->time); // no native caller: --batch is not with --native
    else if (event->kind == PYMEMTRACE_BATCH_REALLOC)
        record_realloc(pid, event->old_ptr, event->ptr, event->size, location, 0, event->time);
    return 0;
}

static long record_event(uint32_t index, void *context)
{
    struct batch_walk *walk = context;
    uint32_t slot = (walk->first + index) & (PYMEMTRACE_BATCH_SLOTS - 1);
    record_batched(walk->pid, &walk->copy->events[slot]);
    return 0;
}

#define DRAIN_NOT_MINE (~0ULL)

// Reads and records the events of `ring` up to `last` that nobody claimed yet. Returns the
// claimed sequence number after, or DRAIN_NOT_MINE when the engine has the ring (frozen) or its
// thread is gone (dead). A global function: the verifier checks it once, not at each call.
__attribute__((noinline)) uint64_t drain(uint32_t pid, uint64_t ring, uint32_t index,
                                         uint64_t last)
{
    uint64_t *claim = bpf_map_lookup_elem(&claims, &index);
    uint32_t zero = 0;
    struct engine_batch_copy *copy = bpf_map_lookup_elem(&batch_copy, &zero);
    if (!claim || !copy)
        return DRAIN_NOT_MINE;
    uint64_t old = *(volatile uint64_t *)claim;
    if (old & (ENGINE_CLAIM_FROZEN | ENGINE_CLAIM_DEAD)) {
        // After the report's instant, as a single event while paused (this batch's at most).
        uint64_t after = last - (old & ENGINE_CLAIM_SEQ);
        if (last > (old & ENGINE_CLAIM_SEQ))
            count_n(COUNTER_PAUSED, after < PYMEMTRACE_BATCH_EVENTS ? after
                                                                     : PYMEMTRACE_BATCH_EVENTS);
        return DRAIN_NOT_MINE;
    }
    if (last <= old)
        return old; // the engine read them already
    struct batch_walk walk = {.copy = copy, .ring = ring, .first = old + 1, .pid = pid};
    uint64_t overwritten = 0;
    if (last - old > PYMEMTRACE_BATCH_SLOTS) { // more events than the ring holds since
        overwritten = last - old - PYMEMTRACE_BATCH_SLOTS;
        walk.first = last - PYMEMTRACE_BATCH_SLOTS + 1;
    }
    walk.end = walk.first - 1;
    if (copy_slots(copy, ring, walk.first, last - walk.first + 1))
        bpf_loop(last - walk.first + 1, check_event, &walk, 0);
    if (walk.end == old)
        return old;
    if (__sync_val_compare_and_swap(claim, old, walk.end) != old)
        return DRAIN_NOT_MINE; // the engine froze or read it meanwhile: its events are the engine's
    // Lost ones are older than the oldest read: this report's only if that one is.
    if (copy->events[walk.first & (PYMEMTRACE_BATCH_SLOTS - 1)].time >= batch_since)
        count_n(COUNTER_BATCH_OVERWRITTEN, overwritten);
    count(COUNTER_BATCHES);
    bpf_loop(walk.end - walk.first + 1, record_event, &walk, 0);
    return walk.end;
}

// A ring's word in `claims`: the announced one, or a new one (a ring seen first, or announced
// again: a new thread at a dead one's address, a process after exec).
static __always_inline int ring_index(uint32_t pid, uint64_t ring, bool announced, uint32_t *index)
{
    struct engine_ring_key key = {.ring = ring, .pid = pid};
    struct engine_ring_value *known = bpf_map_lookup_elem(&rings, &key);
    if (known && !announced) {
        *index = known->index;
        return 0;
    }
    if (known) { // its old word is done with
        uint64_t *old = bpf_map_lookup_elem(&claims, &known->index);
        if (old)
            __sync_fetch_and_or(old, ENGINE_CLAIM_DEAD);
    }
    uint32_t fresh = __sync_fetch_and_add(&rings_announced, 1);
    uint64_t *claim = bpf_map_lookup_elem(&claims, &fresh);
    if (!claim) {
        count(COUNTER_BATCH_RINGS_FULL);
        return -1;
    }
    *claim = 0;
    uint32_t tid = (uint32_t)bpf_get_current_pid_tgid();
    struct engine_ring_value value = {.index = fresh, .tid = tid};
    bpf_map_update_elem(&rings, &key, &value, BPF_ANY);
    struct engine_thread_rings empty = {};
    bpf_map_update_elem(&thread_rings, &tid, &empty, BPF_NOEXIST);
    struct engine_thread_rings *mine = bpf_map_lookup_elem(&thread_rings, &tid);
    if (!mine)
        return 0;
    for (int i = 0; i < ENGINE_RINGS_PER_THREAD; i++) {
        if (mine->ring[i] == 0 || mine->ring[i] == ring) {
            mine->ring[i] = ring;
            mine->index[i] = fresh;
            *index = fresh;
            return 0;
        }
    }
    count(COUNTER_BATCH_RINGS_FULL); // its events are read by pybatch and reports, not at exit
    *index = fresh;
    return 0;
}

SEC("usdt")
int BPF_USDT(on_pybatch, uint64_t ring, uint64_t last)
{
    uint32_t pid = current_pid();
    if (ignored(pid))
        return 0;
    uint32_t index = 0;
    if (ring_index(pid, ring, last == 0, &index) != 0 || last == 0)
        return 0;
    drain(pid, ring, index, last);
    return 0;
}

// The rings of thread `tid`, read to the end while its memory is still mapped, then done with
// (a new thread, or the program an exec starts, may get their addresses).
static __always_inline void read_rings_of_leaving_thread(uint32_t tid)
{
    struct engine_thread_rings *mine = bpf_map_lookup_elem(&thread_rings, &tid);
    if (!mine)
        return;
    uint32_t pid = current_pid();
    for (int i = 0; i < ENGINE_RINGS_PER_THREAD; i++) {
        uint64_t ring = mine->ring[i];
        uint32_t index = mine->index[i];
        if (ring == 0)
            break;
        uint64_t head = 0;
        uint64_t *claim = bpf_map_lookup_elem(&claims, &index);
        if (!claim)
            continue;
        if (bpf_probe_read_user(&head, sizeof head, (const void *)ring) != 0) {
            uint64_t old = *(volatile uint64_t *)claim;
            if (!(old & (ENGINE_CLAIM_FROZEN | ENGINE_CLAIM_DEAD)))
                count(COUNTER_BATCH_UNREAD); // at least one event, unknown how many
        } else {
            uint64_t done = drain(pid, ring, index, head);
            if (done != DRAIN_NOT_MINE && done < head)
                count_n(COUNTER_BATCH_UNREAD, head - done); // reserved, never published
        }
        __sync_fetch_and_or(claim, ENGINE_CLAIM_DEAD);
        struct engine_ring_key key = {.ring = ring, .pid = pid};
        bpf_map_delete_elem(&rings, &key);
    }
    bpf_map_delete_elem(&thread_rings, &tid);
}

// A thread of a traced process is exiting (its process's memory is still mapped here).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_thread_exit, struct task_struct *task)
{
    read_rings_of_leaving_thread((uint32_t)bpf_get_current_pid_tgid());
    return 0;
}

// A thread is past the point of no return of an exec, the old program still mapped (Linux
// 6.10+; its other threads leave through on_thread_exit first).
SEC("tp_btf/sched_prepare_exec")
int BPF_PROG(on_prepare_exec, struct task_struct *task, struct linux_binprm *bprm)
{
    read_rings_of_leaving_thread((uint32_t)bpf_get_current_pid_tgid());
    return 0;
}
