// SPDX-License-Identifier: MIT
// depth.bpf.h (included by engine.bpf.c): --depth N, Python stacks of N frames. The py* probes'
// seventh argument is the thread's stack record (docs/probes.md), filled by the target while a
// tracer is attached to pystack4 or pystack16 (on_stack_request, which never fires). An event's
// location is then the record's id of its N innermost frames, and the frames' names are read
// into `stack_names` once per (pid, id): no names are read per event.

// Set by the loader before load (--depth): 0 (off, pruned by the verifier) or 2..16.
const volatile uint32_t stack_depth = 0;

// Sized by the loader before load (--max-locations).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, struct engine_stack_key);
    __type(value, struct engine_stack_names);
} stack_names SEC(".maps");

// One stack's names, made before they go into the map: too big for the BPF stack.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, uint32_t);
    __type(value, struct engine_stack_names);
} stack_scratch SEC(".maps");

// struct pymemtrace_stack (include/pymemtrace/location.h): offsets in bytes.
#define RECORD_REQUESTED 4
#define RECORD_FRAMES 8
#define FRAME_BYTES 40
#define FRAME_STACK 8
#define FRAME_FILE 16
#define FRAME_FUNCTION 24
#define FRAME_LINE 32

// The names of the stack `id` of process `pid`, read from `record` the first time it is seen.
static __always_inline void name_stack(uint32_t pid, uint64_t id, uint64_t record)
{
    struct engine_stack_key key = {.stack = id, .pid = pid};
    if (bpf_map_lookup_elem(&stack_names, &key))
        return;
    uint32_t zero = 0;
    struct engine_stack_names *names = bpf_map_lookup_elem(&stack_scratch, &zero);
    if (!names)
        return;
    names->depth = stack_depth;
    names->reserved = 0;
    for (uint32_t i = 0; i < ENGINE_STACK_FRAMES; i++) {
        struct engine_frame_names *frame = &names->frames[i];
        frame->file[0] = frame->function[0] = 0;
        frame->line = 0;
        frame->truncated = 0;
        if (i >= stack_depth)
            continue;
        uint64_t at = record + RECORD_FRAMES + FRAME_BYTES * i;
        uint64_t file = 0, function = 0;
        bpf_probe_read_user(&file, sizeof file, (const void *)(at + FRAME_FILE));
        bpf_probe_read_user(&function, sizeof function, (const void *)(at + FRAME_FUNCTION));
        bpf_probe_read_user(&frame->line, sizeof frame->line, (const void *)(at + FRAME_LINE));
        long file_len = file ? bpf_probe_read_user_str(frame->file, ENGINE_NAME_BYTES,
                                                       (const void *)file) : 0;
        long function_len = function ? bpf_probe_read_user_str(frame->function,
                                                                ENGINE_NAME_BYTES,
                                                                (const void *)function) : 0;
        if (file_len < 0)
            frame->file[0] = 0;
        if (function_len < 0)
            frame->function[0] = 0;
        frame->truncated = file_len >= ENGINE_NAME_BYTES || function_len >= ENGINE_NAME_BYTES;
    }
    if (bpf_map_update_elem(&stack_names, &key, names, BPF_NOEXIST) != 0
        && !bpf_map_lookup_elem(&stack_names, &key))
        count(COUNTER_NAMES_FULL);
}

// The id of the N innermost frames in the record at `record` (0: no record, one filled for a
// shallower request, or no Python frame), its names kept once.
static __always_inline uint64_t stack_of(uint32_t pid, uint64_t record)
{
    if (record == 0)
        return 0;
    uint32_t requested = 0;
    bpf_probe_read_user(&requested, sizeof requested, (const void *)(record + RECORD_REQUESTED));
    if (requested < stack_depth) // another tracer's smaller request filled it
        return 0;
    uint64_t id = 0;
    bpf_probe_read_user(&id, sizeof id, (const void *)(record + RECORD_FRAMES
                                                       + FRAME_BYTES * (stack_depth - 1)
                                                       + FRAME_STACK));
    if (id != 0)
        name_stack(pid, id, record);
    return id;
}

// The event's location: the stack id at --depth N, else the content id of its names.
static __always_inline uint64_t where(uint32_t pid, uint64_t file, uint64_t function,
                                      int32_t line, uint64_t record)
{
    if (stack_depth > 1)
        return stack_of(pid, record);
    return locate(file, function, line);
}

// Attached to pystack4 or pystack16 (--depth): it never fires; attached, it is the request.
SEC("usdt")
int on_stack_request(struct pt_regs *ctx)
{
    return 0;
}
