// SPDX-License-Identifier: MIT
// notes.hpp: which pymemtrace probes a library has, and where, from its .note.stapsdt (read with
// libelf), so that a library without them is refused by name before anything is attached, and
// their semaphores can be found in a process that maps it.
#ifndef PYMEMTRACE_ENGINE_NOTES_HPP
#define PYMEMTRACE_ENGINE_NOTES_HPP

#include <cstdint> // uint64_t
#include <string>  // std::string
#include <vector>  // std::vector

namespace engine {

// One site of a `pymemtrace` probe: its name and where its semaphore is in the file (0: none).
struct ProbeSite {
    std::string name;
    uint64_t semaphore_offset = 0;
};

// The sites of the `pymemtrace` provider's probes in the ELF file `path`; throws engine::Error
// when it cannot be read or is not ELF.
std::vector<ProbeSite> pymemtrace_sites(const std::string &path);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_NOTES_HPP
