// SPDX-License-Identifier: MIT
#include "plan.hpp"

#include <cerrno>  // errno, ERANGE
#include <cstdlib> // std::strtoull
#include <cstring> // std::strcmp

#include <fcntl.h> // fcntl: is the ready fd open

#include "error.hpp"

namespace engine {

const char *const usage =
    "usage: pymemtrace-engine --pid PID [--pid PID ...] [--lib PATH ...]\n"
    "                         [--ready-fd FD] [--allow-loss] [--max-live N]\n"
    "                         [--max-locations N] [--setid-stop] [--plain] [--verbose]\n"
    "                         [--native] [--interval-ms MS] [--all] [--depth N]\n"
    "                         [--flow-fd FD [--flow-buffer BYTES]] [--batch] [--no-follow]\n"
    "                         [--histograms] [--by-path] [--die-with PID]\n"
    "                         [--report-signals] [--stops-from-parent]\n"
    "                         [--python-frames PYTHON [--allocator PREFIX\n"
    "                         --allocator-domain N [--allocator-library LIBC]]]\n"
    "                         [--python-call-stack]\n"
    "       pymemtrace-engine --targets-fd FD [options but --pid, --lib and --all]\n"
    "Traces pymemtrace's pyalloc, pyrealloc and pyfree probes of the libraries PATH, and of\n"
    "every instrumented library the traced processes map, in the processes PID and the\n"
    "processes they fork, until SIGINT/SIGTERM/SIGHUP or until every traced process has\n"
    "ended. Writes {\"event\": \"ready\"} as one JSON line to FD (default 1) once every probe\n"
    "is attached, {\"event\": \"attached\"} there for each process forked and attached since,\n"
    "{\"event\": \"library\"} there for each library mapped before its probes were attached\n"
    "(a window the report states), then the report as one JSON line on stdout. Exit 3 when\n"
    "the report states a loss (unless --allow-loss), 2 on bad input. --setid-stop: a traced\n"
    "process that execs a program that changes its credentials (set-user-ID or set-group-ID)\n"
    "is traced no more from that exec on (for a report given to a user other than root).\n"
    "--plain: the alloc, realloc and free probes instead (C and C++ code: no Python\n"
    "location). --native: rows keyed by the native caller too (\"native\": the library's\n"
    "index in --lib order << 48 | the caller's offset in it; libraries with the pynative\n"
    "probe).\n"
    "--interval-ms MS: every MS milliseconds a {\"event\": \"snapshot\"} line on stdout, the\n"
    "live blocks at one instant, recording going on. --all: every process that maps the\n"
    "libraries (attached by path), instead of --pid; {\"event\": \"process\"} on FD for each\n"
    "process at its first event. --depth N (2..16): locations are Python stacks of N frames\n"
    "(the libraries' pystack4/pystack16 request), named once per stack in the report.\n"
    "--flow-fd FD: every py* event, as it happens, to FD as binary frames (flow.hpp), through\n"
    "a ring buffer of BYTES (a power of two, default 16 MiB); events it could not hold are\n"
    "counted by kind in the report's loss (flow_lost_pyalloc...), and no summary is kept.\n"
    "--batch: where a library has the pybatch probe, its py* events are read in batches from\n"
    "the traced threads' rings (one trap per 64 events; pymemtrace/batch.h).\n"
    "--no-follow: the processes that the traced ones fork are not traced.\n"
    "--histograms: the summary's rows by size bucket too (the report's size_buckets).\n"
    "--targets-fd FD: the PIDs and libraries come on FD as lines 'pid N' and 'lib PATH',\n"
    "then 'end', read once the programs are loaded (the caller finds them meanwhile).\n"
    "--python-frames PYTHON: the plain probes (as --plain), located by CPython's own probes\n"
    "(function__entry, function__return, line) of the Python binary PYTHON (built\n"
    "--with-dtrace), attached in the traced processes only. --allocator PREFIX: instead of\n"
    "any library's probes, PYTHON's functions PREFIX Malloc, Calloc, Realloc and Free\n"
    "(PyObject_ or PyMem_Raw) by uprobes, their blocks in domain N (--allocator-domain);\n"
    "--allocator libc: malloc, calloc, realloc and free of the C library LIBC. With --flow-fd,\n"
    "every call of them (kinds malloc, calloc, realloc, free: flow.hpp).\n"
    "--by-path: the --lib libraries are attached by path before `ready` (every process that\n"
    "maps them traps their probes; only the traced processes' events are kept), so that a\n"
    "process forked by a traced one has no window; libraries found mapped stay per PID.\n"
    "--python-call-stack (with --flow-fd and --python-frames): the flow has a call event for\n"
    "each Python function entered (function__entry) and a return event for each one left\n"
    "(function__return), with the depth of the thread's Python stack.\n"
    "--die-with PID: the engine is killed (SIGKILL, which detaches every probe) when its\n"
    "parent PID ends, and ends at once if PID is not its parent (the runner's spawn).\n"
    "--report-signals: {\"event\": \"signal\"} on stdout for each SIGINT, SIGTERM and SIGHUP\n"
    "sent to a traced process or to the engine's parent, with its sender and time.\n"
    "--stops-from-parent: only the stop requests the engine's parent sends stop it (a unit's\n"
    "stop that reaches every process leaves it to the parent, which stops it after the\n"
    "command).\n";

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
        } else if (option == "--interval-ms") {
            plan.interval_ms = number("--interval-ms", value, 86400000);
            if (plan.interval_ms == 0)
                throw Error("--interval-ms 0: give a number of milliseconds from 1");
            ++i;
        } else if (option == "--depth") {
            plan.depth = static_cast<uint32_t>(number("--depth", value, 16));
            if (plan.depth == 0)
                throw Error("--depth 0: give 1 to 16 frames");
            ++i;
        } else if (option == "--all") {
            plan.every_process = true;
        } else if (option == "--flow-fd") {
            plan.flow_fd = static_cast<int>(number("--flow-fd", value, 1 << 20));
            ++i;
        } else if (option == "--flow-buffer") {
            plan.flow_bytes = static_cast<uint32_t>(number("--flow-buffer", value, 1u << 30));
            ++i;
        } else if (option == "--targets-fd") {
            plan.targets_fd = static_cast<int>(number("--targets-fd", value, 1 << 20));
            ++i;
        } else if (option == "--allow-loss") {
            plan.allow_loss = true;
        } else if (option == "--plain") {
            plan.plain = true;
        } else if (option == "--setid-stop") {
            plan.setid_stop = true;
        } else if (option == "--batch") {
            plan.batch = true;
        } else if (option == "--no-follow") {
            plan.follow = false;
        } else if (option == "--histograms") {
            plan.histograms = true;
        } else if (option == "--by-path") {
            plan.by_path = true;
        } else if (option == "--python-call-stack") {
            plan.python_call_stack = true;
        } else if (option == "--report-signals") {
            plan.report_signals = true;
        } else if (option == "--stops-from-parent") {
            plan.stops_from_parent = true;
        } else if (option == "--verbose") {
            plan.verbose = true;
        } else if (option == "--native") {
            plan.native = true;
        } else if (option == "--python-frames") {
            if (value == nullptr || *value == '\0')
                throw Error("--python-frames needs the path of a Python binary built "
                            "--with-dtrace");
            plan.python_frames = value;
            plan.plain = true; // the plain probes, located by the Python's own
            ++i;
        } else if (option == "--allocator") {
            if (value == nullptr
                || (std::strcmp(value, "PyObject_") != 0 && std::strcmp(value, "PyMem_Raw") != 0
                    && std::strcmp(value, "libc") != 0))
                throw Error("--allocator needs PyObject_ or PyMem_Raw, the prefix of the Python "
                            "allocator functions to trace, or libc");
            plan.allocator = value;
            ++i;
        } else if (option == "--allocator-library") {
            if (value == nullptr || *value == '\0')
                throw Error("--allocator-library needs the path of the C library");
            plan.allocator_library = value;
            ++i;
        } else if (option == "--allocator-domain") {
            plan.allocator_domain = static_cast<int32_t>(number("--allocator-domain", value, 1000));
            ++i;
        } else if (option == "--die-with") {
            plan.die_with = static_cast<pid_t>(number("--die-with", value, 0x3fffffff));
            ++i;
        } else {
            throw Error("unknown option '" + option + "': see pymemtrace-engine --help");
        }
    }
    if (plan.every_process && (!plan.pids.empty() || plan.setid_stop))
        throw Error("--all traces every process that maps the libraries, set-ID ones included: "
                    "give --all without --pid and --setid-stop");
    if (plan.targets_fd >= 0
        && (!plan.pids.empty() || !plan.libraries.empty() || plan.every_process))
        throw Error("--targets-fd names the processes and libraries later: leave out --pid, --lib "
                    "and --all");
    if (plan.targets_fd >= 0 && fcntl(plan.targets_fd, F_GETFD) < 0)
        throw Error("--targets-fd " + std::to_string(plan.targets_fd)
                    + " is not an open file descriptor: give one the caller passed open");
    if (plan.pids.empty() && !plan.every_process && plan.targets_fd < 0)
        throw Error("no process to trace: give --pid PID, or --all");
    if (plan.libraries.empty() && plan.every_process) // by path: the libraries must be named
        throw Error("no library to attach to: give --lib PATH of an instrumented library");
    if (fcntl(plan.ready_fd, F_GETFD) < 0)
        throw Error("--ready-fd " + std::to_string(plan.ready_fd)
                    + " is not an open file descriptor: give one the caller passed open");
    if (plan.depth > 1 && plan.plain)
        throw Error("--depth N > 1 reads the py* probes' Python stacks: not with --plain");
    if (plan.flow_fd >= 0 && fcntl(plan.flow_fd, F_GETFD) < 0)
        throw Error("--flow-fd " + std::to_string(plan.flow_fd)
                    + " is not an open file descriptor: give one the caller passed open");
    if (plan.flow_fd >= 0 && plan.plain && plan.python_frames.empty())
        throw Error("--flow-fd sends the py* probes' events, or the plain ones with "
                    "--python-frames: leave out --plain");
    if (plan.flow_fd >= 0 && plan.native)
        throw Error("--flow-fd sends events without their native caller: leave out --native");
    if (plan.flow_bytes < 4096 || (plan.flow_bytes & (plan.flow_bytes - 1)) != 0)
        throw Error("--flow-buffer " + std::to_string(plan.flow_bytes)
                    + ": give a power of two of at least 4096 bytes");
    if (plan.flow_fd >= 0 && (plan.interval_ms != 0 || plan.depth > 1))
        throw Error("--flow-fd sends every event at depth 1: leave out --interval-ms and --depth");
    if (plan.batch && plan.plain)
        throw Error("--batch reads the py* events, --plain the plain ones: give one of them");
    if (plan.batch && (plan.native || plan.depth > 1 || plan.flow_fd >= 0))
        throw Error("--batch makes the summary, leaks and snapshots at depth 1: leave out "
                    "--native, --depth and --flow-fd");
    if (plan.histograms && (plan.flow_fd >= 0 || plan.batch))
        throw Error("--histograms counts the summary's events by size: leave out --flow-fd and "
                    "--batch");
    if (!plan.allocator.empty() && plan.python_frames.empty())
        throw Error("--allocator locates its calls by CPython's probes: give --python-frames "
                    "PYTHON, the binary whose functions they are");
    if ((plan.allocator == "libc") != !plan.allocator_library.empty())
        throw Error("--allocator libc needs --allocator-library LIBC, the C library's file (and "
                    "only it)");
    if (!plan.allocator.empty() && !plan.libraries.empty())
        throw Error("--allocator traces the Python binary's functions instead of libraries' "
                    "probes (the blocks would count twice): leave out --lib");
    if (!plan.python_frames.empty() && (plan.every_process || plan.native))
        throw Error("--python-frames attaches CPython's probes per --pid, by their stacks: leave "
                    "out --all and --native");
    if (plan.by_path && plan.every_process)
        throw Error("--all attaches by path already and keeps every process's events: leave out "
                    "--by-path");
    if (plan.python_call_stack && (plan.flow_fd < 0 || plan.python_frames.empty()))
        throw Error("--python-call-stack sends CPython's calls and returns in the flow: give "
                    "--flow-fd FD and --python-frames PYTHON");
    if (plan.max_live == 0 || plan.max_locations == 0)
        throw Error("--max-live and --max-locations must be at least 1");
    return plan;
}

} // namespace engine
