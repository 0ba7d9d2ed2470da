// SPDX-License-Identifier: MIT
// error.hpp: the one kind of failure the engine reports: a one-line message that says what went
// wrong and how to fix it, printed without a trace by main().
#ifndef PYMEMTRACE_ENGINE_ERROR_HPP
#define PYMEMTRACE_ENGINE_ERROR_HPP

#include <stdexcept> // std::runtime_error

namespace engine {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

} // namespace engine

#endif // PYMEMTRACE_ENGINE_ERROR_HPP
