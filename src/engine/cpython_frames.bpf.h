// SPDX-License-Identifier: MIT
// cpython_frames.bpf.h (included by engine.bpf.c): --python-frames, the plain probes (alloc,
// realloc, free) located by CPython's own probes (function__entry, function__return, line) of
// the traced processes' Python binary, as toolkit/pymemtrace_pyframes.bt locates them. The
// loader attaches these programs per PID, so no other Python has its semaphores set.
//
// Each thread's Python stack is kept as toolkit/pymemtrace_pyframes.bt keeps it: by depth, the
// addresses of the running code's file and function names and its current line; the names are
// read only when an allocation is recorded. CPython 3.11 does not report the entry of
// Python-to-Python calls (it does report their returns): a line event from a frame not on top
// pushes it, one from the frame just below pops.

// Set by the loader before load (--python-frames): without it on_alloc and on_realloc keep
// location 0 and the verifier prunes the lookups.
const volatile uint32_t python_frames = 0;

struct cpython_frame_key {
    uint32_t tid;
    uint32_t depth;
};

struct cpython_frame {
    uint64_t file;
    uint64_t function;
    int32_t line;
    uint32_t reserved; /* 0 */
};

// The depth of each thread's stack (tid -> depth); 0: no Python frame known.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, uint32_t);
    __type(value, uint32_t);
} cpython_depth SEC(".maps");

// Each thread's frames by depth (1 is the outermost known).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 20);
    __type(key, struct cpython_frame_key);
    __type(value, struct cpython_frame);
} cpython_frames SEC(".maps");

// Frames the maps refused (a thread's stack then names the wrong frame): a loss the report
// states as `frames_full`.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, uint32_t);
    __type(value, uint64_t);
} cpython_frames_full SEC(".maps");

static __always_inline void frames_refused(void)
{
    uint32_t zero = 0;
    uint64_t *slot = bpf_map_lookup_elem(&cpython_frames_full, &zero);
    if (slot)
        *slot += 1;
}

static __always_inline uint32_t current_tid(void)
{
    return (uint32_t)bpf_get_current_pid_tgid();
}

static __always_inline uint32_t frame_depth(uint32_t tid)
{
    uint32_t *depth = bpf_map_lookup_elem(&cpython_depth, &tid);
    return depth ? *depth : 0;
}

static __always_inline void set_frame_depth(uint32_t tid, uint32_t depth)
{
    if (bpf_map_update_elem(&cpython_depth, &tid, &depth, BPF_ANY) != 0)
        frames_refused();
}

static __always_inline void put_frame(uint32_t tid, uint32_t depth, uint64_t file,
                                      uint64_t function, int32_t line)
{
    struct cpython_frame_key key = {.tid = tid, .depth = depth};
    struct cpython_frame frame = {.file = file, .function = function, .line = line};
    if (bpf_map_update_elem(&cpython_frames, &key, &frame, BPF_ANY) != 0)
        frames_refused();
}

// Whether the frame at `depth` runs (file, function): the same code object's names.
static __always_inline bool frame_is(uint32_t tid, uint32_t depth, uint64_t file,
                                     uint64_t function)
{
    struct cpython_frame_key key = {.tid = tid, .depth = depth};
    struct cpython_frame *frame = bpf_map_lookup_elem(&cpython_frames, &key);
    return frame && frame->file == file && frame->function == function;
}

static __always_inline void drop_frame(uint32_t tid, uint32_t depth)
{
    struct cpython_frame_key key = {.tid = tid, .depth = depth};
    bpf_map_delete_elem(&cpython_frames, &key);
}

// --python-call-stack's CALL and RTN events into the flow (call_stack.bpf.h, included later).
static __always_inline void call_stack_send(uint32_t kind, uint64_t file, uint64_t function,
                                            int32_t line, uint32_t depth);

// The location of the calling thread's innermost known Python frame (0: none).
static __always_inline uint64_t frame_location(void)
{
    if (!python_frames)
        return 0;
    uint32_t tid = current_tid();
    struct cpython_frame_key key = {.tid = tid, .depth = frame_depth(tid)};
    struct cpython_frame *frame = bpf_map_lookup_elem(&cpython_frames, &key);
    if (!frame)
        return 0;
    return locate(frame->file, frame->function, frame->line);
}

SEC("usdt")
int BPF_USDT(on_cpython_entry, uint64_t file, uint64_t function, int32_t line)
{
    uint32_t tid = current_tid();
    uint32_t depth = frame_depth(tid) + 1;
    put_frame(tid, depth, file, function, line);
    set_frame_depth(tid, depth);
    call_stack_send(EVENT_CALL, file, function, line, depth);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_cpython_line, uint64_t file, uint64_t function, int32_t line)
{
    uint32_t tid = current_tid();
    uint32_t depth = frame_depth(tid);
    if (!frame_is(tid, depth, file, function)) {
        if (depth > 0 && frame_is(tid, depth - 1, file, function)) {
            drop_frame(tid, depth); // returned to the frame below
            depth -= 1;
        } else {
            depth += 1; // a Python-to-Python call: entered without function__entry
        }
        set_frame_depth(tid, depth);
    }
    put_frame(tid, depth, file, function, line);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_cpython_return, uint64_t file, uint64_t function, int32_t line)
{
    uint32_t tid = current_tid();
    uint32_t depth = frame_depth(tid);
    call_stack_send(EVENT_RTN, file, function, line, depth);
    if (depth > 0 && frame_is(tid, depth, file, function)) {
        drop_frame(tid, depth);
        set_frame_depth(tid, depth - 1);
    }
    return 0;
}
