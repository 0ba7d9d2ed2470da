// SPDX-License-Identifier: MIT
// call_stack.bpf.h (included by engine.bpf.c after flow.bpf.h): --python-call-stack, a CALL
// event for each Python function CPython's function__entry reports and an RTN event for each
// function__return, sent through the `flow` ring buffer beside the allocation events, as
// toolkit/pymemtrace_pyframes.bt and py_flow_malloc_free.bt print their `-> CALL` and `<- RTN`
// lines. cpython_frames.bpf.h's programs call call_stack_send; which allocation events the run
// has (the plain probes, or --allocator's functions) does not matter.
//
// The depth is the scripts': a CALL's is the stack's depth once the frame is pushed, an RTN's
// the depth before the return pops (whether or not the returning frame is the one on top: CPython
// 3.11 reports no entry for Python-to-Python calls, so a frame may be known only by its lines).
// The names go into `names` once per (file, function, line) id, as the allocations' do.

// Set by the loader (--python-call-stack, with --flow-fd and --python-frames): off, the verifier
// prunes the sends.
const volatile uint32_t python_call_stack = 0;

static __always_inline void call_stack_send(uint32_t kind, uint64_t file, uint64_t function,
                                            int32_t line, uint32_t depth)
{
    if (!python_call_stack)
        return;
    if (flow_takes(kind == EVENT_CALL ? COUNTER_CALL : COUNTER_RTN))
        flow_put(kind, 0, 0, depth, 0, locate(file, function, line));
}
