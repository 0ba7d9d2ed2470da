// SPDX-License-Identifier: MIT
// tracer.hpp: the BPF side at work: loads the skeleton (engine.bpf.c), attaches the py* probes of
// the plan's libraries to each traced process by PID, follows forks and exits through the ring
// buffer, and pauses recording so that the maps can be read at one instant.
#ifndef PYMEMTRACE_ENGINE_TRACER_HPP
#define PYMEMTRACE_ENGINE_TRACER_HPP

#include <cstdint> // uint64_t
#include <functional> // std::function
#include <map>     // std::map
#include <optional> // std::optional
#include <set>     // std::set
#include <string>  // std::string
#include <vector>  // std::vector

#include <sys/types.h> // pid_t

#include "mappings.hpp"
#include "plan.hpp"
#include "window.hpp"

struct engine_bpf;
struct bpf_link;
struct ring_buffer;
struct engine_map_record;

namespace engine {

// A traced process: given by the plan, or forked by a traced one.
struct Process {
    pid_t pid = 0;
    pid_t parent = 0;            // 0: given by the plan
    uint64_t forked_ns = 0;      // CLOCK_MONOTONIC of the fork (forked processes)
    uint64_t attached_ns = 0;    // when its probes were attached; 0: never
    std::string attach_error;    // why they could not be (it ended first...)
    bool ended = false;
    bool exit_known = false;
    int exit_code = 0;           // wait(2)'s status
    int pidfd = -1;              // tells an end that the exit tracepoint did not see
    // Forked ones: whether its hits before the attach are known to be none (it mapped none of
    // the libraries once attached), and the probes it is known to have hit then (window.hpp).
    bool window_exact = false;
    std::set<std::string> window_dropped;
    bool setid = false; // it exec'd a set-ID program (--setid-stop): traced no more since
    std::vector<uint64_t> armed_ns; // by library (Tracer's order): when its probes were armed
};

class Tracer {
public:
    // Checks the machine and the plan, loads, attaches. With --targets-fd, `name_targets` fills
    // the plan's pids and libraries once the programs are loaded (main.cpp).
    explicit Tracer(const Plan &plan, const std::function<void()> &name_targets = nullptr);
    ~Tracer();
    Tracer(const Tracer &) = delete;
    Tracer &operator=(const Tracer &) = delete;

    // Waits up to `timeout_ms` for fork and exit records and handles them (children get their
    // probes). Returns false once every traced process has ended.
    bool poll(int timeout_ms);

    void pause();  // recording of allocations and frees stops, all together
    void resume();
    void set_snapshot_epoch(uint32_t epoch); // --interval: the instant of a snapshot

    const std::map<pid_t, Process> &processes() const { return processes_; }
    const std::vector<Library> &libraries() const { return libraries_; } // in cookie order
    size_t libraries_by_path() const { return by_path_; } // the first ones (--all, --by-path)
    const Plan &plan() const { return plan_; }
    size_t probes_attached() const { return links_.size(); }
    uint64_t attach_ns() const { return attach_ns_; }
    int map_fd(const char *name) const;
    // Instrumented libraries mapped by a traced process before their attach there (mappings.hpp).
    const std::vector<LateLibrary> &late_libraries() const { return late_; }
    // Files mapped by traced processes that the engine could never look at (mappings.hpp).
    std::vector<UnexaminedFile> unexamined_files() const;
    // Before the report: looks for those files in every process that maps them now.
    void settle_unexamined();
    uint64_t batch_since() const; // --batch: the targets' clock when attaching started
    const engine_bpf *skeleton() const { return skeleton_; } // for a feature's own maps

    // The counters summed over CPUs, indexed by enum engine_counter.
    std::vector<uint64_t> counters() const;

private:
    void trace(pid_t pid, pid_t parent, uint64_t forked_ns);
    void attach_everywhere();   // --all
    void enrol(pid_t pid);      // --all: a process's first event
    void attach(Process &process);
    bool attach_library(Process &process, size_t index, std::string &why);
    int library_index(const FileId &id) const; // -1: not traced
    void add_mapped_libraries(pid_t pid, const std::optional<FileId> &only = std::nullopt);
    void adopt(Library library); // a library found mapped: traced from now on
    void on_mapping(const engine_map_record &record);
    void handle(const void *record);
    void notice_ends();
    void stop_tracing(Process &process);
    static int on_record(void *self, void *data, size_t size);

    const Plan &plan_;
    std::vector<Library> libraries_; // the plan's, each file once
    engine_bpf *skeleton_ = nullptr;
    ring_buffer *records_ = nullptr;
    std::vector<std::pair<pid_t, bpf_link *>> links_; // each probe's link, by process
    std::map<pid_t, Process> processes_;
    uint64_t attach_ns_ = 0; // how long attaching the plan's processes took
    MappedFiles mapped_files_; // the files it found mapped (kept open until the end)
    std::vector<LateLibrary> late_;
    std::vector<UnexaminedFile> unexamined_; // some may be looked at later, in another process
    uint64_t ready_ns_ = 0; // when every probe of the plan's processes was attached
    size_t by_path_ = 0; // libraries_[0, by_path_) are attached by path (--all, --by-path)
};

uint64_t monotonic_ns();

} // namespace engine

#endif // PYMEMTRACE_ENGINE_TRACER_HPP
