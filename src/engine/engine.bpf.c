// SPDX-License-Identifier: MIT
// engine.bpf.c: the engine's BPF programs. Three USDT programs on pymemtrace's py* probes keep
// the summary (events and bytes by process, location and domain) and the live blocks (leaks) in
// hash maps; two tracepoint programs follow the traced processes' forks and exits. The loader
// attaches the USDT programs per process (a PID-bound uprobe is installed only in that process),
// so every event that reaches these programs belongs to a traced process; or by path: with --all
// every process's events are kept (every_process.bpf.h), with --by-path only the traced
// processes' (by_path.bpf.h).
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <linux/types.h>
#include <stdbool.h> // before usdt.bpf.h, which uses bool

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

// engine.h's fixed-width types, without libc's <stdint.h> (it wants 32-bit glibc headers here).
typedef __u64 uint64_t;
typedef __u32 uint32_t;
typedef __s32 int32_t;
#include "engine.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL"; // GPL-only helpers: bpf_probe_read_user_str

// The kernel's types, only the fields read here; CO-RE finds them in the running kernel's BTF.
typedef struct {
    int counter;
} engine_atomic_t;
struct signal_struct {
    engine_atomic_t live;
} __attribute__((preserve_access_index));
typedef struct {
    unsigned int val;
} engine_kuid_t;
struct cred {
    engine_kuid_t uid, gid, suid, sgid, euid, egid;
} __attribute__((preserve_access_index));
struct task_struct {
    int pid;
    int tgid;
    int exit_code;
    struct signal_struct *signal;
    const struct cred *cred;
} __attribute__((preserve_access_index));
struct linux_binprm;

// Set by the loader through the skeleton's .bss: while nonzero, allocations and frees alike are
// counted (COUNTER_PAUSED) and not recorded, so that the maps can be read as one instant.
volatile uint32_t paused = 0;

// Set by the loader before load (--setid-stop): a traced process that execs a program changing
// its credentials leaves `traced`, and the probes ignore events of a process not in `traced`.
const volatile uint32_t setid_stop = 0;

// Sized by the loader before load (--max-live, --max-locations).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 21);
    __type(key, struct engine_live_key);
    __type(value, struct engine_live_value);
} live SEC(".maps");

// --batch: frees read before the allocation of their block (another thread's ring was read
// later), by the target's clock; sized as `live`.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 21);
    __type(key, struct engine_live_key);
    __type(value, struct engine_early_free);
} early SEC(".maps");

// --batch: 1 once anything was put in `early` (by BPF or the engine: batch.cpp): until then an
// allocation does not look there (an array's lookup is a load, a hash's costs tens of ns).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, uint32_t);
    __type(value, uint32_t);
} early_used SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, struct engine_summary_key);
    __type(value, struct engine_summary_value);
} summary SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1 << 16);
    __type(key, uint64_t);
    __type(value, struct engine_names);
} names SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, COUNTER_COUNT);
    __type(key, uint32_t);
    __type(value, uint64_t);
} counters SEC(".maps");

// One location's names, read before its id is known: too big for the 512-byte BPF stack.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, uint32_t);
    __type(value, struct engine_names);
} scratch SEC(".maps");

// The traced processes (tgid -> 1): the loader's, and every process they fork.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1 << 16);
    __type(key, uint32_t);
    __type(value, uint32_t);
} traced SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 18);
} records SEC(".maps");

static __always_inline void count(uint32_t counter)
{
    uint64_t *slot = bpf_map_lookup_elem(&counters, &counter);
    if (slot)
        *slot += 1; // per CPU: no other writer
}

// splitmix64's finaliser, as pymemtrace/python.h mixes frame ids.
static __always_inline uint64_t mix(uint64_t bits)
{
    bits ^= bits >> 30;
    bits *= 0xbf58476d1ce4e5b9ULL;
    bits ^= bits >> 27;
    bits *= 0x94d049bb133111ebULL;
    return bits ^ (bits >> 31);
}

