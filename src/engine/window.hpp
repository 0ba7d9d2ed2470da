// SPDX-License-Identifier: MIT
// window.hpp: what a forked process may have missed between its fork and the attach of its
// probes. Its probe hits there are dropped: the kernel removes the breakpoint the child inherited
// and lowers the probe's semaphore in it. The attach raises it again, so only a look before the
// attach can see a drop; a child that maps none of the libraries once attached missed nothing.
// Everything else cannot be proven and is stated as a loss (docs/engine.md).
#ifndef PYMEMTRACE_ENGINE_WINDOW_HPP
#define PYMEMTRACE_ENGINE_WINDOW_HPP

#include <cstdint> // uint64_t
#include <set>    // std::set
#include <string> // std::string
#include <vector> // std::vector

#include <sys/types.h> // pid_t, dev_t, ino_t

#include "notes.hpp"

namespace engine {

// A traced library: which file, and its probes' semaphores.
struct Library {
    std::string path;
    dev_t device = 0;
    ino_t inode = 0;
    std::vector<ProbeSite> sites;
    std::string shown; // how reports name it (a mapped one: its path as the target mapped it)
};

Library library_of(const std::string &path);

// One line of /proc/PID/maps that maps a file.
struct Mapping {
    uint64_t start = 0, end = 0, offset = 0;
    unsigned major = 0, minor = 0;
    uint64_t inode = 0;
};

// The file mappings of `pid`; `readable`: whether its maps could be read whole.
std::vector<Mapping> file_mappings(pid_t pid, bool &readable); // throws engine::Error when it cannot be read

// Before the child's attach: the probes whose semaphore is lower in `child` than in `parent`,
// i.e. that the child hit and the kernel disarmed in it.
std::set<std::string> disarmed_in_child(pid_t child, pid_t parent,
                                        const std::vector<Library> &libraries);

// True when `pid` has its memory (it is not ending) and maps none of the libraries.
bool maps_none_of(pid_t pid, const std::vector<Library> &libraries);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_WINDOW_HPP
