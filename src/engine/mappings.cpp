// SPDX-License-Identifier: MIT
#include "mappings.hpp"

#include <cstdio>  // std::snprintf
#include <cstdlib> // std::strtol
#include <set>     // std::set

#include <dirent.h>        // opendir: the processes in /proc
#include <fcntl.h>         // open, O_PATH
#include <sys/stat.h>      // fstat
#include <sys/sysmacros.h> // major, minor
#include <unistd.h>        // close, readlink

#include "error.hpp"
#include "notes.hpp"

namespace engine {

namespace {

constexpr off_t largest_library = off_t(4) << 30; // as the runner's safe_open: 4 GiB

bool has_probes(const std::vector<ProbeSite> &sites, bool plain)
{
    std::set<std::string> found;
    for (const auto &site : sites)
        found.insert(site.name);
    static const char *const plain_names[] = {"alloc", "realloc", "free"};
    static const char *const py_names[] = {"pyalloc", "pyrealloc", "pyfree"};
    for (const char *name : plain ? plain_names : py_names)
        if (found.count(name) == 0)
            return false;
    return true;
}

constexpr int gone = -1;        // the mapping is gone (its process ended, or unmapped it)
constexpr int not_a_library = -2; // a device, or a file over 4 GiB

// The mapping's file, opened for reading if it is a regular file; else `gone` or
// `not_a_library`. O_PATH first: opening some devices acts, and a target may map one executable.
int open_regular(const std::string &link, struct stat &info)
{
    const int held = open(link.c_str(), O_PATH | O_CLOEXEC);
    if (held < 0)
        return gone;
    int readable = not_a_library;
    if (fstat(held, &info) == 0 && S_ISREG(info.st_mode) && info.st_size <= largest_library)
        readable = open(("/proc/self/fd/" + std::to_string(held)).c_str(),
                        O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    close(held);
    return readable < 0 && readable != not_a_library ? gone : readable;
}

std::string link_text(const std::string &link)
{
    char text[4096];
    const ssize_t length = readlink(link.c_str(), text, sizeof text);
    return length > 0 ? std::string(text, static_cast<size_t>(length)) : link;
}

} // namespace

FileId file_id(const Mapping &mapping)
{
    return FileId{mapping.major, mapping.minor, mapping.inode};
}

FileId file_id(const Library &library)
{
    return FileId{major(library.device), minor(library.device), library.inode};
}

MappedFiles::~MappedFiles()
{
    for (const int fd : kept_)
        close(fd);
}

FileId MappedFiles::maps_name(pid_t pid, uint64_t address, const FileId &id)
{
    const auto known = maps_names_.find(id);
    if (known != maps_names_.end())
        return known->second;
    bool readable = false;
    for (const auto &mapping : file_mappings(pid, readable))
        if (mapping.start <= address && address < mapping.end)
            return maps_names_[id] = file_id(mapping);
    return id;
}

std::vector<Library> MappedFiles::newly_found(pid_t pid, bool plain,
                                               const std::optional<FileId> &only)
{
    std::vector<Library> found;
    if (only && looked_at_.count(*only) != 0)
        return found; // a file seen before (libc in every new process): no need to read maps
    bool readable = false;
    for (const auto &mapping : file_mappings(pid, readable)) {
        const FileId id = file_id(mapping);
        if ((only && id != *only) || looked_at_.count(id) != 0)
            continue;
        bool read = false;
        auto library = look_at(pid, mapping, plain, read);
        if (read) // once, whatever it held; one that could not be opened is tried again later
            looked_at_.insert(id);
        if (library)
            found.push_back(std::move(*library));
    }
    return found;
}

std::optional<Library> MappedFiles::look_anywhere(const FileId &id, bool plain, bool &read)
{
    std::vector<pid_t> pids{getpid()};
    if (DIR *proc = opendir("/proc")) {
        while (const dirent *entry = readdir(proc))
            if (entry->d_name[0] >= '1' && entry->d_name[0] <= '9')
                pids.push_back(static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10)));
        closedir(proc);
    }
    read = false;
    for (const pid_t pid : pids) {
        bool readable = false;
        for (const auto &mapping : file_mappings(pid, readable)) {
            if (file_id(mapping) != id)
                continue;
            auto library = look_at(pid, mapping, plain, read);
            if (read) {
                looked_at_.insert(id);
                return library;
            }
        }
    }
    return std::nullopt;
}

std::optional<Library> MappedFiles::look_at(pid_t pid, const Mapping &mapping, bool plain,
                                            bool &read)
{
    char range[64];
    std::snprintf(range, sizeof range, "/%llx-%llx",
                  static_cast<unsigned long long>(mapping.start),
                  static_cast<unsigned long long>(mapping.end));
    const std::string link = "/proc/" + std::to_string(pid) + "/map_files" + range;
    struct stat info {};
    const int fd = open_regular(link, info);
    read = fd != gone;
    if (fd >= 0 && info.st_ino != mapping.inode) { // another file at that range by now
        close(fd);
        read = false;
        return std::nullopt;
    }
    if (fd < 0)
        return std::nullopt;
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    std::vector<ProbeSite> sites;
    try {
        sites = pymemtrace_sites(path);
    } catch (const Error &) { // not ELF: no probes
    }
    if (!has_probes(sites, plain)) {
        close(fd);
        return std::nullopt;
    }
    kept_.push_back(fd);
    // Named by the mapping's device, as /proc/PID/maps and the mapping records name it.
    return Library{path, makedev(mapping.major, mapping.minor), info.st_ino, std::move(sites),
                   link_text(link)};
}

} // namespace engine
