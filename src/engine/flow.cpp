// SPDX-License-Identifier: MIT
#include "flow.hpp"

#include <cerrno>  // errno
#include <cstring> // std::memcpy, std::strerror, strnlen

#include <fcntl.h>  // F_SETPIPE_SZ
#include <signal.h> // pthread_sigmask, signal
#include <unistd.h> // close

#include <bpf/bpf.h>    // bpf_map_lookup_elem
#include <bpf/libbpf.h> // ring_buffer, libbpf_num_possible_cpus

#include "error.hpp"
#include "output.hpp"

namespace engine {

namespace {

const char *const kind_names[EVENT_KINDS] = {"pyalloc", "pyrealloc", "pyfree", "malloc", "calloc",
                                             "realloc", "free", "call", "rtn"};

void append(std::string &out, const void *bytes, size_t size)
{
    out.append(static_cast<const char *>(bytes), size);
}

void append_header(std::string &out, uint32_t type, uint32_t bytes)
{
    append(out, &type, sizeof type);
    append(out, &bytes, sizeof bytes);
}

constexpr size_t FLUSH_BYTES = 1 << 20; // written once this much is pending: bounded memory

} // namespace

FlowStream::FlowStream(const Tracer &tracer, int out_fd)
    : tracer_(tracer), names_fd_(tracer.map_fd("names")), out_fd_(out_fd)
{
    ring_ = ring_buffer__new(tracer.map_fd("flow"), on_event, this, nullptr);
    if (ring_ == nullptr)
        throw Error(std::string("cannot read the engine's flow ring buffer: ")
                    + std::strerror(errno));
    // A larger pipe: fewer switches between this thread and the reader (fails on a file: fine).
    (void)fcntl(out_fd_, F_SETPIPE_SZ, 1 << 20);
    // A reader that went away makes writes fail (counted as unwritten), not kill the engine.
    signal(SIGPIPE, SIG_IGN);
    thread_ = std::thread([this] { run(); });
}

FlowStream::~FlowStream()
{
    stopping_ = true;
    if (thread_.joinable())
        thread_.join();
    ring_buffer__free(ring_);
    if (!finished_)
        close(out_fd_);
}

void FlowStream::run()
{
    // Stop requests are the main thread's (stop.cpp): its poll wakes on them.
    sigset_t stops;
    sigemptyset(&stops);
    for (const int number : {SIGINT, SIGTERM, SIGHUP})
        sigaddset(&stops, number);
    pthread_sigmask(SIG_BLOCK, &stops, nullptr);
    while (!stopping_) {
        ring_buffer__poll(ring_, 100);
        end_events();
        write_out();
    }
}

int FlowStream::on_event(void *self, void *data, size_t size)
{
    if (size >= sizeof(engine_event)) {
        engine_event event;
        std::memcpy(&event, data, sizeof event);
        static_cast<FlowStream *>(self)->add(event);
    }
    return 0;
}

void FlowStream::add(const engine_event &event)
{
    if (event.location != 0 && named_.insert(event.location).second) {
        end_events(); // the names go before the first event that uses them
        add_names(event.location);
    }
    if (!events_open_) {
        events_frame_ = out_.size();
        append_header(out_, FRAME_EVENTS, 0);
        events_open_ = true;
    }
    append(out_, &event, sizeof event);
    if (out_.size() >= FLUSH_BYTES) {
        end_events();
        write_out();
    }
}

// The names BPF put into `names` before it reserved the event's record: always there, unless the
// full map refused them (counted as names_full).
void FlowStream::add_names(uint64_t id)
{
    engine_names names;
    if (bpf_map_lookup_elem(names_fd_, &id, &names) != 0)
        return;
    const uint32_t file_bytes = static_cast<uint32_t>(strnlen(names.file, sizeof names.file));
    const uint32_t function_bytes
        = static_cast<uint32_t>(strnlen(names.function, sizeof names.function));
    append_header(out_, FRAME_NAMES, 8 + 4 * 4 + file_bytes + function_bytes);
    append(out_, &id, sizeof id);
    append(out_, &names.line, sizeof names.line);
    append(out_, &names.truncated, sizeof names.truncated);
    append(out_, &file_bytes, sizeof file_bytes);
    append(out_, &function_bytes, sizeof function_bytes);
    append(out_, names.file, file_bytes);
    append(out_, names.function, function_bytes);
}

void FlowStream::end_events()
{
    if (!events_open_)
        return;
    const uint32_t bytes = static_cast<uint32_t>(out_.size() - events_frame_ - 8);
    std::memcpy(&out_[events_frame_ + 4], &bytes, sizeof bytes);
    events_open_ = false;
}

void FlowStream::write_out()
{
    if (out_.empty())
        return;
    if (!broken_ && !write_all(out_fd_, out_))
        broken_ = true;
    if (broken_) { // count what went nowhere: events frames' records
        for (size_t at = 0; at + 8 <= out_.size();) {
            uint32_t type = 0, bytes = 0;
            std::memcpy(&type, &out_[at], sizeof type);
            std::memcpy(&bytes, &out_[at + 4], sizeof bytes);
            if (type == FRAME_EVENTS)
                unwritten_ += bytes / sizeof(engine_event);
            at += 8 + bytes;
        }
    }
    out_.clear();
}

std::vector<std::pair<std::string, uint64_t>> FlowStream::finish()
{
    stopping_ = true;
    if (thread_.joinable())
        thread_.join();
    ring_buffer__consume(ring_); // what came before the pause
    end_events();
    write_out();
    close(out_fd_);
    finished_ = true;

    std::vector<std::pair<std::string, uint64_t>> losses;
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> per_cpu(cpus > 0 ? cpus : 1);
    const int lost_fd = tracer_.map_fd("flow_lost");
    for (uint32_t kind = 0; kind < EVENT_KINDS; ++kind) {
        uint64_t lost = 0;
        if (bpf_map_lookup_elem(lost_fd, &kind, per_cpu.data()) == 0)
            for (const uint64_t value : per_cpu)
                lost += value;
        losses.emplace_back(std::string("flow_lost_") + kind_names[kind], lost);
    }
    losses.emplace_back("flow_unwritten", unwritten_);
    return losses;
}

} // namespace engine
