// SPDX-License-Identifier: MIT
// every_process.bpf.h (included by engine.bpf.c): --all. The probes are attached by path (PID -1),
// so every process that maps a library traps them; a process's first event puts it in `traced`
// and sends a record, so that the loader knows it (its command line, its end). Forks are not
// followed: a child's events arrive by the same path attach.

// Set by the loader before load (--all): without it the verifier prunes this.
const volatile uint32_t every_process = 0;

static __always_inline void send(uint32_t kind, uint32_t pid, uint32_t parent, int32_t exit_code);

static __always_inline void enrol(uint32_t pid)
{
    if (!every_process || bpf_map_lookup_elem(&traced, &pid))
        return;
    uint32_t one = 1;
    if (bpf_map_update_elem(&traced, &pid, &one, BPF_NOEXIST) == 0)
        send(RECORD_PROCESS, pid, 0, 0);
}
