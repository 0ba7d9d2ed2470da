/* SPDX-License-Identifier: MIT
 * signals.h: --report-signals' record, shared by signals.bpf.h and signals.cpp. Plain C,
 * fixed-width types.
 */
#ifndef PYMEMTRACE_ENGINE_SIGNALS_H
#define PYMEMTRACE_ENGINE_SIGNALS_H

/* A stop signal (SIGINT, SIGTERM or SIGHUP) made for a traced process or the engine's parent. */
struct engine_signal_record {
    uint64_t time_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns), when the kernel made it */
    uint32_t signal;
    uint32_t pid;     /* the process it was sent to (its thread group) */
    uint32_t sender;  /* the process that sent it (the task the kernel made it in) */
    uint32_t reserved; /* 0 */
};

#endif /* PYMEMTRACE_ENGINE_SIGNALS_H */
