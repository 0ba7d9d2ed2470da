/* SPDX-License-Identifier: MIT
 * pymemtrace.d: the provider `pymemtrace` for DTrace's build tools, on macOS, illumos and
 * FreeBSD, where probes come from a provider definition rather than from <sys/sdt.h>'s notes.
 * The same probes, arguments and types as the table in probes.h (tests/docs/test_probe_tables.py
 * checks it); pointers travel as integers, as they do into probes.h's probe functions.
 *
 *   dtrace -h -s pymemtrace.d -o pymemtrace_provider.h   the probe macros (PYMEMTRACE_ALLOC(...),
 *                                                        PYMEMTRACE_ALLOC_ENABLED(), ...)
 *   dtrace -G -s pymemtrace.d -o pymemtrace_provider.o OBJECTS...   illumos and FreeBSD: the
 *                                                        object that registers the probes
 * How a build uses them, and what the headers do there: docs/probes.md.
 */
provider pymemtrace {
    probe alloc(uint64_t ptr, uint64_t size, int32_t domain);
    probe realloc(uint64_t old_ptr, uint64_t new_ptr, uint64_t size, int32_t domain);
    probe free(uint64_t ptr, int32_t domain);
    probe pyalloc(uint64_t ptr, uint64_t size, int32_t domain, char *filename, char *function,
                  int32_t lineno, uint64_t stack);
    probe pyrealloc(uint64_t old_ptr, uint64_t new_ptr, uint64_t size, char *filename,
                    char *function, int32_t lineno, uint64_t stack);
    probe pyfree(uint64_t ptr, int32_t domain, char *filename, char *function, int32_t lineno,
                 uint64_t stack);
    /* Requests: never fired; a tracer enables them to ask for 4 or 16 frames in `stack`. */
    probe pystack4();
    probe pystack16();
    /* Request: never fired; a tracer enables it to ask for the native caller in `stack`. */
    probe pynative();
    /* The py* events in batches: the thread's ring (pymemtrace/batch.h), its newest event. */
    probe pybatch(uint64_t ring, uint64_t last);
};
