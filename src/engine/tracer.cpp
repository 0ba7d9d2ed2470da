// SPDX-License-Identifier: MIT
#include "tracer.hpp"

#include <cerrno>   // errno
#include <cstdarg>  // va_list
#include <cstdio>   // std::vsnprintf, std::fputs
#include <algorithm> // std::max
#include <cstring>  // std::strerror, std::memcpy
#include <fstream> // /proc/PID/status
#include <set>     // std::set
#include <thread>  // std::thread: detaching in parallel
#include <ctime>    // clock_gettime, nanosleep

#include <poll.h>        // poll: a pidfd is readable once its process ended
#include <signal.h>      // kill
#include <sys/syscall.h> // SYS_pidfd_open
#include <unistd.h>      // geteuid, access, close, syscall, getpagesize

#include <bpf/bpf.h>    // bpf_map_update_elem, bpf_map_lookup_elem
#include <bpf/libbpf.h> // bpf_program__attach_usdt, ring_buffer

#include "skeleton.hpp" // engine.skel.h

#include "batch.hpp" // target_clock_now
#include "cpython_frames.hpp"
#include "object_allocator.hpp"
#include "engine.h"  // struct engine_record
#include "error.hpp"
#include "json.hpp" // quote
#include "loaded.hpp"
#include "notes.hpp"
#include "output.hpp"
#include "signals.hpp" // --report-signals

namespace engine {

namespace {

bool libbpf_verbose = false;
std::string libbpf_last; // libbpf's last warning: the detail of a failed call

int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
    char text[512];
    std::vsnprintf(text, sizeof text, format, args);
    if (level != LIBBPF_DEBUG) {
        libbpf_last = text;
        while (!libbpf_last.empty() && libbpf_last.back() == '\n')
            libbpf_last.pop_back();
    }
    if (libbpf_verbose)
        std::fputs(text, stderr);
    return 0;
}

std::string libbpf_detail()
{
    if (libbpf_last.empty())
        return std::string();
    const bool prefixed = libbpf_last.rfind("libbpf: ", 0) == 0; // most of its messages are
    return " (" + (prefixed ? std::string() : std::string("libbpf: ")) + libbpf_last + ")";
}

void check_machine()
{
    if (geteuid() != 0)
        throw Error("loading BPF programs and attaching uprobes needs root: run pymemtrace-engine "
                    "as root (sudo)");
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
        throw Error("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): boot a kernel "
                    "built with CONFIG_DEBUG_INFO_BTF=y, as Debian's are");
    if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0)
        throw Error("this kernel has no uprobes (/sys/bus/event_source/devices/uprobe is "
                    "missing): boot a kernel built with CONFIG_UPROBE_EVENTS=y, as Debian's are");
}

// Whether the kernel has the tracepoint: its directory in tracefs (the runner mounts it), else
// its type in the kernel's BTF (which libbpf reads again to load: 10 ms more on the way to
// `ready`, start-up).
bool has_tracepoint(const char *system, const char *name)
{
    const std::string events = "/sys/kernel/tracing/events/";
    if (access(events.c_str(), F_OK) == 0)
        return access((events + system + "/" + name).c_str(), F_OK) == 0;
    return libbpf_find_vmlinux_btf_id(name, BPF_TRACE_RAW_TP) > 0;
}

// The probes attached, and the programs that record them: the py* ones, or with --plain the
// plain ones (never both: a wrapper fires both, its events would count twice).
struct Probe {
    const char *name;
    bpf_program *program;
};

// --depth N: the probe whose attach asks the target for stack records of N frames.
const char *stack_request(const Plan &plan)
{
    return plan.depth <= 1 ? nullptr : plan.depth <= 4 ? "pystack4" : "pystack16";
}

