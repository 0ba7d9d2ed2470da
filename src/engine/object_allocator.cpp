// SPDX-License-Identifier: MIT
#include "object_allocator.hpp"

#include <cerrno>  // errno
#include <cstring> // std::strerror

#include <bpf/libbpf.h> // bpf_program__attach_uprobe_opts

#include "skeleton.hpp" // engine.skel.h

namespace engine {

bool attach_object_allocator(engine_bpf *skeleton, pid_t pid, const std::string &binary,
                             const std::string &family,
                             std::vector<std::pair<pid_t, bpf_link *>> &links, std::string &why,
                             bool flow)
{
    struct Function {
        const char *name;      // in the Python binary, after the family's prefix
        const char *libc_name; // in libc
        bpf_program *program;
        bool at_return;
    };
    const auto &progs = skeleton->progs; // a flow's send every call (allocator_flow.bpf.h)
    const Function functions[] = {
        {"Malloc", "malloc", flow ? progs.on_allocator_malloc_flow : progs.on_allocator_malloc,
         false},
        {"Malloc", "malloc",
         flow ? progs.on_allocator_malloc_return_flow : progs.on_allocator_malloc_return, true},
        {"Calloc", "calloc", flow ? progs.on_allocator_calloc_flow : progs.on_allocator_calloc,
         false},
        {"Calloc", "calloc",
         flow ? progs.on_allocator_calloc_return_flow : progs.on_allocator_calloc_return, true},
        {"Realloc", "realloc",
         flow ? progs.on_allocator_realloc_flow : progs.on_allocator_realloc, false},
        {"Realloc", "realloc",
         flow ? progs.on_allocator_realloc_return_flow : progs.on_allocator_realloc_return,
         true},
        {"Free", "free", flow ? progs.on_allocator_free_flow : progs.on_allocator_free, false}};
    const bool libc = family == "libc";
    for (const auto &function : functions) {
        const std::string symbol = libc ? function.libc_name : family + function.name;
        // By PID: the breakpoint is written into this process's copy of the code only; bpftrace
        // 0.17 attaches by path, which traps these functions in every process that maps it.
        bpf_uprobe_opts options{};
        options.sz = sizeof options;
        options.func_name = symbol.c_str();
        options.retprobe = function.at_return;
        bpf_link *link = bpf_program__attach_uprobe_opts(function.program, pid, binary.c_str(),
                                                         0, &options);
        if (link == nullptr) {
            why = std::string("cannot attach ") + (function.at_return ? "a uretprobe" : "a uprobe")
                  + " to " + symbol + " of " + binary + " in process " + std::to_string(pid)
                  + ": " + std::strerror(errno) + " (does that file define it?)";
            return false;
        }
        links.emplace_back(pid, link);
    }
    return true;
}

} // namespace engine