// FNV-1a of a NUL-terminated name (at most ENGINE_NAME_BYTES).
static __always_inline uint64_t name_hash(const char *name)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (int i = 0; i < ENGINE_NAME_BYTES; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == 0)
            break;
        hash = (hash ^ c) * 0x100000001b3ULL;
    }
    return hash;
}

// The content id of (file, function, line) and, the first time it is seen, its names in `names`.
// The strings are read on every event (two bpf_probe_read_user_str): the target passes pointers
// whose text may change once a code object dies, so only the content identifies a location.
static __always_inline uint64_t locate(uint64_t file, uint64_t function, int32_t line)
{
    uint32_t zero = 0;
    struct engine_names *scratch_names = bpf_map_lookup_elem(&scratch, &zero);
    if (!scratch_names)
        return 0;
    long file_len = bpf_probe_read_user_str(scratch_names->file, ENGINE_NAME_BYTES,
                                            (const void *)file);
    long function_len = bpf_probe_read_user_str(scratch_names->function, ENGINE_NAME_BYTES,
                                                (const void *)function);
    if (file_len < 0)
        scratch_names->file[0] = 0;
    if (function_len < 0)
        scratch_names->function[0] = 0;
    if (scratch_names->file[0] == 0 && scratch_names->function[0] == 0 && line == 0)
        return 0; // no Python frame
    uint64_t id = mix(name_hash(scratch_names->file)
                      ^ mix(name_hash(scratch_names->function)
                            + 0x9e3779b97f4a7c15ULL * ((uint64_t)(uint32_t)line + 1)));
    if (id == 0)
        id = 1;
    if (!bpf_map_lookup_elem(&names, &id)) {
        scratch_names->line = line;
        scratch_names->truncated = file_len >= ENGINE_NAME_BYTES
                                   || function_len >= ENGINE_NAME_BYTES;
        if (bpf_map_update_elem(&names, &id, scratch_names, BPF_NOEXIST) != 0
            && !bpf_map_lookup_elem(&names, &id))
            count(COUNTER_NAMES_FULL);
    }
    return id;
}

#include "snapshot.bpf.h"
#include "every_process.bpf.h"
#include "by_path.bpf.h" // --by-path: only the traced processes' events are kept
#include "depth.bpf.h"
#include "native.bpf.h" // --native: the caller in the stack record
#include "follow.bpf.h" // --no-follow: forks are not traced
#include "histograms.bpf.h" // --histograms: the summary by size bucket too
#include "cpython_frames.bpf.h" // --python-frames: CPython's probes locate the plain ones

static __always_inline void add_to_summary(uint32_t pid, uint64_t location, int32_t domain,
                                           uint64_t size, uint64_t native)
{
    add_to_histogram(pid, location, domain, size);
    struct engine_summary_key key = {.location = location, .pid = pid, .domain = domain,
                                     .native = native};
    struct engine_summary_value *value = bpf_map_lookup_elem(&summary, &key);
    if (value) {
        __sync_fetch_and_add(&value->count, 1);
        __sync_fetch_and_add(&value->bytes, size);
        return;
    }
    struct engine_summary_value first = {.count = 1, .bytes = size};
    if (bpf_map_update_elem(&summary, &key, &first, BPF_NOEXIST) == 0)
        return;
    value = bpf_map_lookup_elem(&summary, &key); // another CPU made it meanwhile
    if (value) {
        __sync_fetch_and_add(&value->count, 1);
        __sync_fetch_and_add(&value->bytes, size);
    } else {
        count(COUNTER_SUMMARY_FULL);
    }
}

static __always_inline void keep(uint32_t pid, uint64_t ptr, uint64_t size, uint64_t location,
                                 int32_t domain, uint64_t native, uint64_t time)
{
    struct engine_live_key key = {.ptr = ptr, .pid = pid};
    struct engine_live_value value = {.size = size, .location = location, .domain = domain,
                                      .native = native, .time = time};
    snapshot_forget(&key); // a block whose free was not seen
    if (bpf_map_update_elem(&live, &key, &value, BPF_ANY) != 0)
        count(COUNTER_LIVE_FULL);
    else
        snapshot_change(pid, location, domain, size, 1);
}