std::vector<Probe> probes_of(const Plan &plan, const engine_bpf *skeleton)
{
    if (plan.flow_fd >= 0 && plan.plain) // --python-frames: cpython_flow.bpf.h
        return {{"alloc", skeleton->progs.on_alloc_flow},
                {"realloc", skeleton->progs.on_realloc_flow},
                {"free", skeleton->progs.on_free_flow}};
    if (plan.flow_fd >= 0) // every event to the flow (flow.bpf.h), none aggregated
        return {{"pyalloc", skeleton->progs.on_pyalloc_flow},
                {"pyrealloc", skeleton->progs.on_pyrealloc_flow},
                {"pyfree", skeleton->progs.on_pyfree_flow}};
    if (plan.plain)
        return {{"alloc", skeleton->progs.on_alloc},
                {"realloc", skeleton->progs.on_realloc},
                {"free", skeleton->progs.on_free}};
    std::vector<Probe> probes = {{"pyalloc", skeleton->progs.on_pyalloc},
                                 {"pyrealloc", skeleton->progs.on_pyrealloc},
                                 {"pyfree", skeleton->progs.on_pyfree}};
    if (stack_request(plan) != nullptr)
        probes.push_back({stack_request(plan), skeleton->progs.on_stack_request});
    return probes;
}

bool has_probe(const Library &library, const char *name)
{
    for (const auto &site : library.sites)
        if (site.name == name)
            return true;
    return false;
}

// Every probe attached to `library`: the plan's programs, and the requests that go with them.
std::vector<Probe> probes_for(const Plan &plan, const engine_bpf *skeleton,
                              const Library &library)
{
    std::vector<Probe> probes = probes_of(plan, skeleton);
    if (plan.native) // the request: its semaphore asks for the native caller
        probes.push_back({"pynative", skeleton->progs.on_pynative});
    if (plan.batch && has_probe(library, "pybatch")) // batches, beside the py* semaphores
        probes.push_back({"pybatch", skeleton->progs.on_pybatch});
    return probes;
}

void check_library(const Library &library, bool plain, const char *request)
{
    std::set<std::string> found;
    for (const auto &site : library.sites)
        found.insert(site.name);
    static const char *const plain_names[] = {"alloc", "realloc", "free"};
    static const char *const py_names[] = {"pyalloc", "pyrealloc", "pyfree"};
    for (const char *name : plain ? plain_names : py_names)
        if (found.count(name) == 0)
            throw Error(library.path + " has no pymemtrace:" + name + " probe"
                        + (found.empty() ? " (no pymemtrace probes at all)" : "")
                        + ": give a library built with pymemtrace's headers ("
                        + (plain ? "<pymemtrace/pymemtrace.h>, docs/probes.md"
                                 : "<pymemtrace/python.h>, docs/extensions.md")
                        + ")");
    if (request != nullptr && found.count(request) == 0)
        throw Error(library.path + " has no pymemtrace:" + request + " probe (built with older "
                    "pymemtrace headers, it records no Python stacks): rebuild it, or give "
                    "--depth 1");
}

void check_process(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        throw Error("no process " + std::to_string(pid) + ": give the PID of a running process");
    // A thread's id would be traced as its process but never seen to end: ask for the process.
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("Tgid:", 0) == 0 && std::stol(line.substr(5)) != pid)
            throw Error(std::to_string(pid) + " is a thread of process " + line.substr(6)
                        + ": give the process's PID");
}

// The plan's libraries, each file once (two names of one file would count its events twice).
std::vector<Library> distinct_files(const std::vector<std::string> &paths)
{
    std::vector<Library> distinct;
    std::set<std::pair<dev_t, ino_t>> seen;
    for (const auto &path : paths) {
        Library library = library_of(path);
        if (seen.emplace(library.device, library.inode).second)
            distinct.push_back(std::move(library));
    }
    return distinct;
}

int open_pidfd(pid_t pid)
{
    return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

} // namespace

uint64_t monotonic_ns()
{
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
}

