// SPDX-License-Identifier: MIT
// signals.hpp: --report-signals (signals.bpf.h). A line {"event": "signal", "signal": N, "pid":
// TO, "sender": FROM, "time_ns": T} on stdout for each SIGINT, SIGTERM and SIGHUP made for a
// traced process or for the engine's parent, as it comes: the runner tells by them whether its
// command got a stop request itself.
#ifndef PYMEMTRACE_ENGINE_SIGNALS_HPP
#define PYMEMTRACE_ENGINE_SIGNALS_HPP

#include "plan.hpp"

struct engine_bpf; // the skeleton (skeleton.hpp)
struct ring_buffer;

namespace engine {

// Before load: on_signal loads only with the option, and knows the engine's parent.
void prepare_signals(engine_bpf *skeleton, const Plan &plan);
// After load: attaches on_signal, its records read with the others of `records`.
void watch_signals(engine_bpf *skeleton, const Plan &plan, ring_buffer *records);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_SIGNALS_HPP
