// SPDX-License-Identifier: MIT
// flow.hpp: the flow (--flow-fd): a thread that reads the `flow` ring buffer (flow.bpf.h) as the
// events come and writes them to the caller's file descriptor as binary frames, each location's
// names once, before the first events that use it.
//
// A frame is a header {uint32 type; uint32 bytes} and `bytes` of payload, in the machine's byte
// order (the reader runs beside the engine):
//   FRAME_NAMES  (1): uint64 id, int32 line, uint32 truncated (1: a name was cut), uint32 file
//                     bytes, uint32 function bytes, then the file's and the function's bytes as
//                     the target had them (hostile: the reader escapes them)
//   FRAME_EVENTS (2): struct engine_event records (engine.h), one after another
// An id with no names frame had its names refused by the full names map (names_full in the
// report). The stream ends (the descriptor is closed) before the report is written.
#ifndef PYMEMTRACE_ENGINE_FLOW_HPP
#define PYMEMTRACE_ENGINE_FLOW_HPP

#include <atomic>        // std::atomic
#include <cstddef>       // size_t
#include <cstdint>       // uint64_t
#include <string>        // std::string
#include <thread>        // std::thread
#include <unordered_set> // the ids whose names were sent
#include <utility>       // std::pair
#include <vector>        // std::vector

#include "engine.h"
#include "tracer.hpp"

struct ring_buffer;

namespace engine {

enum FrameType : uint32_t { FRAME_NAMES = 1, FRAME_EVENTS = 2 };

class FlowStream {
public:
    FlowStream(const Tracer &tracer, int out_fd); // starts reading
    ~FlowStream();
    FlowStream(const FlowStream &) = delete;
    FlowStream &operator=(const FlowStream &) = delete;

    // Once recording is paused: the rest of the buffer written and the descriptor closed. Returns
    // the losses for the report: events the full buffer refused, by kind, and events that could
    // not be written (the reader went away).
    std::vector<std::pair<std::string, uint64_t>> finish();

private:
    void run();
    static int on_event(void *self, void *data, size_t size);
    void add(const engine_event &event);
    void add_names(uint64_t id);
    void end_events();
    void write_out();

    const Tracer &tracer_;
    int names_fd_;
    int out_fd_;
    ring_buffer *ring_ = nullptr;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    std::string out_;                 // frames not yet written
    size_t events_frame_ = 0;         // where the open events frame starts in out_
    bool events_open_ = false;
    std::unordered_set<uint64_t> named_;
    uint64_t unwritten_ = 0;          // events read but not written: the descriptor failed
    bool broken_ = false;
    bool finished_ = false;
};

} // namespace engine

#endif // PYMEMTRACE_ENGINE_FLOW_HPP