Tracer::Tracer(const Plan &plan, const std::function<void()> &name_targets) : plan_(plan)
{
    libbpf_verbose = plan.verbose;
    libbpf_set_print(print_libbpf);
    check_machine();
    // Bad targets are said before the load; with --targets-fd they are named after it.
    const auto check_targets = [this, &plan] {
        libraries_ = distinct_files(plan.libraries);
        for (const auto &library : libraries_)
            check_library(library, plan.plain, stack_request(plan));
        for (const pid_t pid : plan.pids)
            check_process(pid);
    };
    if (plan.targets_fd < 0)
        check_targets();

    skeleton_ = engine_bpf__open();
    if (skeleton_ == nullptr)
        throw Error(std::string("cannot open the engine's BPF programs: ") + std::strerror(errno)
                    + libbpf_detail());
    bpf_map__set_max_entries(skeleton_->maps.live, plan.max_live);
    bpf_map__set_max_entries(skeleton_->maps.early, plan.max_live); // --batch: frees read early
    bpf_map__set_max_entries(skeleton_->maps.summary, plan.max_locations);
    bpf_map__set_max_entries(skeleton_->maps.names, plan.max_locations);
    skeleton_->rodata->setid_stop = plan.setid_stop ? 1 : 0;
    skeleton_->rodata->native_caller = plan.native ? 1 : 0;
    skeleton_->rodata->snapshots = plan.interval_ms != 0 ? 1 : 0;
    skeleton_->rodata->every_process = plan.every_process ? 1 : 0;
    skeleton_->rodata->traced_only = plan.by_path ? 1 : 0; // by_path.bpf.h
    skeleton_->rodata->stack_depth = plan.depth > 1 ? plan.depth : 0;
    skeleton_->rodata->no_follow = plan.follow ? 0 : 1;
    skeleton_->rodata->size_histograms = plan.histograms ? 1 : 0;
    bpf_map__set_max_entries(skeleton_->maps.size_buckets, plan.max_locations);
    skeleton_->rodata->python_frames = plan.python_frames.empty() ? 0 : 1;
    skeleton_->rodata->allocator_domain = plan.allocator_domain;
    skeleton_->rodata->python_call_stack = plan.python_call_stack ? 1 : 0; // call_stack.bpf.h
    bpf_map__set_max_entries(skeleton_->maps.stack_names, plan.max_locations);
    bpf_map__set_max_entries(skeleton_->maps.live_rows, plan.max_locations);
    // Without a flow its ring buffer is the smallest there is: one page.
    bpf_map__set_max_entries(skeleton_->maps.flow, plan.flow_fd >= 0
                                                       ? plan.flow_bytes
                                                       : static_cast<uint32_t>(getpagesize()));
    load_only_what_runs(skeleton_, plan); // programs it attaches, maps it fills: start-up
    prepare_signals(skeleton_, plan); // --report-signals
    // --batch's programs are loaded only with it; the exec one only where the kernel has its
    // tracepoint (Linux 6.10+).
    bpf_program__set_autoload(skeleton_->progs.on_pybatch, plan.batch);
    bpf_program__set_autoload(skeleton_->progs.on_thread_exit, plan.batch);
    bpf_program__set_autoload(skeleton_->progs.on_prepare_exec,
                              plan.batch && has_tracepoint("sched", "sched_prepare_exec"));
    if (engine_bpf__load(skeleton_) != 0)
        throw Error(std::string("the kernel refused the engine's BPF programs: ")
                    + std::strerror(errno) + libbpf_detail()
                    + "; run with --verbose for the verifier's log");
    skeleton_->links.on_fork = bpf_program__attach(skeleton_->progs.on_fork);
    skeleton_->links.on_exit = bpf_program__attach(skeleton_->progs.on_exit);
    if (skeleton_->links.on_fork == nullptr || skeleton_->links.on_exit == nullptr)
        throw Error(std::string("cannot attach to the sched_process_fork/exit tracepoints: ")
                    + std::strerror(errno) + libbpf_detail());
    if (plan.batch) { // an exiting thread's rings are read before its memory goes
        skeleton_->links.on_thread_exit = bpf_program__attach(skeleton_->progs.on_thread_exit);
        if (skeleton_->links.on_thread_exit == nullptr)
            throw Error(std::string("cannot attach to the sched_process_exit tracepoint, which "
                                    "--batch needs: ")
                        + std::strerror(errno) + libbpf_detail());
        // Before Linux 6.10 there is no such tracepoint: what a ring holds at an exec is then
        // stated as batch_unread (batch.cpp).
        if (bpf_program__autoload(skeleton_->progs.on_prepare_exec))
            skeleton_->links.on_prepare_exec =
                bpf_program__attach(skeleton_->progs.on_prepare_exec);
    }
    if (plan.setid_stop) {
        skeleton_->links.on_exec = bpf_program__attach(skeleton_->progs.on_exec);
        if (skeleton_->links.on_exec == nullptr)
            throw Error(std::string("cannot attach to the sched_process_exec tracepoint, which "
                                    "--setid-stop needs: ")
                        + std::strerror(errno) + libbpf_detail());
    }
    // Libraries mapped later: their mappings are seen from now on (before any scan of the maps).
    // Not with --all, which traces the libraries given, by path.
    if (!plan.every_process)
        skeleton_->links.on_mmap = bpf_program__attach(skeleton_->progs.on_mmap);
    if (!plan.every_process && skeleton_->links.on_mmap == nullptr)
        throw Error(std::string("cannot attach to the syscalls/sys_exit_mmap tracepoint: ")
                    + std::strerror(errno) + libbpf_detail()
                    + "; mount tracefs (mount -t tracefs tracefs /sys/kernel/tracing)");
    records_ = ring_buffer__new(bpf_map__fd(skeleton_->maps.records), on_record, this, nullptr);
    if (records_ == nullptr)
        throw Error(std::string("cannot read the engine's ring buffer: ") + std::strerror(errno));
    watch_signals(skeleton_, plan, records_); // --report-signals, from before the command runs

    if (plan.targets_fd >= 0) { // loaded and watching forks, exits and mappings: the targets
        name_targets();
        check_targets();
    }
    const uint64_t start = monotonic_ns();
    // --all, --by-path: the plan's libraries by path, before any process's (one found mapped
    // under another name is then known by its inode, and never attached per PID as well).
    if (plan.every_process || plan.by_path)
        attach_everywhere();
    by_path_ = plan.every_process || plan.by_path ? libraries_.size() : 0;
    for (const pid_t pid : plan.pids)
        trace(pid, 0, 0);
    // What the processes mapped meanwhile is looked at (and attached) before `ready`, while a
    // held command still waits: a file read later may be gone with a process that ended.
    ring_buffer__consume(records_);
    ready_ns_ = monotonic_ns();
    attach_ns_ = ready_ns_ - start;
    // --batch: events from before `ready` are not this report's: an earlier tracer's, or made
    // while pybatch's semaphore was set and its program not yet attached (its fires missed).
    skeleton_->data->batch_since = target_clock_now();
}

