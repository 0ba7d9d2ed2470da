// SPDX-License-Identifier: MIT
// depth.hpp: --depth N's stacks (depth.bpf.h) for the reader of the report: each (pid, stack id)
// that the report's rows name as `location`, with its frames' names, innermost first.
#ifndef PYMEMTRACE_ENGINE_DEPTH_HPP
#define PYMEMTRACE_ENGINE_DEPTH_HPP

namespace engine {

// Writes to `fd` one line per stack of the map `stack_names_fd`, {"event":"stack","pid","stack",
// "frames":[{"file","function","line"}...]}: a line at a time, so that a reader keeps what it
// needs as it goes (a report of 65,536 stacks of 16 frames would be one line of 100 MB).
void write_stacks(int fd, int stack_names_fd);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_DEPTH_HPP
