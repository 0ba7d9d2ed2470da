// SPDX-License-Identifier: MIT
// native.bpf.h (included by engine.bpf.c): --native, the C or C++ code that called the allocator.
// While the loader attaches on_pynative to a library's `pynative` request probe, that library's
// py* probes pass their stack record, whose `native` field is the caller's return address as an
// offset from the library's ELF header (docs/probes.md). The key is that offset with the
// library's index (the usdt cookie of the attach) above it: the runner symbolizes it
// (src/pymemtrace/trace/native.py), from the file, after the process may have ended.

// Set by the loader before load (--native).
const volatile uint32_t native_caller = 0;

static __always_inline uint64_t native_of(struct pt_regs *ctx, uint64_t stack)
{
    uint64_t offset = 0;
    if (!native_caller || stack == 0)
        return 0;
    if (bpf_probe_read_user(&offset, sizeof offset, (const void *)(stack + ENGINE_NATIVE_AT)) != 0
        || offset == 0)
        return 0;
    return offset | (bpf_usdt_cookie(ctx) << ENGINE_NATIVE_LIBRARY_SHIFT);
}

// Never fires: attached, its semaphore asks the library for the native caller.
SEC("usdt")
int BPF_USDT(on_pynative)
{
    return 0;
}
