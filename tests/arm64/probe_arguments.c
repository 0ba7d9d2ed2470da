// SPDX-License-Identifier: MIT
// For the arm64 guest: fires each of the six probes once, called directly with values that are
// each distinct (no two arguments alike, every bit of a pointer used, negative domains, a
// `stack` in the seventh argument), so that a tracer reading any argument from the wrong
// register or with the wrong size or sign gets a value that does not match. Waits (up to 30 s)
// until a tracer has set every semaphore, prints the values as "expect" lines, fires, and prints
// "done". Exits 1 if no tracer came.
#include <pymemtrace/pymemtrace.h>

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static int every_semaphore_set(void)
{
    for (int p = PYMEMTRACE_PROBE_ALLOC; p <= PYMEMTRACE_PROBE_PYFREE; ++p)
        if (!pymemtrace_probe_enabled((enum pymemtrace_probe)p))
            return 0;
    return 1;
}

int main(void)
{
    const struct timespec tick = {0, 20 * 1000 * 1000};
    for (int i = 0; !every_semaphore_set(); ++i) {
        if (i == 1500)
            return 1;
        nanosleep(&tick, NULL);
    }
    static const char file[] = "arm64/probe_arguments.py", function[] = "fire_every_probe";
    printf("expect alloc %#lx %lu %d\n", 0x1122334455667788UL, 0x0102030405060708UL, -3);
    pymemtrace_probe_alloc(0x1122334455667788UL, 0x0102030405060708UL, -3);
    printf("expect realloc %#lx %#lx %lu %d\n", 0x2233445566778899UL, 0x33445566778899aaUL,
           0x0203040506070809UL, -4);
    pymemtrace_probe_realloc(0x2233445566778899UL, 0x33445566778899aaUL, 0x0203040506070809UL, -4);
    printf("expect free %#lx %d\n", 0x445566778899aabbUL, -5);
    pymemtrace_probe_free(0x445566778899aabbUL, -5);
    printf("expect pyalloc %#lx %lu %d %s %s %d %#lx\n", 0x5566778899aabbccUL,
           0x030405060708090aUL, -6, file, function, 1234567, 0x66778899aabbccddUL);
    pymemtrace_probe_pyalloc(0x5566778899aabbccUL, 0x030405060708090aUL, -6, file, function,
                             1234567, 0x66778899aabbccddUL);
    printf("expect pyrealloc %#lx %#lx %lu %s %s %d %#lx\n", 0x778899aabbccddeeUL,
           0x8899aabbccddeeffUL, 0x0405060708090a0bUL, file, function, -7654321,
           0x99aabbccddeeff00UL);
    pymemtrace_probe_pyrealloc(0x778899aabbccddeeUL, 0x8899aabbccddeeffUL, 0x0405060708090a0bUL,
                               file, function, -7654321, 0x99aabbccddeeff00UL);
    printf("expect pyfree %#lx %d %s %s %d %#lx\n", 0xaabbccddeeff0011UL, -8, file, function,
           2345678, 0xbbccddeeff001122UL);
    pymemtrace_probe_pyfree(0xaabbccddeeff0011UL, -8, file, function, 2345678,
                            0xbbccddeeff001122UL);
    printf("done\n");
    return 0;
}
