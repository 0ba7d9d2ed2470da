// SPDX-License-Identifier: MIT
#include "plan.hpp"

#include <cerrno>  // errno, ERANGE
#include <cstdlib> // std::strtoull
#include <cstring> // std::strcmp

#include <fcntl.h> // fcntl: is the ready fd open

#include "error.hpp"

namespace engine {

const char *const usage =
    "usage: pymemtrace-engine --pid PID [--pid PID ...] --lib PATH [--lib PATH ...]\n"
    "                         [--ready-fd FD] [--allow-loss] [--max-live N]\n"
    "                         [--max-locations N] [--setid-stop] [--plain] [--verbose]\n"
    "                         [--batch]\n"
    "Traces pymemtrace's pyalloc, pyrealloc and pyfree probes of the libraries PATH in the\n"
    "processes PID and the processes they fork, until SIGINT/SIGTERM/SIGHUP or until every\n"
    "traced process has ended. Writes {\"event\": \"ready\"} as one JSON line to FD (default 1)\n"
    "once every probe is attached, {\"event\": \"attached\"} there for each process forked and\n"
    "attached since, then the report as one JSON line on stdout. Exit 3 when the report\n"
    "states a loss (unless --allow-loss), 2 on bad input. --setid-stop: a traced process that\n"
    "execs a program that changes its credentials (set-user-ID or set-group-ID) is traced no\n"
    "more from that exec on (for a report given to a user other than root). --plain: the\n"
    "alloc, realloc and free probes instead (C and C++ code: no Python location).\n"
    "--batch: where a library has the pybatch probe, its py* events are read in batches from\n"
    "the traced threads' rings (one trap per 64 events; pymemtrace/batch.h).\n";

namespace {

unsigned long long number(const char *option, const char *text, unsigned long long most)
{
    char *end = nullptr;
    errno = 0;
    const unsigned long long value = text != nullptr ? std::strtoull(text, &end, 10) : 0;
    if (text == nullptr || *text == '\0' || *end != '\0' || *text == '-' || errno == ERANGE
        || value > most)
        throw Error(std::string(option) + " needs a whole number from 0 to "
                    + std::to_string(most) + ", not '" + (text ? text : "") + "'");
    return value;
}

} // namespace

Plan parse_plan(int argc, char **argv)
{
    Plan plan;
    for (int i = 1; i < argc; ++i) {
        const std::string option = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : nullptr;
        if (option == "--pid") {
            const auto pid = number("--pid", value, 0x3fffffff);
            if (pid == 0)
                throw Error("--pid 0 is not a process: give the PID of a running process");
            plan.pids.push_back(static_cast<pid_t>(pid));
            ++i;
        } else if (option == "--lib") {
            if (value == nullptr || *value == '\0')
                throw Error("--lib needs the path of an instrumented library");
            plan.libraries.emplace_back(value);
            ++i;
        } else if (option == "--ready-fd") {
            plan.ready_fd = static_cast<int>(number("--ready-fd", value, 1 << 20));
            ++i;
        } else if (option == "--max-live") {
            plan.max_live = static_cast<uint32_t>(number("--max-live", value, 1u << 28));
            ++i;
        } else if (option == "--max-locations") {
            plan.max_locations = static_cast<uint32_t>(number("--max-locations", value, 1u << 24));
            ++i;
        } else if (option == "--allow-loss") {
            plan.allow_loss = true;
        } else if (option == "--plain") {
            plan.plain = true;
        } else if (option == "--setid-stop") {
            plan.setid_stop = true;
        } else if (option == "--batch") {
            plan.batch = true;
        } else if (option == "--verbose") {
            plan.verbose = true;
        } else {
            throw Error("unknown option '" + option + "': see pymemtrace-engine --help");
        }
    }
    if (plan.pids.empty())
        throw Error("no process to trace: give --pid PID");
    if (plan.libraries.empty())
        throw Error("no library to attach to: give --lib PATH of an instrumented library");
    if (fcntl(plan.ready_fd, F_GETFD) < 0)
        throw Error("--ready-fd " + std::to_string(plan.ready_fd)
                    + " is not an open file descriptor: give one the caller passed open");
    if (plan.batch && plan.plain)
        throw Error("--batch reads the py* events, --plain the plain ones: give one of them");
    if (plan.max_live == 0 || plan.max_locations == 0)
        throw Error("--max-live and --max-locations must be at least 1");
    return plan;
}

} // namespace engine
