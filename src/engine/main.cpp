// SPDX-License-Identifier: MIT
// pymemtrace-engine: traces pymemtrace's py* probes of given libraries in given processes (and
// what they fork) with BPF, and writes one JSON report when stopped or when they have all ended.
// docs/engine.md describes its shape; `pymemtrace-engine --help` its options.
#include <algorithm> // std::max, std::min
#include <cstdint>   // uint64_t
#include <cstdio>    // std::fprintf, std::fputs
#include <cstring>   // std::strcmp
#include <exception> // std::exception
#include <memory>    // std::unique_ptr
#include <string>    // std::string

#include <signal.h>    // SIGKILL
#include <sys/prctl.h> // prctl: --die-with
#include <unistd.h>    // close, getppid

#include "cpython_frames.hpp"
#include "depth.hpp"
#include "batch.hpp"
#include "error.hpp"
#include "flow.hpp"
#include "output.hpp"
#include "plan.hpp"
#include "report.hpp"
#include "snapshot.hpp"
#include "stop.hpp"
#include "targets.hpp"
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

// How long to wait for records: until the next snapshot, at most 100 ms.
int poll_ms(const engine::Plan &plan, uint64_t next_ns)
{
    if (plan.interval_ms == 0)
        return 100;
    const uint64_t now = engine::monotonic_ns();
    if (now >= next_ns)
        return 0;
    return static_cast<int>(std::min<uint64_t>(100, (next_ns - now) / 1000000 + 1));
}

int run(engine::Plan plan)
{
    engine::install_stop_handlers(plan.stops_from_parent);
    engine::Tracer tracer(plan, [&plan] { engine::read_targets(plan); }); // --targets-fd
    std::unique_ptr<engine::FlowStream> flow;
    if (plan.flow_fd >= 0)
        flow = std::make_unique<engine::FlowStream>(tracer, plan.flow_fd);
    engine::write_all(plan.ready_fd, ready_line(plan, tracer));
    engine::Snapshots snapshots;
    uint64_t next_ns = engine::monotonic_ns() + plan.interval_ms * 1000000;
    while (!engine::stop_requested() && tracer.poll(poll_ms(plan, next_ns))) {
        if (plan.interval_ms == 0 || engine::monotonic_ns() < next_ns)
            continue;
        engine::write_all(1, snapshots.take(tracer) + "\n");
        next_ns += plan.interval_ms * 1000000; // a snapshot every interval, late ones once
        next_ns = std::max(next_ns, engine::monotonic_ns() + 1000000);
    }
    tracer.pause(); // the instant of the report: allocations and frees stop together
    if (plan.batch)
        engine::read_pending_batches(tracer); // and the events the rings hold until then
    tracer.settle_unexamined(); // files gone with their process, read through another one
    auto more_losses = flow ? flow->finish() : decltype(flow->finish()){};
    for (auto &loss : engine::cpython_frames_losses(tracer.skeleton()))
        more_losses.push_back(loss);
    const engine::Report report = engine::make_report(tracer, more_losses);
    if (plan.depth > 1) // the names of the report's stacks, before it
        engine::write_stacks(1, tracer.map_fd("stack_names"));
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
        const engine::Plan plan = engine::parse_plan(argc, argv);
        // Its caller's death is its own (the runner's spawn needs no code of its own in the
        // child: a plain spawn, no Python between fork and exec). Checked after the request: a
        // parent that ended before it is seen here.
        if (plan.die_with != 0
            && (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != plan.die_with))
            return 1;
        return run(plan);
    } catch (const engine::Error &error) {
        std::fprintf(stderr, "pymemtrace-engine: %s\n", error.what());
        return 2;
    } catch (const std::exception &error) {
        std::fprintf(stderr, "pymemtrace-engine: unexpected failure: %s\n", error.what());
        return 1;
    }
}
