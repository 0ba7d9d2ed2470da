// SPDX-License-Identifier: MIT
// by_path.bpf.h (included by engine.bpf.c): --by-path. A command's libraries named beforehand are
// attached by path (PID -1), before the command runs, so that a process it forks has their
// breakpoints and semaphores from its first instruction (no fork window). Every process on the
// host that maps one of them then traps its probes; only events of processes in `traced` (the
// command's, and every process forked from a traced one: on_fork adds the child before it first
// runs) are kept.

// Set by the loader before load (--by-path): without it the verifier prunes the lookup.
const volatile uint32_t traced_only = 0;
