// SPDX-License-Identifier: MIT
// follow.bpf.h (included by engine.bpf.c): --no-follow. The processes a traced process forks
// are traced too unless the loader sets this before load: on_fork then leaves the child out of
// `traced` and sends no record, so it is never attached (the bpftrace runner's --no-follow,
// whose program has no fork clause).
const volatile uint32_t no_follow = 0;
