// SPDX-License-Identifier: MIT
#include "loaded.hpp"

#include <initializer_list> // the programs of one kind

#include <bpf/libbpf.h> // bpf_program__set_autoload, bpf_map__set_max_entries

#include "skeleton.hpp" // engine.skel.h

namespace engine {

namespace {

void load_if(bool wanted, std::initializer_list<bpf_program *> programs)
{
    for (bpf_program *program : programs)
        bpf_program__set_autoload(program, wanted);
}

// A map no program of this run fills: the smallest there is (its programs are not loaded, or
// the .rodata switch that reaches it is off).
void shrink_unless(bool used, bpf_map *map)
{
    if (!used)
        bpf_map__set_max_entries(map, 1);
}

} // namespace

void load_only_what_runs(engine_bpf *skeleton, const Plan &plan)
{
    auto &progs = skeleton->progs;
    const bool flow = plan.flow_fd >= 0;
    // The events' programs: a flow's, the plain probes', or the py* ones that aggregate
    // (tracer.cpp's probes_of attaches one of these three sets). The rest are attached only with
    // their option. The batch programs are chosen by the tracer.
    load_if(flow && !plan.plain, {progs.on_pyalloc_flow, progs.on_pyrealloc_flow,
                                  progs.on_pyfree_flow});
    load_if(flow && plan.plain, {progs.on_alloc_flow, progs.on_realloc_flow, progs.on_free_flow});
    load_if(!flow && plan.plain, {progs.on_alloc, progs.on_realloc, progs.on_free});
    load_if(!flow && !plan.plain, {progs.on_pyalloc, progs.on_pyrealloc, progs.on_pyfree});
    // --python-frames' stack, and --allocator's functions with or without a flow: loaded in
    // every run before, 17 programs for the verifier that only those modes attach.
    const bool allocator = !plan.allocator.empty();
    load_if(!plan.python_frames.empty(),
            {progs.on_cpython_entry, progs.on_cpython_line, progs.on_cpython_return});
    load_if(allocator && !flow,
            {progs.on_allocator_malloc, progs.on_allocator_malloc_return,
             progs.on_allocator_calloc, progs.on_allocator_calloc_return,
             progs.on_allocator_realloc, progs.on_allocator_realloc_return,
             progs.on_allocator_free});
    load_if(allocator && flow,
            {progs.on_allocator_malloc_flow, progs.on_allocator_malloc_return_flow,
             progs.on_allocator_calloc_flow, progs.on_allocator_calloc_return_flow,
             progs.on_allocator_realloc_flow, progs.on_allocator_realloc_return_flow,
             progs.on_allocator_free_flow});
    load_if(plan.depth > 1, {progs.on_stack_request});
    load_if(plan.native, {progs.on_pynative});
    load_if(plan.setid_stop, {progs.on_exec});
    load_if(!plan.every_process, {progs.on_mmap});
    // 2M buckets for --batch's early frees took 15-20 ms to make; its rings' maps, the
    // snapshots' rows, the stacks' names and the size buckets are as unused without their
    // options.
    auto &maps = skeleton->maps;
    shrink_unless(plan.batch, maps.early);
    shrink_unless(plan.batch, maps.rings);
    shrink_unless(plan.batch, maps.thread_rings);
    shrink_unless(plan.batch, maps.frames);
    shrink_unless(plan.interval_ms != 0, maps.live_rows);
    shrink_unless(plan.depth > 1, maps.stack_names);
    shrink_unless(plan.histograms, maps.size_buckets);
}

} // namespace engine
