// SPDX-License-Identifier: MIT
#include "mappings.hpp"

#include <cstdio>  // std::snprintf
#include <set>     // std::set

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

// The mapping's file, opened for reading if it is a regular file: -1 otherwise (gone, a device,
// too big). O_PATH first: opening some devices acts, and a target may map one executable.
int open_regular(const std::string &link, struct stat &info)
{
    const int held = open(link.c_str(), O_PATH | O_CLOEXEC);
    if (held < 0)
        return -1;
    int readable = -1;
    if (fstat(held, &info) == 0 && S_ISREG(info.st_mode) && info.st_size <= largest_library)
        readable = open(("/proc/self/fd/" + std::to_string(held)).c_str(),
                        O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    close(held);
    return readable;
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
        auto library = look_at(pid, mapping, plain);
        looked_at_.insert(id); // once, whatever it held (a file that vanished: mapped no more)
        if (library)
            found.push_back(std::move(*library));
    }
    return found;
}

std::optional<Library> MappedFiles::look_at(pid_t pid, const Mapping &mapping, bool plain)
{
    char range[64];
    std::snprintf(range, sizeof range, "/%llx-%llx",
                  static_cast<unsigned long long>(mapping.start),
                  static_cast<unsigned long long>(mapping.end));
    const std::string link = "/proc/" + std::to_string(pid) + "/map_files" + range;
    struct stat info {};
    const int fd = open_regular(link, info);
    if (fd < 0)
        return std::nullopt;
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    std::vector<ProbeSite> sites;
    try {
        sites = pymemtrace_sites(path);
    } catch (const Error &) { // not ELF: no probes
    }
    if (info.st_ino != mapping.inode || !has_probes(sites, plain)) {
        close(fd);
        return std::nullopt;
    }
    kept_.push_back(fd);
    // Named by the mapping's device, as /proc/PID/maps and the mapping records name it.
    return Library{path, makedev(mapping.major, mapping.minor), info.st_ino, std::move(sites),
                   link_text(link)};
}

} // namespace engine
