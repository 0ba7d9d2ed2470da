// SPDX-License-Identifier: MIT
// signals.bpf.h (included by engine.bpf.c): --report-signals. Every SIGINT, SIGTERM and SIGHUP
// the kernel makes for a traced process or for the engine's parent (the runner), with who sent
// it. The runner passes a stop request on to its command only if the command did not get the
// same one from the same sender itself: systemd's KillMode=control-group, for one, signals every
// process of the unit (docs/development.md, "Stops"). Loaded only with the option.
#include "signals.h"

// Set by the loader before load: the engine's parent.
const volatile uint32_t signals_parent = 0;

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 12); // one page: a few stop signals in a run
} signal_records SEC(".maps");

struct kernel_siginfo;

SEC("tp_btf/signal_generate")
int BPF_PROG(on_signal, int sig, struct kernel_siginfo *info, struct task_struct *task,
             int group, int result)
{
    if (sig != 1 && sig != 2 && sig != 15) // SIGHUP, SIGINT, SIGTERM
        return 0;
    uint32_t to = (uint32_t)BPF_CORE_READ(task, tgid);
    if (to != signals_parent && !bpf_map_lookup_elem(&traced, &to))
        return 0;
    struct engine_signal_record *record =
        bpf_ringbuf_reserve(&signal_records, sizeof(*record), 0);
    if (!record)
        return 0; // the runner then passes the request on, as without the option
    record->time_ns = bpf_ktime_get_ns();
    record->signal = (uint32_t)sig;
    record->pid = to;
    record->sender = (uint32_t)(bpf_get_current_pid_tgid() >> 32);
    record->reserved = 0;
    bpf_ringbuf_submit(record, 0);
    return 0;
}