Tracer::~Tracer()
{
    // Detaching gives every target its semaphores back (the kernel's uprobe reference counters).
    // Each detach waits for a kernel RCU grace period (250-350 ms here, measured): in parallel
    // they wait for the same ones, 32 at a time.
    for (size_t first = 0; first < links_.size(); first += 32) {
        std::vector<std::thread> detaching;
        for (size_t i = first; i < links_.size() && i < first + 32; ++i)
            detaching.emplace_back(bpf_link__destroy, links_[i].second);
        for (auto &thread : detaching)
            thread.join();
    }
    ring_buffer__free(records_);
    engine_bpf__destroy(skeleton_);
    for (auto &entry : processes_)
        if (entry.second.pidfd >= 0)
            close(entry.second.pidfd);
}

uint64_t Tracer::batch_since() const
{
    return skeleton_->data->batch_since;
}

int Tracer::map_fd(const char *name) const
{
    return bpf_object__find_map_fd_by_name(skeleton_->obj, name);
}

void Tracer::trace(pid_t pid, pid_t parent, uint64_t forked_ns)
{
    if (processes_.count(pid) != 0)
        return;
    Process &process = processes_[pid];
    process.pid = pid;
    process.parent = parent;
    process.forked_ns = forked_ns;
    process.pidfd = open_pidfd(pid);
    // A child with only libraries attached by path (in `traced` since its fork, from BPF) had
    // their probes from its first instruction: it missed nothing, ended or not.
    const std::vector<Library> per_pid(libraries_.begin() + static_cast<long>(by_path_),
                                       libraries_.end());
    const bool covered = parent != 0 && per_pid.empty();
    if (process.pidfd < 0) { // it has ended already (its exit record follows)
        process.ended = true;
        if (covered) {
            process.attached_ns = monotonic_ns();
            process.window_exact = true;
        } else {
            process.attach_error = "it ended before its probes could be attached";
        }
        return;
    }
    // First in the map, so that what it forks while its probes are attached is followed.
    const uint32_t key = static_cast<uint32_t>(pid), one = 1;
    if (bpf_map_update_elem(bpf_map__fd(skeleton_->maps.traced), &key, &one, BPF_ANY) != 0
        && plan_.by_path) { // its events are not kept (by_path.bpf.h)
        process.attach_error = "too many processes traced at once (the traced map is full)";
        return;
    }
    if (parent != 0) // a drop is visible only until the attach re-arms the probe
        process.window_dropped = disarmed_in_child(pid, parent, per_pid);
    else // the instrumented libraries it maps already are attached before `ready`
        add_mapped_libraries(pid);
    attach(process);
    if (parent != 0 && process.attached_ns != 0)
        // --allocator: no library, but the Python binary or libc it maps, whose inherited
        // breakpoints it dropped at their first hit before this attach: never known to be exact.
        process.window_exact = process.window_dropped.empty()
                               && (per_pid.empty() || maps_none_of(pid, per_pid))
                               && plan_.allocator.empty();
}

