// SPDX-License-Identifier: MIT
// object_allocator.hpp: --allocator PREFIX, the Python binary's own allocator functions
// (object_allocator.bpf.h) by uprobes and uretprobes in one traced process only.
#ifndef PYMEMTRACE_ENGINE_OBJECT_ALLOCATOR_HPP
#define PYMEMTRACE_ENGINE_OBJECT_ALLOCATOR_HPP

#include <string>  // std::string
#include <utility> // std::pair
#include <vector>  // std::vector

#include <sys/types.h> // pid_t

struct engine_bpf;
struct bpf_link;

namespace engine {

// Attaches the allocator `family`'s functions (PyObject_ or PyMem_Raw: PREFIX Malloc, Calloc,
// Realloc, Free; libc: malloc, calloc, realloc, free), entries and returns, in the ELF file
// `binary` in process `pid` only, adding the links to `links`. False, with the reason in `why`,
// when one cannot be attached. `flow`: the programs that send every call to the flow instead.
bool attach_object_allocator(engine_bpf *skeleton, pid_t pid, const std::string &binary,
                             const std::string &family,
                             std::vector<std::pair<pid_t, bpf_link *>> &links, std::string &why,
                             bool flow = false);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_OBJECT_ALLOCATOR_HPP
