// SPDX-License-Identifier: MIT
// object_allocator.bpf.h (included by engine.bpf.c): --allocator PREFIX, the Python binary's
// own allocator functions (PREFIX Malloc, Calloc, Realloc, Free: PyObject_* or PyMem_Raw*) by
// uprobes and uretprobes attached per traced process, located by CPython's probes
// (cpython_frames.bpf.h), as toolkit/py_object_*_WITH_PYMALLOC.bt traces them and the runner's
// replay.py sums them: a call that returned a block counts under the one domain given
// (`allocator_domain`), a realloc moves its block, a realloc to size 0 that returned NULL frees
// it, calls inside a realloc are not counted again.

// Set by the loader before load (--allocator-domain).
const volatile int32_t allocator_domain = 0;

enum allocator_kind { ALLOCATOR_MALLOC = 0, ALLOCATOR_CALLOC = 1, ALLOCATOR_REALLOC = 2 };

struct allocator_call_key {
    uint32_t tid;
    uint32_t kind; /* enum allocator_kind */
};

struct allocator_call {
    uint64_t size;
    uint64_t old_ptr; /* realloc's block */
};

// The calls in progress, by thread and function: what the return needs from the entry.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, struct allocator_call_key);
    __type(value, struct allocator_call);
} allocator_calls SEC(".maps");

static __always_inline bool in_call(uint32_t tid, uint32_t kind)
{
    struct allocator_call_key key = {.tid = tid, .kind = kind};
    return bpf_map_lookup_elem(&allocator_calls, &key) != 0;
}

static __always_inline void call_entered(uint32_t kind, uint64_t size, uint64_t old_ptr)
{
    uint32_t tid = current_tid();
    if (kind != ALLOCATOR_REALLOC && in_call(tid, ALLOCATOR_REALLOC))
        return; // inside a realloc: its own call is the event
    struct allocator_call_key key = {.tid = tid, .kind = kind};
    struct allocator_call call = {.size = size, .old_ptr = old_ptr};
    if (bpf_map_update_elem(&allocator_calls, &key, &call, BPF_ANY) != 0)
        frames_refused(); // its event is lost: counted with the frames
}

// The call of `kind` this thread returns from (0 when its entry was not kept), forgotten.
static __always_inline bool call_returned(uint32_t kind, struct allocator_call *call)
{
    struct allocator_call_key key = {.tid = current_tid(), .kind = kind};
    struct allocator_call *found = bpf_map_lookup_elem(&allocator_calls, &key);
    if (!found)
        return false;
    *call = *found;
    bpf_map_delete_elem(&allocator_calls, &key);
    return true;
}

static __always_inline void allocated(uint64_t ptr, uint64_t size, uint32_t counter)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return;
    count(counter);
    if (ptr == 0)
        return; // failed: nothing allocated
    uint64_t location = frame_location();
    add_to_summary(pid, location, allocator_domain, size, 0);
    keep(pid, ptr, size, location, allocator_domain, 0, 0);
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_malloc, uint64_t size)
{
    call_entered(ALLOCATOR_MALLOC, size, 0);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_allocator_malloc_return, uint64_t ptr)
{
    struct allocator_call call;
    if (call_returned(ALLOCATOR_MALLOC, &call))
        allocated(ptr, call.size, COUNTER_ALLOC);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_calloc, uint64_t count, uint64_t size)
{
    call_entered(ALLOCATOR_CALLOC, count * size, 0);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_allocator_calloc_return, uint64_t ptr)
{
    struct allocator_call call;
    if (call_returned(ALLOCATOR_CALLOC, &call))
        allocated(ptr, call.size, COUNTER_ALLOC);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_realloc, uint64_t old_ptr, uint64_t size)
{
    call_entered(ALLOCATOR_REALLOC, size, old_ptr);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_allocator_realloc_return, uint64_t ptr)
{
    struct allocator_call call;
    if (!call_returned(ALLOCATOR_REALLOC, &call))
        return 0;
    if (paused) {
        count(COUNTER_PAUSED);
        return 0;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return 0;
    if (call.old_ptr != 0 && (ptr != 0 || call.size == 0))
        forget(pid, call.old_ptr); // moved, or released by realloc(p, 0)
    allocated(ptr, call.size, COUNTER_REALLOC);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_allocator_free, uint64_t ptr)
{
    if (!in_call(current_tid(), ALLOCATOR_REALLOC))
        freed(ptr, COUNTER_FREE);
    return 0;
}
