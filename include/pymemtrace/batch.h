/* SPDX-License-Identifier: MIT
 * pymemtrace/batch.h: the py* events in batches, for a tracer that reads them from the target's
 * memory (pymemtrace-engine --batch) instead of taking one uprobe trap per event.
 *
 * While a tracer is attached to `pybatch` (and, as always, to the py* probes, whose semaphores
 * the wrappers' one compare tests), the cold path appends each py* event to its thread's ring
 * (one per thread and shared object) and fires `pybatch(ring, last)` once every
 * PYMEMTRACE_BATCH_EVENTS events, and at once when the event's Python frame is one this thread
 * has not sent yet (so that its names are read while its code object surely lives). A thread's
 * first event fires `pybatch(ring, 0)`: the ring's address, announced once. The tracer keeps, per
 * ring, the sequence number up to which it has read ("claimed"); it reads the rest of a ring from
 * the target's memory when it reports, and when a thread exits (the mm is still there at the
 * kernel's sched_process_exit): nothing stays behind, nothing is read twice.
 *
 * Layout (tracers read it at these offsets; src/engine/batch.bpf.h):
 *   ring:  u64 head (events reserved: the last sequence number handed out; the first is 1),
 *          then PYMEMTRACE_BATCH_SLOTS events, event `seq` in slot seq % SLOTS.
 *   event: 88 bytes, below. `seq` is written 0 first and its number last (release): a reader
 *          that sees the number it expects, before and after copying the fields, has them whole.
 * Async-signal-safe: a slot is reserved with one instruction (a handler that interrupts an append
 * takes the next one), and a reader stops at a slot not yet published; its event is read with
 * the next batch, or counted as lost if 128 later events overwrote it first.
 * Fork: the child's copy of the forking thread's ring is emptied (pthread_atfork), so a child
 * never reports its parent's pending events; the parent's stay in the parent's ring.
 */
#ifndef PYMEMTRACE_BATCH_H
#define PYMEMTRACE_BATCH_H

#ifndef PYMEMTRACE_BATCH_LAYOUT_ONLY /* defined by src/engine, whose BPF side has no libc */
#  include <stdint.h> /* uint64_t */

#  include "config.h"
#endif

/* One batch: the probe fires once per this many events. */
#define PYMEMTRACE_BATCH_EVENTS 64
/* The ring: two batches, so that a batch fired late (a signal handler, a frame seen first) still
 * finds every event since the last one read. A power of two. */
#define PYMEMTRACE_BATCH_SLOTS 128
/* The frame ids a thread remembers having sent (direct-mapped). A power of two. */
#define PYMEMTRACE_BATCH_SENT 64

enum pymemtrace_batch_kind {
    PYMEMTRACE_BATCH_ALLOC = 1,   /* as pyalloc: ptr, size, domain */
    PYMEMTRACE_BATCH_REALLOC = 2, /* as pyrealloc: old_ptr, ptr (new), size */
    PYMEMTRACE_BATCH_FREE = 3     /* as pyfree: ptr, domain; no location (matched by ptr) */
};

struct pymemtrace_batch_event {
    uint64_t seq;      /*  0: its sequence number once published; 0 while being written */
    uint64_t ptr;      /*  8: the block (the new one of a realloc) */
    uint64_t old_ptr;  /* 16: realloc: the old block */
    uint64_t size;     /* 24 */
    uint64_t frame;    /* 32: the innermost Python frame's content id (python.h), 0: none */
    uint64_t filename; /* 40: const char *, as the py* probes' */
    uint64_t function; /* 48 */
    int32_t lineno;    /* 56 */
    int32_t domain;    /* 60 */
    uint32_t kind;     /* 64: enum pymemtrace_batch_kind */
    uint32_t reserved; /* 68: 0 */
    uint64_t native;   /* 72: the native caller's offset while pynative is attached, else 0 */
    uint64_t time;     /* 80: the CPU's clock (x86-64 TSC, aarch64 CNTVCT) when it happened */
};

struct pymemtrace_batch_ring {
    uint64_t head;
    struct pymemtrace_batch_event events[PYMEMTRACE_BATCH_SLOTS];
};

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__)) && !defined(__bpf__)
/* When an event happened, comparable across the process's threads: a block allocated by one
 * thread and freed by another may reach the tracer in either order (their rings are read at
 * different times), and the tracer puts them back in order by this clock. */
