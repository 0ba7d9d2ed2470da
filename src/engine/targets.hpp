// SPDX-License-Identifier: MIT
// targets.hpp: --targets-fd FD. The processes and libraries to trace are named on FD once the
// engine has loaded its programs and attached its tracepoints, so that a caller can start the
// engine first and find its targets meanwhile (the runner: docs/engine.md, "Start-up").
#ifndef PYMEMTRACE_ENGINE_TARGETS_HPP
#define PYMEMTRACE_ENGINE_TARGETS_HPP

#include "plan.hpp"

namespace engine {

// Reads lines `pid N` and `lib PATH` from plan.targets_fd into the plan, up to a line `end`
// (not the end of the file: a process the caller forks meanwhile may hold the pipe open).
// Throws Error for a line that is not one of these, or a file that ends before `end`.
void read_targets(Plan &plan);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_TARGETS_HPP
