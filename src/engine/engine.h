/* SPDX-License-Identifier: MIT
 * engine.h: the records and map layouts that the engine's BPF programs (engine.bpf.c) and its
 * loader (C++) share, so that the two sides cannot disagree. Plain C, fixed-width types only:
 * the BPF side has no libc.
 */
#ifndef PYMEMTRACE_ENGINE_H
#define PYMEMTRACE_ENGINE_H

/* The longest file or function name kept; longer ones are cut and flagged. */
#define ENGINE_NAME_BYTES 256

/* Counters, one slot each in the per-CPU `counters` array: every event and every refusal, so
 * that a report can say exactly what it holds and what it lost. */
enum engine_counter {
    COUNTER_PYALLOC = 0,        /* pyalloc events recorded */
    COUNTER_PYREALLOC,          /* pyrealloc events recorded */
    COUNTER_PYFREE,             /* pyfree events recorded (NULL included) */
    COUNTER_FREE_NULL,          /* pyfree(NULL): nothing to forget */
    COUNTER_UNMATCHED_FREE,     /* pyfree of a block not live in the map (allocated before tracing) */
    COUNTER_UNMATCHED_REALLOC,  /* pyrealloc of such a block: its domain is unknown (-1) */
    COUNTER_LIVE_FULL,          /* a block the live map refused: missing from the leaks (loss) */
    COUNTER_SUMMARY_FULL,       /* an event the summary map refused (loss) */
    COUNTER_NAMES_FULL,         /* a location whose names the names map refused (loss of names) */
    COUNTER_PAUSED,             /* events that arrived while recording was paused */
    COUNTER_RECORDS_LOST,       /* fork/exit records the ring buffer refused (loss) */
    COUNTER_ALLOC,              /* alloc events recorded (--plain) */
    COUNTER_REALLOC,            /* realloc events recorded (--plain; failed ones included) */
    COUNTER_FREE,               /* free events recorded (--plain; NULL included) */
    COUNTER_SNAPSHOT_ROWS_FULL, /* --interval: a block the live_rows map refused (loss) */
    COUNTER_BATCHES,            /* --batch: pybatch fires and thread exits read (batch.bpf.h) */
    COUNTER_BATCH_OVERWRITTEN,  /* --batch: events a ring overwrote before they were read (loss) */
    COUNTER_BATCH_UNREAD,       /* --batch: events of a ring that could not be read (loss) */
    COUNTER_BATCH_RINGS_FULL,   /* --batch: rings beyond the claims map or 4 a thread (loss) */
    COUNTER_BATCH_FREED_FIRST,  /* --batch: a free read before its block's allocation (another
                                   thread's ring), matched when the allocation came: counted in
                                   unmatched_free first */
    COUNTER_BATCH_MOVED_FIRST,  /* --batch: the same for a realloc (in unmatched_realloc first) */
    COUNTER_BATCH_UNORDERED,    /* --batch: a free of a block not seen yet that could not be
                                   remembered (the early map full): its block may show live (loss) */
    COUNTER_CALL,               /* --python-call-stack: Python calls sent (call_stack.bpf.h) */
    COUNTER_RTN,                /* --python-call-stack: Python returns sent */
    COUNTER_COUNT
};

/* Where an event happened: a content id of (file, function, line), mixed in BPF from the names'
 * bytes, so that it means the same thing whatever addresses the names had. 0: no location. */
struct engine_summary_key {
    uint64_t location;
    uint32_t pid;
    int32_t domain;
    uint64_t native; /* --native: the library's index << 48 | the caller's offset; 0 else */
};

struct engine_summary_value {
    uint64_t count;
    uint64_t bytes;
};

struct engine_live_key {
    uint64_t ptr;
    uint32_t pid;
    uint32_t reserved; /* 0 */
};

struct engine_live_value {
    uint64_t size;
    uint64_t location;
    int32_t domain;
    uint32_t reserved; /* 0 */
    uint64_t native;   /* as engine_summary_key's */
    uint64_t time;     /* --batch: when it was allocated (the target's clock); 0: single event */
};

/* --batch: a free (or realloc) read before the allocation of its block, by the target's clock:
 * the allocation, read later from another thread's ring, finds it here and is not kept live. */
struct engine_early_free {
    uint64_t time;
    uint32_t moved; /* 1: a realloc's old block */
    uint32_t reserved;
};

/* --native: where the py* probes' stack record holds the native caller (include/pymemtrace/
 * location.h: 8 + 16 frames of 40 bytes), and how a key names the library (its index, the
 * usdt cookie of its attach) above the offset. */
#define ENGINE_NATIVE_AT 648
#define ENGINE_NATIVE_LIBRARY_SHIFT 48

/* The names of a location, written once per content id. */
struct engine_names {
    char file[ENGINE_NAME_BYTES];
    char function[ENGINE_NAME_BYTES];
    int32_t line;
    uint32_t truncated; /* 1: a name was longer than ENGINE_NAME_BYTES - 1 bytes and was cut */
};

