// SPDX-License-Identifier: MIT
// mappings.hpp: the files a traced process maps, looked at once each, to find the instrumented
// libraries it maps that the plan did not name: already mapped when the engine starts, or mapped
// later (a record of mappings.bpf.h). A file is opened through /proc/PID/map_files (the mapping
// itself: no path text of the target is followed), O_PATH first so that a device is never
// opened, and its .note.stapsdt read through the engine's own descriptor, which stays open and
// names the file to libbpf as /proc/self/fd/N.
#ifndef PYMEMTRACE_ENGINE_MAPPINGS_HPP
#define PYMEMTRACE_ENGINE_MAPPINGS_HPP

#include <cstdint>  // uint64_t
#include <map>      // std::map
#include <optional> // std::optional
#include <set>      // std::set
#include <string>   // std::string
#include <tuple>    // std::tuple
#include <vector>   // std::vector

#include <sys/types.h> // pid_t

#include "window.hpp"

namespace engine {

// A file as /proc/PID/maps names it: major, minor, inode.
using FileId = std::tuple<unsigned, unsigned, uint64_t>;

FileId file_id(const Mapping &mapping);
FileId file_id(const Library &library);

// An instrumented library a process mapped before its probes there were attached, after the
// engine was ready: its hits in between were not even trapped (its semaphores were 0).
struct LateLibrary {
    pid_t pid = 0;
    std::string shown;         // the path as the process mapped it (the target's bytes)
    uint64_t mapped_ns = 0;    // when the mapping was made (CLOCK_MONOTONIC)
    uint64_t attached_ns = 0;  // when its probes were armed in that process; 0: never
    uint64_t window_ns = 0;    // from the mapping (or the engine's ready) to the attach
    std::string attach_error;  // why it could not be attached (the process ended first...)
};

// A file a traced process mapped executable and no longer mapped (it ended, or unmapped it) when
// the engine came to look at it: whether it had probes, and so what was lost, is unknown.
struct UnexaminedFile {
    pid_t pid = 0;
    FileId id;
};

class MappedFiles {
public:
    MappedFiles() = default;
    ~MappedFiles(); // closes the files kept open for libbpf
    MappedFiles(const MappedFiles &) = delete;
    MappedFiles &operator=(const MappedFiles &) = delete;

    // The instrumented libraries (with the py* probes, or the plain ones with `plain`) among the
    // files `pid` maps now that were not looked at before; `only`: just that file.
    std::vector<Library> newly_found(pid_t pid, bool plain,
                                     const std::optional<FileId> &only = std::nullopt);

    // How /proc/PID/maps names the file mapped at `address`, which a mapping record names `id`:
    // for a file of an overlay (a container's) maps gives the overlay's inode, the record the
    // one underneath. `id` itself when the mapping is gone.
    FileId maps_name(pid_t pid, uint64_t address, const FileId &id);

    // The file `id` read through any process that maps it (the engine's own first: a C++
    // extension's loader maps the C++ runtime the engine has); `read`: whether one did.
    std::optional<Library> look_anywhere(const FileId &id, bool plain, bool &read);

    // Whether the file was read once (found in a process's maps, opened and its notes read).
    bool looked_at(const FileId &id) const { return looked_at_.count(id) != 0; }

private:
    // `read`: whether the file could be read (a process that ended meanwhile: not).
    std::optional<Library> look_at(pid_t pid, const Mapping &mapping, bool plain, bool &read);

    std::set<FileId> looked_at_;
    std::map<FileId, FileId> maps_names_; // a record's name of a file -> maps' name of it
    std::vector<int> kept_; // descriptors of the instrumented files found
};

} // namespace engine

#endif // PYMEMTRACE_ENGINE_MAPPINGS_HPP