static inline uint64_t pymemtrace_detail_batch_time(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    uint64_t ticks;
    __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(ticks));
    return ticks;
#endif
}
#endif

#if !defined(PYMEMTRACE_BATCH_LAYOUT_ONLY) && PYMEMTRACE_HAVE_USDT

#include <pthread.h> /* pthread_atfork */

#include "location.h"
#include "probes.h"

struct pymemtrace_detail_batch_thread {
    struct pymemtrace_batch_ring ring;
    uint64_t sent[PYMEMTRACE_BATCH_SENT]; /* frame ids whose names went with a fired batch */
    int announced;
};

/* The calling thread's ring, one per thread and shared object (a definition: weak, hidden). */
__attribute__((weak)) PYMEMTRACE_HIDDEN __thread struct pymemtrace_detail_batch_thread
    pymemtrace_detail_batch;

/* In a forked child, the forking thread's ring holds its parent's pending events: empty it, and
 * announce it again (the child's ring is a new one to the tracer). */
PYMEMTRACE_OUTLINE void pymemtrace_detail_batch_forked(void)
{
    struct pymemtrace_detail_batch_thread *self = &pymemtrace_detail_batch;
    unsigned slot;
    for (slot = 0; slot < PYMEMTRACE_BATCH_SLOTS; ++slot)
        self->ring.events[slot].seq = 0;
    self->ring.head = 0;
    self->announced = 0;
}

/* The next sequence number: one instruction where it matters (x86-64), so that a signal handler
 * interrupting an append takes another number. No lock: the ring has one writer, its thread. */
static inline uint64_t pymemtrace_detail_batch_reserve(uint64_t *head)
{
#if defined(__x86_64__)
    uint64_t one = 1;
    __asm__ volatile("xaddq %0, %1" : "+r"(one), "+m"(*head));
    return one + 1;
#else
    return __atomic_add_fetch(head, 1, __ATOMIC_RELAXED);
#endif
}

PYMEMTRACE_OUTLINE void pymemtrace_detail_batch_append(uint32_t kind, uintptr_t ptr,
                                                       uintptr_t old_ptr, size_t size, int domain,
                                                       const struct pymemtrace_location *where)
{
    static int atfork_registered; /* per shared object */
    struct pymemtrace_detail_batch_thread *self = &pymemtrace_detail_batch;
    struct pymemtrace_batch_event *event;
    uint64_t seq, *sent;
    int fire;

    if (PYMEMTRACE_UNLIKELY(!self->announced)) {
        if (!__atomic_exchange_n(&atfork_registered, 1, __ATOMIC_RELAXED))
            pthread_atfork(0, 0, pymemtrace_detail_batch_forked);
        self->announced = 1;
        pymemtrace_probe_pybatch((uintptr_t)&self->ring, 0);
    }
    seq = pymemtrace_detail_batch_reserve(&self->ring.head);
    event = &self->ring.events[seq % PYMEMTRACE_BATCH_SLOTS];
    __atomic_store_n(&event->seq, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* seq 0 is seen before any field changes */
    event->ptr = ptr;
    event->old_ptr = old_ptr;
    event->size = size;
    event->frame = where->frame;
    event->filename = (uintptr_t)where->filename;
    event->function = (uintptr_t)where->function;
    event->lineno = where->lineno;
    event->domain = domain;
    event->kind = kind;
    event->reserved = 0;
    event->native = where->native; /* pynative attached: the caller's offset (location.h) */
    event->time = pymemtrace_detail_batch_time();
    __atomic_store_n(&event->seq, seq, __ATOMIC_RELEASE);

    sent = &self->sent[where->frame % PYMEMTRACE_BATCH_SENT];
    fire = seq % PYMEMTRACE_BATCH_EVENTS == 0;
    if (where->frame != 0 && *sent != where->frame) {
        *sent = where->frame;
        fire = 1;
    }
    if (fire)
        pymemtrace_probe_pybatch((uintptr_t)&self->ring, seq);
}

#endif /* !PYMEMTRACE_BATCH_LAYOUT_ONLY && PYMEMTRACE_HAVE_USDT */

#endif /* PYMEMTRACE_BATCH_H */
