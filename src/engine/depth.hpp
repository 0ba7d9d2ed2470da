// SPDX-License-Identifier: MIT
// depth.hpp: --depth N's stacks (depth.bpf.h) in the report: each (pid, stack id) the report's
// rows name as `location`, with its frames' names, innermost first.
#ifndef PYMEMTRACE_ENGINE_DEPTH_HPP
#define PYMEMTRACE_ENGINE_DEPTH_HPP

#include <string> // std::string

namespace engine {

// `,"stacks":[{"pid","stack","frames":[{"file","function","line"}...]}...]` from the map
// `stack_names_fd`, or "" when it holds none.
std::string stacks_json(int stack_names_fd);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_DEPTH_HPP
