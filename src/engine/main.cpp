// SPDX-License-Identifier: MIT
// pymemtrace-engine: traces pymemtrace's py* probes of given libraries in given processes (and
// what they fork) with BPF, and writes one JSON report when stopped or when they have all ended.
// docs/engine.md describes its shape; `pymemtrace-engine --help` its options.
#include <cstdio>    // std::fprintf, std::fputs
#include <cstring>   // std::strcmp
#include <exception> // std::exception
#include <string>    // std::string

#include <unistd.h> // close

#include "batch.hpp"
#include "error.hpp"
#include "output.hpp"
#include "plan.hpp"
#include "report.hpp"
#include "stop.hpp"
#include "tracer.hpp"

namespace {

std::string ready_line(const engine::Plan &plan, const engine::Tracer &tracer)
{
    std::string pids;
    for (const pid_t pid : plan.pids)
        pids += (pids.empty() ? "" : ",") + std::to_string(pid);
    return "{\"event\":\"ready\",\"pids\":[" + pids + "],\"probes\":"
           + std::to_string(tracer.probes_attached()) + ",\"attach_us\":"
           + std::to_string(tracer.attach_ns() / 1000) + "}\n";
}

int run(const engine::Plan &plan)
{
    engine::install_stop_handlers();
    engine::Tracer tracer(plan);
    engine::write_all(plan.ready_fd, ready_line(plan, tracer));
    while (!engine::stop_requested() && tracer.poll(100)) {
    }
    tracer.pause(); // the instant of the report: allocations and frees stop together
    if (plan.batch)
        engine::read_pending_batches(tracer); // and the events the rings hold until then
    const engine::Report report = engine::make_report(tracer);
    engine::write_all(1, report.json + "\n");
    // The report is complete: a reader sees the end of it now, not after the detach (the
    // kernel's grace periods, a few hundred ms).
    close(1);
    return report.lost && !plan.allow_loss ? 3 : 0;
}

} // namespace

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            std::fputs(engine::usage, stdout);
            return 0;
        }
    try {
        return run(engine::parse_plan(argc, argv));
    } catch (const engine::Error &error) {
        std::fprintf(stderr, "pymemtrace-engine: %s\n", error.what());
        return 2;
    } catch (const std::exception &error) {
        std::fprintf(stderr, "pymemtrace-engine: unexpected failure: %s\n", error.what());
        return 1;
    }
}