void Tracer::attach(Process &process)
{
    std::string not_python;
    if (!plan_.python_frames.empty()
        && !attach_cpython_frames(skeleton_, process.pid, plan_.python_frames, links_, not_python)) {
        if (process.parent == 0)
            throw Error(not_python);
        process.attach_error = not_python; // a child that ended meanwhile
        return;
    }
    if (!plan_.allocator.empty()
        && !attach_object_allocator(skeleton_, process.pid,
                                    plan_.allocator == "libc" ? plan_.allocator_library
                                                              : plan_.python_frames,
                                    plan_.allocator, links_, not_python,
                                    plan_.flow_fd >= 0)) {
        if (process.parent == 0)
            throw Error(not_python);
        process.attach_error = not_python;
        return;
    }
    for (size_t index = by_path_; index < libraries_.size(); ++index) { // not by path again
        if (index < process.armed_ns.size() && process.armed_ns[index] != 0)
            continue; // a library found mapped while this process was being traced
        std::string why;
        if (attach_library(process, index, why))
            continue;
        if (process.parent == 0)
            throw Error(why + "; check that the process runs and may be traced");
        process.attach_error = why; // a child that ended meanwhile
        return;
    }
    process.attached_ns = monotonic_ns();
    if (process.parent != 0) // a caller waiting for a child's probes can go on
        write_all(plan_.ready_fd,
                  "{\"event\":\"attached\",\"pid\":" + std::to_string(process.pid)
                      + ",\"parent\":" + std::to_string(process.parent) + ",\"window_us\":"
                      + std::to_string((process.attached_ns - process.forked_ns) / 1000) + "}\n");
}