static __always_inline uint32_t current_pid(void)
{
    return (uint32_t)(bpf_get_current_pid_tgid() >> 32);
}

// With --setid-stop, an event of a process that left `traced` (a set-ID exec) is not recorded:
// the loader detaches its probes on the record, and until then this check stands guard. With
// --by-path, an event of a process that is not traced (another process mapping the library).
static __always_inline bool ignored(uint32_t pid)
{
    enrol(pid); // --all: a process's first event makes it known
    return (setid_stop || traced_only) && !bpf_map_lookup_elem(&traced, &pid);
}

// A block forgotten (freed, or moved by a realloc); one not in the map was allocated before
// tracing started.
static __always_inline void forget(uint32_t pid, uint64_t ptr)
{
    struct engine_live_key key = {.ptr = ptr, .pid = pid};
    snapshot_forget(&key);
    if (bpf_map_delete_elem(&live, &key) != 0)
        count(COUNTER_UNMATCHED_FREE);
}

// Events carry a `time` (the target's clock) only in batches (--batch), where a block allocated
// by one thread and freed by another can be read in either order; single events (time 0) are
// recorded as they happen.

// The live block `key` if a free at `time` frees it: one allocated before (or any, untimed).
static __always_inline struct engine_live_value *live_before(struct engine_live_key *key,
                                                             uint64_t time)
{
    struct engine_live_value *value = bpf_map_lookup_elem(&live, key);
    if (value && time != 0 && value->time > time)
        return 0; // a later allocation at the same address: this free's block is not read yet
    return value;
}

// A timed free or realloc whose block is not live (yet): remembered for its allocation.
static __always_inline void free_early(uint32_t pid, uint64_t ptr, uint64_t time, uint32_t moved)
{
    if (time == 0)
        return;
    struct engine_live_key key = {.ptr = ptr, .pid = pid};
    struct engine_early_free early_free = {.time = time, .moved = moved};
    uint32_t zero = 0;
    uint32_t *used = bpf_map_lookup_elem(&early_used, &zero);
    if (used && !*used)
        *used = 1; // before the insert: an allocation that finds it set looks
    if (bpf_map_update_elem(&early, &key, &early_free, BPF_ANY) != 0)
        count(COUNTER_BATCH_UNORDERED);
}

// Whether a timed allocation's block was freed already (that free was read first): then it is
// not kept, and the free is matched.
static __always_inline bool freed_already(uint32_t pid, uint64_t ptr, uint64_t time)
{
    uint32_t zero = 0;
    uint32_t *used = bpf_map_lookup_elem(&early_used, &zero);
    if (time == 0 || (used && !*used))
        return false;
    struct engine_live_key key = {.ptr = ptr, .pid = pid};
    struct engine_early_free *found = bpf_map_lookup_elem(&early, &key);
    if (!found || found->time < time)
        return false;
    count(found->moved ? COUNTER_BATCH_MOVED_FIRST : COUNTER_BATCH_FREED_FIRST);
    bpf_map_delete_elem(&early, &key);
    return true;
}

// A free (pyfree, or free with --plain), counted in `counter`: what on_pyfree and a batch's
// free event do.
static __always_inline void record_free(uint32_t pid, uint64_t ptr, uint32_t counter,
                                        uint64_t time)
{
    count(counter);
    if (ptr == 0) {
        count(COUNTER_FREE_NULL);
        return;
    }
    if (time == 0) {
        forget(pid, ptr);
        return;
    }
    struct engine_live_key key = {.ptr = ptr, .pid = pid};
    if (live_before(&key, time)) {
        snapshot_forget(&key);
        bpf_map_delete_elem(&live, &key);
        return;
    }
    count(COUNTER_UNMATCHED_FREE);
    free_early(pid, ptr, time, 0);
}