/* Records of the ring buffer: how the traced processes come and go. */
enum engine_record_kind { RECORD_FORK = 1, RECORD_EXIT = 2, RECORD_SETID = 3,
                          RECORD_PROCESS = 4 /* --all: a process's first event */,
                          RECORD_MAP = 5 /* a traced process mapped a file executable */ };

struct engine_record {
    uint32_t kind;
    uint32_t pid;      /* the new process (fork) or the one that ended (exit) */
    uint32_t parent;   /* fork: the traced process that forked */
    int32_t exit_code; /* exit: as wait(2) encodes it (status << 8, or the signal) */
    uint64_t time_ns;  /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
};

/* RECORD_MAP: a traced process mapped a file executable (mappings.bpf.h), at time_ns, after
 * the mapping was made. device is the kernel's encoding (major << 20 | minor). */
struct engine_map_record {
    uint32_t kind;
    uint32_t pid;
    uint64_t time_ns;
    uint64_t inode;
    uint64_t start, end; /* the mapping's range: its /proc/PID/map_files name */
    uint32_t device;
    uint32_t reserved; /* 0 */
};

/* --depth N: a Python stack of N frames, by process and the target's stack id (its frames'
 * content mixed: docs/probes.md), and its names, written once per (pid, id). */
#define ENGINE_STACK_FRAMES 16

struct engine_stack_key {
    uint64_t stack;
    uint32_t pid;
    uint32_t reserved; /* 0 */
};

struct engine_frame_names {
    char file[ENGINE_NAME_BYTES];
    char function[ENGINE_NAME_BYTES];
    int32_t line;
    uint32_t truncated; /* 1: a name was cut */
};

struct engine_stack_names {
    uint32_t depth; /* frames filled: the plan's N */
    uint32_t reserved;
    struct engine_frame_names frames[ENGINE_STACK_FRAMES]; /* 0: the innermost */
};

/* --interval: the live blocks by (pid, location, domain), kept as changes per epoch. Events of
 * epoch e add to slot e & 1; a snapshot moves the epoch on and reads the slot that stopped
 * changing (snapshot.hpp). Counts and bytes go down as well as up: unsigned, wrapping. */
struct engine_live_row {
    uint64_t count[2];
    uint64_t bytes[2];
};

/* The flow (--flow-fd, flow.bpf.h): every py* event as it happens, one record each through the
 * `flow` ring buffer, in the order the events reserved their place (per thread: the order they
 * happened). A location's names are not in the record: `names` holds them, once per id. */
enum engine_event_kind {
    EVENT_PYALLOC = 0,
    EVENT_PYREALLOC = 1,
    EVENT_PYFREE = 2,
    /* --allocator's calls (allocator_flow.bpf.h), ptr the block returned (NULL included) or
     * freed, domain the allocator's: */
    EVENT_MALLOC = 3,  /* size */
    EVENT_CALLOC = 4,  /* old_ptr: the count, size: the element's size */
    EVENT_REALLOC = 5, /* old_ptr: the block given, size */
    EVENT_FREE = 6,
    EVENT_CALL = 7, /* --python-call-stack: a Python function entered (call_stack.bpf.h) */
    EVENT_RTN = 8,  /* --python-call-stack: one returned */
    EVENT_KINDS
};

struct engine_event {
    uint64_t time_ns;  /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
    uint64_t ptr;      /* the block: allocated, freed, or where a realloc moved it */
    uint64_t old_ptr;  /* pyrealloc: the block it moved; 0 otherwise */
    uint64_t size;     /* 0 for pyfree; EVENT_CALL, EVENT_RTN: the depth of the Python stack */
    uint64_t location; /* content id of (file, function, line), as the summary's; 0: no frame */
    uint32_t pid;
    uint32_t tid;
    uint32_t kind;     /* enum engine_event_kind */
    int32_t domain;    /* pyrealloc: -1 (its probe carries none) */
};

/* --batch (batch.bpf.h, batch.cpp): the target's rings, pymemtrace/batch.h's layout. */
#define PYMEMTRACE_BATCH_LAYOUT_ONLY 1
#include "pymemtrace/batch.h"

/* A ring, by the process and address that announced it. */
struct engine_ring_key {
    uint64_t ring;
    uint32_t pid;
    uint32_t reserved; /* 0 */
};

struct engine_ring_value {
    uint32_t index; /* its word in `claims` */
    uint32_t tid;   /* the thread that writes it */
};

/* The rings a thread writes (one per traced library), read when it exits. */
#define ENGINE_RINGS_PER_THREAD 4
struct engine_thread_rings {
    uint64_t ring[ENGINE_RINGS_PER_THREAD];
    uint32_t index[ENGINE_RINGS_PER_THREAD];
};

/* A word of `claims`: the sequence number up to which a ring's events are read (by BPF or by
 * the engine, whoever swaps the word first), and two flags. */
#define ENGINE_CLAIM_FROZEN (1ULL << 63) /* the report read it: BPF reads it no more */
#define ENGINE_CLAIM_DEAD (1ULL << 62)   /* its thread exited, its events all read */
#define ENGINE_CLAIM_SEQ (ENGINE_CLAIM_DEAD - 1)
#define ENGINE_MAX_RINGS 65536

#endif /* PYMEMTRACE_ENGINE_H */