bool Tracer::attach_library(Process &process, size_t index, std::string &why)
{
    const Library &library = libraries_[index];
    for (const auto &probe : probes_for(plan_, skeleton_, library)) {
        // By path and PID: the uprobe is installed in this process only, also in a mapping of
        // the library made after this call; the kernel sets the probe's semaphore there. The
        // cookie names the library in --native's keys.
        bpf_usdt_opts options{};
        options.sz = sizeof options;
        options.usdt_cookie = index;
        bpf_link *link = bpf_program__attach_usdt(probe.program, process.pid,
                                                  library.path.c_str(), "pymemtrace",
                                                  probe.name, &options);
        if (link == nullptr) {
            const int error = errno;
            // A library found mapped is named by the target's bytes: JSON-quoted, never raw.
            const std::string named =
                library.shown == library.path ? library.path : quote(library.shown);
            why = std::string("cannot attach pymemtrace:") + probe.name + " of " + named
                  + " in process " + std::to_string(process.pid) + ": "
                  + std::strerror(error) + libbpf_detail();
            return false;
        }
        links_.emplace_back(process.pid, link);
    }
    if (process.armed_ns.size() <= index)
        process.armed_ns.resize(index + 1, 0);
    process.armed_ns[index] = monotonic_ns(); // a hit from now on is recorded
    return true;
}

int Tracer::library_index(const FileId &id) const
{
    for (size_t index = 0; index < libraries_.size(); ++index)
        if (file_id(libraries_[index]) == id)
            return static_cast<int>(index);
    return -1;
}

// The instrumented libraries `pid` maps that are not traced yet (`only`: that file) are traced
// from now on in every traced process: attached at once in those already attached, the others
// get them with the rest in attach().
void Tracer::add_mapped_libraries(pid_t pid, const std::optional<FileId> &only)
{
    if (!plan_.allocator.empty())
        return; // the Python binary's functions, not libraries' probes (they would count twice)
    for (auto &library : mapped_files_.newly_found(pid, plan_.plain, only))
        if (library_index(file_id(library)) < 0) // else one of the plan's, by another name
            adopt(std::move(library));
}

void Tracer::adopt(Library library)
{
    libraries_.push_back(std::move(library));
    for (const auto &file : unexamined_) // mapped by a process gone before it was looked at
        if (file.id == file_id(libraries_.back()))
            late_.push_back(LateLibrary{file.pid, libraries_.back().shown, 0, 0, 0,
                                        "it ended, or unmapped the library, before the engine "
                                        "could look at it"});
    for (auto &entry : processes_) {
        Process &process = entry.second;
        std::string why;
        if (!process.ended && !process.setid && process.attached_ns != 0)
            attach_library(process, libraries_.size() - 1, why); // failing: it ended
    }
}

