// SPDX-License-Identifier: MIT
// notes.hpp: which pymemtrace probes a library has, from its .note.stapsdt (read with libelf),
// so that a library without them is refused by name before anything is attached.
#ifndef PYMEMTRACE_ENGINE_NOTES_HPP
#define PYMEMTRACE_ENGINE_NOTES_HPP

#include <set>    // std::set
#include <string> // std::string

namespace engine {

// The names of the `pymemtrace` provider's probes in the ELF file `path`; throws engine::Error
// when it cannot be read or is not ELF.
std::set<std::string> pymemtrace_probes(const std::string &path);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_NOTES_HPP
