// SPDX-License-Identifier: MIT
// cpython_frames.hpp: --python-frames PYTHON, the plain probes located by CPython's own probes
// (cpython_frames.bpf.h): their attach in one traced process, and what the report states.
#ifndef PYMEMTRACE_ENGINE_CPYTHON_FRAMES_HPP
#define PYMEMTRACE_ENGINE_CPYTHON_FRAMES_HPP

#include <cstdint> // uint64_t
#include <string>  // std::string
#include <utility> // std::pair
#include <vector>  // std::vector

#include <sys/types.h> // pid_t

struct engine_bpf;
struct bpf_link;

namespace engine {

// Attaches CPython's function__entry, function__return and line probes of the binary `python`
// in process `pid` only (its semaphores are set there and nowhere else), adding the links to
// `links`. False, with the reason in `why`, when one cannot be attached.
bool attach_cpython_frames(engine_bpf *skeleton, pid_t pid, const std::string &python,
                           std::vector<std::pair<pid_t, bpf_link *>> &links, std::string &why);

// The report's loss of --python-frames: frames its maps refused ("frames_full").
std::vector<std::pair<std::string, uint64_t>> cpython_frames_losses(const engine_bpf *skeleton);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_CPYTHON_FRAMES_HPP
