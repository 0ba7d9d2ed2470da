// SPDX-License-Identifier: MIT
// output.hpp: the engine's lines to its caller (ready, attached, the report), whole or not at all.
#ifndef PYMEMTRACE_ENGINE_OUTPUT_HPP
#define PYMEMTRACE_ENGINE_OUTPUT_HPP

#include <string> // std::string

namespace engine {

// Writes all of `text` to `fd`; false if the reader is gone (SIGPIPE is ignored).
bool write_all(int fd, const std::string &text);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_OUTPUT_HPP