// A traced process mapped a file executable (mappings.bpf.h). An instrumented library it maps
// before its probes there are armed had its semaphores at 0 meanwhile: what it allocated then
// was not even trapped. The report states each such window (late_libraries) as a loss.
void Tracer::on_mapping(const engine_map_record &record)
{
    const pid_t pid = static_cast<pid_t>(record.pid);
    const auto found = processes_.find(pid);
    if (plan_.every_process) // --all traces the libraries given, by path, in every process
        return;
    if (!plan_.allocator.empty())
        return; // no library is traced (add_mapped_libraries)
    if (found == processes_.end() || found->second.setid || found->second.attached_ns == 0)
        return; // not traced, or its whole life is a stated loss already (attach_error)
    const FileId id = mapped_files_.maps_name(
        pid, record.start, FileId{record.device >> 20, record.device & 0xfffff, record.inode});
    add_mapped_libraries(pid, id);
    const int index = library_index(id);
    if (index < 0) {
        if (!mapped_files_.looked_at(id)) // gone from its maps before the engine could look
            unexamined_.push_back(UnexaminedFile{pid, id});
        return; // not instrumented, or not known to be
    }
    if (static_cast<size_t>(index) < by_path_)
        return; // attached by path: its probes are in every mapping of it, as it is made
    if (ready_ns_ == 0)
        return; // before `ready`, which nothing is promised before: attached by then
    Process &process = found->second;
    const size_t at = static_cast<size_t>(index);
    uint64_t armed = at < process.armed_ns.size() ? process.armed_ns[at] : 0;
    std::string why;
    if (armed == 0 && attach_library(process, at, why)) // not attached with the others: now
        armed = process.armed_ns[at];
    if (armed != 0 && record.time_ns >= armed)
        return; // mapped with the probes in place: nothing missed
    // Armed before `ready` in a process of the plan, which nothing is promised before (a
    // command is held until then), or in a forked one's first attach: its fork window, which
    // its own entry states, holds the time before.
    if (armed != 0 && armed <= (process.parent == 0 ? ready_ns_ : process.attached_ns))
        return;
    for (const auto &late : late_)
        if (late.pid == pid && late.shown == libraries_[at].shown)
            return; // mapped twice before the attach: one window
    LateLibrary late{pid, libraries_[at].shown, record.time_ns, armed, 0, why};
    const uint64_t from = std::max(record.time_ns, std::max(process.attached_ns, ready_ns_));
    late.window_ns = armed > from ? armed - from : 0;
    late_.push_back(late);
    write_all(plan_.ready_fd, "{\"event\":\"library\",\"pid\":" + std::to_string(pid)
                                  + ",\"path\":" + quote(late.shown) + ",\"window_us\":"
                                  + std::to_string(late.window_ns / 1000) + "}\n");
}

void Tracer::settle_unexamined()
{
    for (const auto &file : unexamined_files()) {
        if (mapped_files_.looked_at(file.id))
            continue; // settled by an earlier one of the same file
        bool read = false;
        auto library = mapped_files_.look_anywhere(file.id, plan_.plain, read);
        if (library && library_index(file_id(*library)) < 0)
            adopt(std::move(*library));
    }
}

std::vector<UnexaminedFile> Tracer::unexamined_files() const
{
    std::vector<UnexaminedFile> unknown;
    for (const auto &file : unexamined_)
        if (!mapped_files_.looked_at(file.id)) // else known since: no probes, or a late library
            unknown.push_back(file);
    return unknown;
}

// --all, --by-path: by path, PID -1: every process that maps a library, now or later, traps its
// probes (a forked one included, from its first instruction).
void Tracer::attach_everywhere()
{
    for (std::size_t index = 0; index < libraries_.size(); ++index) {
        const Library &library = libraries_[index];
        for (const auto &probe : probes_for(plan_, skeleton_, library)) {
            bpf_usdt_opts options{};
            options.sz = sizeof options;
            options.usdt_cookie = index; // the library, in --native's keys
            bpf_link *link = bpf_program__attach_usdt(probe.program, -1, library.path.c_str(),
                                                      "pymemtrace", probe.name, &options);
            if (link == nullptr)
                throw Error(std::string("cannot attach pymemtrace:") + probe.name + " of "
                            + library.path + " in every process: " + std::strerror(errno)
                            + libbpf_detail() + "; check that the library can be read");
            links_.emplace_back(-1, link);
        }
    }
}

void Tracer::enrol(pid_t pid)
{
    if (processes_.count(pid) != 0)
        return;
    Process &process = processes_[pid];
    process.pid = pid;
    process.attached_ns = monotonic_ns();
    process.pidfd = open_pidfd(pid);
    process.ended = process.pidfd < 0;
    write_all(plan_.ready_fd, "{\"event\":\"process\",\"pid\":" + std::to_string(pid) + "}\n");
}

int Tracer::on_record(void *self, void *data, size_t size)
{
    Tracer *tracer = static_cast<Tracer *>(self);
    uint32_t kind = 0;
    if (size >= sizeof kind)
        std::memcpy(&kind, data, sizeof kind);
    if (kind == RECORD_MAP && size >= sizeof(engine_map_record)) {
        engine_map_record record;
        std::memcpy(&record, data, sizeof record);
        tracer->on_mapping(record);
    } else if (size >= sizeof(engine_record)) {
        tracer->handle(data);
    }
    return 0;
}

