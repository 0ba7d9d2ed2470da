// SPDX-License-Identifier: MIT
// cpython_flow.bpf.h (included by engine.bpf.c after flow.bpf.h): the flow of --python-frames,
// the plain probes' events located by CPython's probes (cpython_frames.bpf.h), each into the
// `flow` ring buffer as the py* flow's records (kinds pyalloc, pyrealloc, pyfree), as
// toolkit/pymemtrace_pyframes.bt prints them in its flow: every alloc and free, and every
// realloc but a failed one (NULL returned for a size other than 0), which it does not print.

SEC("usdt")
int BPF_USDT(on_alloc_flow, uint64_t ptr, uint64_t size, int32_t domain)
{
    if (flow_takes(COUNTER_ALLOC))
        flow_put(EVENT_PYALLOC, ptr, 0, size, domain, frame_location());
    return 0;
}

SEC("usdt")
int BPF_USDT(on_realloc_flow, uint64_t old_ptr, uint64_t new_ptr, uint64_t size, int32_t domain)
{
    if (new_ptr == 0 && size != 0)
        return 0; // failed: not an event of the flow (the block, if any, is still live)
    if (flow_takes(COUNTER_REALLOC))
        flow_put(EVENT_PYREALLOC, new_ptr, old_ptr, size, domain, frame_location());
    return 0;
}

SEC("usdt")
int BPF_USDT(on_free_flow, uint64_t ptr, int32_t domain)
{
    if (flow_takes(COUNTER_FREE))
        flow_put(EVENT_PYFREE, ptr, 0, 0, domain, frame_location());
    return 0;
}
