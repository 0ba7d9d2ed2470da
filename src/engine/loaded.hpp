// SPDX-License-Identifier: MIT
// loaded.hpp: what of the engine's BPF object a run loads. Every program the kernel loads is
// checked by its verifier first, and every hash map gets its buckets when it is made: both are
// on the way to `ready`, so a run loads only the programs it attaches and makes full-size only
// the maps its programs fill (docs/engine.md, "Start-up").
#ifndef PYMEMTRACE_ENGINE_LOADED_HPP
#define PYMEMTRACE_ENGINE_LOADED_HPP

#include "plan.hpp"

struct engine_bpf; // the skeleton (skeleton.hpp)

namespace engine {

// Sets, before the object is loaded, which programs load and how big each map is, for `plan`.
void load_only_what_runs(engine_bpf *skeleton, const Plan &plan);

} // namespace engine

#endif // PYMEMTRACE_ENGINE_LOADED_HPP
