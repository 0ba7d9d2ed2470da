// SPDX-License-Identifier: MIT
#include "signals.hpp"

#include <cerrno>  // errno
#include <cstdint> // uint32_t, uint64_t
#include <cstring> // std::strerror
#include <string>  // std::string, std::to_string

#include <bpf/libbpf.h> // ring_buffer__add, bpf_program__attach
#include <unistd.h>     // getppid

#include "error.hpp"
#include "output.hpp"
#include "signals.h"  // engine_signal_record
#include "skeleton.hpp" // engine.skel.h

namespace engine {

namespace {

int on_signal_record(void *, void *data, size_t size)
{
    if (size < sizeof(engine_signal_record))
        return 0;
    const auto &record = *static_cast<const engine_signal_record *>(data);
    write_all(1, "{\"event\":\"signal\",\"signal\":" + std::to_string(record.signal)
                     + ",\"pid\":" + std::to_string(record.pid)
                     + ",\"sender\":" + std::to_string(record.sender)
                     + ",\"time_ns\":" + std::to_string(record.time_ns) + "}\n");
    return 0;
}

} // namespace

void prepare_signals(engine_bpf *skeleton, const Plan &plan)
{
    bpf_program__set_autoload(skeleton->progs.on_signal, plan.report_signals);
    skeleton->rodata->signals_parent = static_cast<uint32_t>(getppid());
}

void watch_signals(engine_bpf *skeleton, const Plan &plan, ring_buffer *records)
{
    if (!plan.report_signals)
        return;
    skeleton->links.on_signal = bpf_program__attach(skeleton->progs.on_signal);
    if (skeleton->links.on_signal == nullptr)
        throw Error(std::string("cannot attach to the signal_generate tracepoint, which "
                                "--report-signals needs: ")
                    + std::strerror(errno));
    if (ring_buffer__add(records, bpf_map__fd(skeleton->maps.signal_records), on_signal_record,
                         nullptr)
        != 0)
        throw Error(std::string("cannot read the signals' ring buffer: ") + std::strerror(errno));
}

} // namespace engine
