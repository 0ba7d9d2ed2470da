// SPDX-License-Identifier: MIT
#include "cpython_frames.hpp"

#include <cerrno>  // errno
#include <cstring> // std::strerror

#include <bpf/bpf.h>    // bpf_map_lookup_elem
#include <bpf/libbpf.h> // bpf_program__attach_usdt

#include "skeleton.hpp" // engine.skel.h

namespace engine {

bool attach_cpython_frames(engine_bpf *skeleton, pid_t pid, const std::string &python,
                           std::vector<std::pair<pid_t, bpf_link *>> &links, std::string &why)
{
    const std::pair<const char *, bpf_program *> probes[] = {
        {"function__entry", skeleton->progs.on_cpython_entry},
        {"function__return", skeleton->progs.on_cpython_return},
        {"line", skeleton->progs.on_cpython_line}};
    for (const auto &probe : probes) {
        // By PID: bpftrace 0.17 attaches these by path, which sets the semaphores of every
        // Python on the host and makes them all trap on every line (31-36x slower, measured).
        bpf_link *link = bpf_program__attach_usdt(probe.second, pid, python.c_str(), "python",
                                                  probe.first, nullptr);
        if (link == nullptr) {
            why = std::string("cannot attach python:") + probe.first + " of " + python
                  + " in process " + std::to_string(pid) + ": " + std::strerror(errno)
                  + " (a Python built --with-dtrace has these probes: readelf -n "
                  + python + ")";
            return false;
        }
        links.emplace_back(pid, link);
    }
    return true;
}

std::vector<std::pair<std::string, uint64_t>> cpython_frames_losses(const engine_bpf *skeleton)
{
    if (!skeleton->rodata->python_frames)
        return {};
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> per_cpu(cpus > 0 ? static_cast<size_t>(cpus) : 1);
    const uint32_t zero = 0;
    uint64_t refused = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skeleton->maps.cpython_frames_full), &zero,
                            per_cpu.data()) == 0)
        for (const uint64_t value : per_cpu)
            refused += value;
    return {{"frames_full", refused}};
}

} // namespace engine
