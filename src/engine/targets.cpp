// SPDX-License-Identifier: MIT
#include "targets.hpp"

#include <cerrno>  // errno, EINTR
#include <cstdlib> // std::strtoul
#include <string>  // std::string

#include <unistd.h> // read, close

#include "error.hpp"

namespace engine {

namespace {

constexpr size_t MOST_BYTES = 1 << 20; // far more than any caller's pids and paths

pid_t pid_of(const std::string &text)
{
    char *end = nullptr;
    errno = 0;
    const unsigned long pid = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || text[0] == '-' || errno == ERANGE || pid == 0
        || pid > 0x3fffffff)
        throw Error("--targets-fd: 'pid " + text + "' is not a process ID: give a positive number");
    return static_cast<pid_t>(pid);
}

} // namespace

void read_targets(Plan &plan)
{
    std::string text;
    for (;;) {
        const size_t line_end = text.find('\n');
        if (line_end != std::string::npos) {
            const std::string line = text.substr(0, line_end);
            text.erase(0, line_end + 1);
            if (line == "end")
                break;
            if (line.rfind("pid ", 0) == 0)
                plan.pids.push_back(pid_of(line.substr(4)));
            else if (line.rfind("lib ", 0) == 0 && line.size() > 4)
                plan.libraries.push_back(line.substr(4));
            else
                throw Error("--targets-fd: a line that is not 'pid N', 'lib PATH' or 'end': "
                            "name the targets so");
            continue;
        }
        char buffer[4096];
        const ssize_t got = read(plan.targets_fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || text.size() + static_cast<size_t>(got) > MOST_BYTES)
            throw Error("--targets-fd: the targets ended without an 'end' line (the caller went "
                        "away?): name them as 'pid N' and 'lib PATH' lines, then 'end'");
        text.append(buffer, static_cast<size_t>(got));
    }
    close(plan.targets_fd);
    if (plan.pids.empty())
        throw Error("--targets-fd: no process to trace: name one as 'pid N'");
}

} // namespace engine
