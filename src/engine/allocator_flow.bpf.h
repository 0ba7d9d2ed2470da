// SPDX-License-Identifier: MIT
// allocator_flow.bpf.h (included by engine.bpf.c after flow.bpf.h and object_allocator.bpf.h):
// the flow of --allocator, each call of the allocator functions into the `flow` ring buffer as
// one record of kind malloc, calloc, realloc or free (engine.h), located by CPython's probes, as
// toolkit/py_flow_malloc_free.bt and py_object_*.bt print them: every call that returned, its
// result whatever it was (NULL included), at its return; every free at its entry; calls made
// inside a realloc (glibc's realloc(NULL, n) and realloc(p, 0) call malloc and free) not sent
// again. The entries keep their arguments in object_allocator.bpf.h's `allocator_calls`.

// One returned call into the flow, counted in `counter`.
static __always_inline void allocator_flow_put(uint32_t kind, uint32_t counter, uint64_t ptr,
                                               uint64_t old_ptr, uint64_t size)
{
    if (flow_takes(counter))
        flow_put(kind, ptr, old_ptr, size, allocator_domain, frame_location());
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_malloc_flow, uint64_t size)
{
    call_entered(ALLOCATOR_MALLOC, size, 0);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_allocator_malloc_return_flow, uint64_t ptr)
{
    struct allocator_call call;
    if (call_returned(ALLOCATOR_MALLOC, &call))
        allocator_flow_put(EVENT_MALLOC, COUNTER_ALLOC, ptr, 0, call.size);
    return 0;
}

// calloc's two arguments travel as they were given: the count in the record's old_ptr.
SEC("uprobe")
int BPF_KPROBE(on_allocator_calloc_flow, uint64_t count, uint64_t size)
{
    call_entered(ALLOCATOR_CALLOC, size, count);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_allocator_calloc_return_flow, uint64_t ptr)
{
    struct allocator_call call;
    if (call_returned(ALLOCATOR_CALLOC, &call))
        allocator_flow_put(EVENT_CALLOC, COUNTER_ALLOC, ptr, call.old_ptr, call.size);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_realloc_flow, uint64_t old_ptr, uint64_t size)
{
    call_entered(ALLOCATOR_REALLOC, size, old_ptr);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_allocator_realloc_return_flow, uint64_t ptr)
{
    struct allocator_call call;
    if (call_returned(ALLOCATOR_REALLOC, &call))
        allocator_flow_put(EVENT_REALLOC, COUNTER_REALLOC, ptr, call.old_ptr, call.size);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_free_flow, uint64_t ptr)
{
    if (!in_call(current_tid(), ALLOCATOR_REALLOC))
        allocator_flow_put(EVENT_FREE, COUNTER_FREE, ptr, 0, 0);
    return 0;
}
