// SPDX-License-Identifier: MIT
// flow.bpf.h: the flow (pymemtrace-engine --flow-fd): the py* probes' programs that send every
// event, as it happens, as one engine_event record through the `flow` ring buffer, instead of
// aggregating it. A record the full buffer refuses is counted by kind in `flow_lost`, never
// dropped unseen. A location's names go into `names` once (locate(), before the record is
// reserved), where the reader finds them before it writes the first event that uses them.
// Included at the end of engine.bpf.c: it uses that file's maps and helpers.

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 12); // sized by the loader (--flow-buffer); a page when no flow
} flow SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, EVENT_KINDS);
    __type(key, uint32_t);
    __type(value, uint64_t);
} flow_lost SEC(".maps");

// Whether an event goes into the flow: not while paused, nor a process ignored; counted in
// `counter` (the report's pyalloc, pyrealloc, pyfree, or alloc, realloc, free: every event the
// probes saw while not paused).
static __always_inline bool flow_takes(uint32_t counter)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return false;
    }
    if (ignored(current_pid()))
        return false;
    count(counter);
    return true;
}

// One event at `location` into the flow; counted in flow_lost[kind] if the buffer was full.
static __always_inline void flow_put(uint32_t kind, uint64_t ptr, uint64_t old_ptr,
                                     uint64_t size, int32_t domain, uint64_t location)
{
    const uint64_t pid_tgid = bpf_get_current_pid_tgid();
    struct engine_event *event = bpf_ringbuf_reserve(&flow, sizeof(*event), 0);
    if (!event) {
        uint64_t *lost = bpf_map_lookup_elem(&flow_lost, &kind);
        if (lost)
            *lost += 1; // per CPU: no other writer
        return;
    }
    event->time_ns = bpf_ktime_get_ns();
    event->ptr = ptr;
    event->old_ptr = old_ptr;
    event->size = size;
    event->location = location;
    event->pid = (uint32_t)(pid_tgid >> 32);
    event->tid = (uint32_t)pid_tgid;
    event->kind = kind;
    event->domain = domain;
    bpf_ringbuf_submit(event, 0); // the reader is woken only when it has caught up
}

// A py* probe's event into the flow, located by its own arguments.
static __always_inline void flow_send(uint32_t kind, uint32_t counter, uint64_t ptr,
                                      uint64_t old_ptr, uint64_t size, int32_t domain,
                                      uint64_t file, uint64_t function, int32_t line)
{
    if (flow_takes(counter))
        flow_put(kind, ptr, old_ptr, size, domain, locate(file, function, line));
}

SEC("usdt")
int BPF_USDT(on_pyalloc_flow, uint64_t ptr, uint64_t size, int32_t domain, uint64_t file,
             uint64_t function, int32_t line)
{
    flow_send(EVENT_PYALLOC, COUNTER_PYALLOC, ptr, 0, size, domain, file, function, line);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_pyrealloc_flow, uint64_t old_ptr, uint64_t new_ptr, uint64_t size,
             uint64_t file, uint64_t function, int32_t line)
{
    flow_send(EVENT_PYREALLOC, COUNTER_PYREALLOC, new_ptr, old_ptr, size, -1, file, function,
              line);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_pyfree_flow, uint64_t ptr, int32_t domain, uint64_t file, uint64_t function,
             int32_t line)
{
    flow_send(EVENT_PYFREE, COUNTER_PYFREE, ptr, 0, 0, domain, file, function, line);
    return 0;
}