void Tracer::handle(const void *data)
{
    engine_record record;
    std::memcpy(&record, data, sizeof record);
    const pid_t pid = static_cast<pid_t>(record.pid);
    if (record.kind == RECORD_PROCESS) {
        enrol(pid);
    } else if (record.kind == RECORD_FORK) {
        trace(pid, static_cast<pid_t>(record.parent), record.time_ns);
    } else if (record.kind == RECORD_SETID) {
        auto found = processes_.find(pid);
        if (found != processes_.end())
            stop_tracing(found->second);
    } else if (record.kind == RECORD_EXIT) {
        auto found = processes_.find(pid);
        if (found == processes_.end())
            return;
        found->second.ended = true;
        found->second.exit_known = true;
        found->second.exit_code = record.exit_code;
    }
}

// A process that exec'd a set-ID program: its probes are detached (BPF already ignores them),
// so that it pays nothing more and nothing of it is read.
void Tracer::stop_tracing(Process &process)
{
    process.setid = true;
    std::vector<std::pair<pid_t, bpf_link *>> kept;
    for (const auto &link : links_) {
        if (link.first == process.pid)
            bpf_link__destroy(link.second);
        else
            kept.push_back(link);
    }
    links_ = std::move(kept);
}

void Tracer::notice_ends()
{
    bool draining = false;
    for (auto &entry : processes_) {
        Process &process = entry.second;
        if (process.ended || process.pidfd < 0)
            continue;
        pollfd ready{process.pidfd, POLLIN, 0};
        if (::poll(&ready, 1, 0) <= 0)
            continue;
        // Its exit record (sent before the pidfd became readable) may still be in the buffer.
        if (!draining) {
            ring_buffer__consume(records_);
            draining = true;
        }
        process.ended = true; // exit_known stays false if the record was lost
    }
}

bool Tracer::poll(int timeout_ms)
{
    ring_buffer__poll(records_, timeout_ms); // -EINTR on a signal: the caller looks at it
    notice_ends();
    if (plan_.every_process)
        return true; // until stopped
    for (const auto &entry : processes_)
        if (!entry.second.ended && !entry.second.setid)
            return true;
    return false;
}

void Tracer::pause()
{
    __atomic_store_n(&skeleton_->bss->paused, 1u, __ATOMIC_SEQ_CST);
    // A handler that read the flag just before runs to its end within microseconds.
    const timespec settle{0, 2000000};
    nanosleep(&settle, nullptr);
    ring_buffer__consume(records_);
}

void Tracer::resume()
{
    __atomic_store_n(&skeleton_->bss->paused, 0u, __ATOMIC_SEQ_CST);
}

void Tracer::set_snapshot_epoch(uint32_t epoch)
{
    __atomic_store_n(&skeleton_->bss->snapshot_epoch, epoch, __ATOMIC_SEQ_CST);
}

std::vector<uint64_t> Tracer::counters() const
{
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> totals(COUNTER_COUNT, 0), per_cpu(cpus > 0 ? cpus : 1);
    const int fd = bpf_map__fd(skeleton_->maps.counters);
    for (uint32_t index = 0; index < COUNTER_COUNT; ++index) {
        if (bpf_map_lookup_elem(fd, &index, per_cpu.data()) != 0)
            continue;
        for (const uint64_t value : per_cpu)
            totals[index] += value;
    }
    // --batch: what the engine itself read from the rings (batch.cpp).
    const int engine_fd = bpf_map__fd(skeleton_->maps.engine_counts);
    for (uint32_t index = 0; index < COUNTER_COUNT; ++index) {
        uint64_t value = 0;
        if (bpf_map_lookup_elem(engine_fd, &index, &value) == 0)
            totals[index] += value;
    }
    return totals;
}

} // namespace engine
