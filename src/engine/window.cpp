// SPDX-License-Identifier: MIT
#include "window.hpp"

#include <cerrno>  // errno
#include <cstdint> // uint16_t, uint64_t
#include <cstdio>  // std::sscanf
#include <cstring> // std::strerror
#include <fstream> // /proc/PID/maps
#include <map>     // std::map

#include <fcntl.h>         // open
#include <sys/stat.h>      // stat
#include <sys/sysmacros.h> // major, minor
#include <unistd.h>        // pread, close

#include "error.hpp"

namespace engine {

namespace {

bool is_of(const Mapping &mapping, const Library &library)
{
    return mapping.inode == library.inode && mapping.major == major(library.device)
           && mapping.minor == minor(library.device);
}

// {probe: semaphore} of the libraries as `pid` has them mapped; probes not mapped are absent.
std::map<std::string, unsigned> semaphores(pid_t pid, const std::vector<Library> &libraries)
{
    std::map<std::string, unsigned> values;
    bool readable = false;
    const auto mappings = file_mappings(pid, readable);
    const int mem = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    if (mem < 0)
        return values;
    for (const auto &library : libraries)
        for (const auto &site : library.sites)
            for (const auto &mapping : mappings) {
                const uint64_t at = site.semaphore_offset;
                if (at == 0 || !is_of(mapping, library) || at < mapping.offset
                    || at >= mapping.offset + (mapping.end - mapping.start))
                    continue;
                uint16_t value = 0;
                if (pread(mem, &value, sizeof value,
                          static_cast<off_t>(mapping.start + (at - mapping.offset)))
                    == static_cast<ssize_t>(sizeof value))
                    values[library.path + '\0' + site.name] += value;
                break;
            }
    close(mem);
    return values;
}

} // namespace

std::vector<Mapping> file_mappings(pid_t pid, bool &readable)
{
    std::vector<Mapping> mappings;
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    readable = maps.is_open();
    for (std::string line; std::getline(maps, line);) {
        Mapping m;
        unsigned long long start, end, offset, inode;
        if (std::sscanf(line.c_str(), "%llx-%llx %*s %llx %x:%x %llu", &start, &end, &offset,
                        &m.major, &m.minor, &inode) != 6 || inode == 0)
            continue;
        m.start = start;
        m.end = end;
        m.offset = offset;
        m.inode = inode;
        mappings.push_back(m);
    }
    readable = readable && !maps.bad();
    return mappings;
}

Library library_of(const std::string &path)
{
    struct stat info {};
    if (stat(path.c_str(), &info) != 0)
        throw Error("cannot open library " + path + ": " + std::strerror(errno)
                    + ": give the path of a built, readable extension");
    return Library{path, info.st_dev, info.st_ino, pymemtrace_sites(path), path};
}

std::set<std::string> disarmed_in_child(pid_t child, pid_t parent,
                                        const std::vector<Library> &libraries)
{
    std::set<std::string> disarmed;
    const auto in_child = semaphores(child, libraries);
    const auto in_parent = semaphores(parent, libraries);
    for (const auto &entry : in_child) {
        const auto found = in_parent.find(entry.first);
        if (found != in_parent.end() && entry.second < found->second)
            disarmed.insert(entry.first.substr(entry.first.find('\0') + 1));
    }
    return disarmed;
}

bool maps_none_of(pid_t pid, const std::vector<Library> &libraries)
{
    bool readable = false;
    const auto mappings = file_mappings(pid, readable);
    for (const auto &mapping : mappings)
        for (const auto &library : libraries)
            if (is_of(mapping, library))
                return false;
    // A process that is ending has released its memory and maps nothing, not even its program:
    // that is no proof.
    return readable && !mappings.empty();
}

} // namespace engine