// A free probe (pyfree, or free with --plain), counted in `counter`.
static __always_inline void freed(uint64_t ptr, uint32_t counter)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return;
    record_free(pid, ptr, counter, 0);
}

// An allocation at `location`: what on_pyalloc and a batch's alloc event do.
static __always_inline void record_alloc(uint32_t pid, uint64_t ptr, uint64_t size,
                                         int32_t domain, uint64_t location, uint64_t native,
                                         uint64_t time)
{
    add_to_summary(pid, location, domain, size, native);
    if (!freed_already(pid, ptr, time))
        keep(pid, ptr, size, location, domain, native, time);
    count(COUNTER_PYALLOC);
}

// A live block moved or resized (old and new non-NULL): it keeps its domain, -1 when it was
// allocated before tracing started. The summary counts it under -1, as the bpftrace runner's
// summary does (the pyrealloc probe carries no domain): "realloc" in its tables and histograms.
// What on_pyrealloc and a batch's realloc event do.
static __always_inline void record_realloc(uint32_t pid, uint64_t old_ptr, uint64_t new_ptr,
                                           uint64_t size, uint64_t location, uint64_t native,
                                           uint64_t time)
{
    struct engine_live_key old_key = {.ptr = old_ptr, .pid = pid};
    struct engine_live_value *old_value = live_before(&old_key, time);
    int32_t domain = -1;
    if (old_value) {
        domain = old_value->domain;
        snapshot_forget(&old_key);
        bpf_map_delete_elem(&live, &old_key);
    } else {
        count(COUNTER_UNMATCHED_REALLOC);
        free_early(pid, old_ptr, time, 1);
    }
    add_to_summary(pid, location, -1, size, native);
    if (!freed_already(pid, new_ptr, time))
        keep(pid, new_ptr, size, location, domain, native, time);
    count(COUNTER_PYREALLOC);
}

SEC("usdt")
int BPF_USDT(on_pyalloc, uint64_t ptr, uint64_t size, int32_t domain, uint64_t file,
             uint64_t function, int32_t line, uint64_t stack)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return 0;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return 0;
    record_alloc(pid, ptr, size, domain, where(pid, file, function, line, stack),
                 native_of(ctx, stack), 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_pyrealloc, uint64_t old_ptr, uint64_t new_ptr, uint64_t size, uint64_t file,
             uint64_t function, int32_t line, uint64_t stack)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return 0;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return 0;
    record_realloc(pid, old_ptr, new_ptr, size, where(pid, file, function, line, stack),
                   native_of(ctx, stack), 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_pyfree, uint64_t ptr)
{
    freed(ptr, COUNTER_PYFREE);
    return 0;
}

// --plain: the probes without a Python location, for C and C++ programs and libraries. They
// report calls as they happen (docs/probes.md), so realloc is sorted out here; every event has
// location 0. The loader attaches either these or the py* programs, never both (an extension's
// wrappers fire both: its events would count twice).
SEC("usdt")
int BPF_USDT(on_alloc, uint64_t ptr, uint64_t size, int32_t domain)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return 0;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return 0;
    uint64_t location = frame_location(); // 0 unless --python-frames
    add_to_summary(pid, location, domain, size, 0);
    keep(pid, ptr, size, location, domain, 0, 0);
    count(COUNTER_ALLOC);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_realloc, uint64_t old_ptr, uint64_t new_ptr, uint64_t size, int32_t domain)
{
    if (paused) {
        count(COUNTER_PAUSED);
        return 0;
    }
    uint32_t pid = current_pid();
    if (ignored(pid))
        return 0;
    count(COUNTER_REALLOC);
    if (new_ptr == 0) {
        if (old_ptr != 0 && size == 0)
            forget(pid, old_ptr); // realloc(p, 0): glibc released p
        return 0;                 // otherwise it failed: p, if any, is still live
    }
    if (old_ptr != 0)
        forget(pid, old_ptr); // moved or resized: the old block is the new one now
    uint64_t location = frame_location(); // 0 unless --python-frames
    // --python-frames sums reallocs under "realloc" (-1), as the py* reports and
    // pymemtrace_pyframes.bt do; the block keeps its domain.
    add_to_summary(pid, location, python_frames ? -1 : domain, size, 0);
    keep(pid, new_ptr, size, location, domain, 0, 0);
    return 0;
}

