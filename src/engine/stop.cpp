// SPDX-License-Identifier: MIT
#include "stop.hpp"

#include <csignal> // sig_atomic_t
#include <ctime>   // clock_gettime
#include <initializer_list> // the three signals

#include <signal.h> // sigaction, siginfo_t
#include <unistd.h> // write, _exit, getppid

namespace engine {

namespace {

volatile sig_atomic_t requested = 0;
volatile time_t first_request_s = 0; // CLOCK_MONOTONIC seconds of the first request
volatile long first_request_ns = 0;
volatile sig_atomic_t parent_only = 0; // --stops-from-parent

void on_stop_signal(int, siginfo_t *info, void *)
{
    if (parent_only && (info == nullptr || info->si_pid != getppid()))
        return; // the runner's to decide: it stops the engine once its command has ended
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now); // async-signal-safe
    if (!requested) {
        first_request_s = now.tv_sec;
        first_request_ns = now.tv_nsec;
        requested = 1;
        return;
    }
    const long long since_ns = (now.tv_sec - first_request_s) * 1000000000LL
                               + (now.tv_nsec - first_request_ns);
    if (since_ns < 1000000000LL)
        return; // the same request, sent to the group or twice
    static const char message[] = "pymemtrace-engine: stopped at once by a second request, "
                                  "no report\n";
    (void)!write(2, message, sizeof message - 1);
    _exit(130);
}

} // namespace

void install_stop_handlers(bool from_parent_only)
{
    parent_only = from_parent_only ? 1 : 0;
    struct sigaction action {};
    action.sa_sigaction = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO; // the sender; no SA_RESTART: the wait for records returns at once
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP})
        sigaction(signal_number, &action, nullptr);
    signal(SIGPIPE, SIG_IGN); // a reader that went away is told by write's error, not killed
}

bool stop_requested()
{
    return requested != 0;
}

} // namespace engine
