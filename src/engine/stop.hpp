// SPDX-License-Identifier: MIT
// stop.hpp: stop requests as users send them. SIGINT, SIGTERM and SIGHUP ask for one graceful
// stop (a report), however many copies arrive within a second (coreutils timeout, systemd and
// supervisors signal a process and its group at once); a request a second or more after the
// first stops at once, without a report (the kernel detaches the probes as the engine exits).
// With `from_parent_only` (--stops-from-parent) only requests the parent sent count: a stop that
// systemd's KillMode=control-group sends every process of a unit leaves the engine to the
// runner, which stops it once the command it passed the request on to has ended.
#ifndef PYMEMTRACE_ENGINE_STOP_HPP
#define PYMEMTRACE_ENGINE_STOP_HPP

namespace engine {

void install_stop_handlers(bool from_parent_only);
bool stop_requested();

} // namespace engine

#endif // PYMEMTRACE_ENGINE_STOP_HPP