SEC("usdt")
int BPF_USDT(on_free, uint64_t ptr)
{
    freed(ptr, COUNTER_FREE);
    return 0;
}

#include "object_allocator.bpf.h" // --allocator: the Python binary's allocator functions
#include "batch.bpf.h" // --batch: the pybatch program and the rings of exiting threads

static __always_inline void send(uint32_t kind, uint32_t pid, uint32_t parent, int32_t exit_code)
{
    struct engine_record *record = bpf_ringbuf_reserve(&records, sizeof(*record), 0);
    if (!record) {
        count(COUNTER_RECORDS_LOST);
        return;
    }
    record->kind = kind;
    record->pid = pid;
    record->parent = parent;
    record->exit_code = exit_code;
    record->time_ns = bpf_ktime_get_ns();
    bpf_ringbuf_submit(record, 0);
}

// A traced process made a new process (not a thread): trace it too. The loader attaches the
// probes for it when the record arrives; until then its probe hits are not delivered.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
    uint32_t parent_tgid = (uint32_t)BPF_CORE_READ(parent, tgid);
    uint32_t child_pid = (uint32_t)BPF_CORE_READ(child, pid);
    uint32_t child_tgid = (uint32_t)BPF_CORE_READ(child, tgid);
    if (every_process || child_pid != child_tgid || !bpf_map_lookup_elem(&traced, &parent_tgid))
        return 0; // --all: the child is traced by the path attach, and known by its first event
    if (no_follow)
        return 0;
    uint32_t one = 1;
    bpf_map_update_elem(&traced, &child_tgid, &one, BPF_ANY);
    send(RECORD_FORK, child_tgid, parent_tgid, 0);
    return 0;
}

// The last thread of a traced process ended: its exit status, as wait(2) would give it.
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
    uint32_t tgid = (uint32_t)BPF_CORE_READ(task, tgid);
    if (!bpf_map_lookup_elem(&traced, &tgid))
        return 0;
    if (BPF_CORE_READ(task, signal, live.counter) != 0)
        return 0; // other threads still run
    bpf_map_delete_elem(&traced, &tgid);
    send(RECORD_EXIT, tgid, 0, BPF_CORE_READ(task, exit_code));
    return 0;
}

// With --setid-stop: a traced process that has just exec'd a program that gave it other
// credentials (set-user-ID or set-group-ID: effective or saved IDs unlike the real ones, the new
// ones being committed by now) is traced no more, and what it forks is not followed.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
    if (!setid_stop)
        return 0;
    uint32_t tgid = (uint32_t)BPF_CORE_READ(task, tgid);
    if (!bpf_map_lookup_elem(&traced, &tgid))
        return 0;
    const struct cred *cred = BPF_CORE_READ(task, cred);
    unsigned int uid = BPF_CORE_READ(cred, uid.val), gid = BPF_CORE_READ(cred, gid.val);
    if (BPF_CORE_READ(cred, euid.val) == uid && BPF_CORE_READ(cred, suid.val) == uid
        && BPF_CORE_READ(cred, egid.val) == gid && BPF_CORE_READ(cred, sgid.val) == gid)
        return 0;
    bpf_map_delete_elem(&traced, &tgid);
    send(RECORD_SETID, tgid, 0, 0);
    return 0;
}

#include "flow.bpf.h" // the flow: every event through a ring buffer (--flow-fd)
#include "cpython_flow.bpf.h" // the flow of --python-frames
#include "allocator_flow.bpf.h" // the flow of --allocator
#include "call_stack.bpf.h" // --python-call-stack: Python's calls and returns in the flow
#include "mappings.bpf.h" // libraries mapped after the engine started
#include "signals.bpf.h" // --report-signals: who sent a stop signal to whom
