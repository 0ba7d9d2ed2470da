/* SPDX-License-Identifier: MIT
 * traced_loop: N x (pymemtrace_malloc(64); pymemtrace_free) on T threads, timed inside the
 * program with clock_gettime around the loop only. Built twice: 5-byte nop sites
 * (-DPYMEMTRACE_CONFIG_NOP5=1, opt-in) and 1-byte nop sites (-DPYMEMTRACE_CONFIG_NOP5=0, default).
 *
 * Usage: traced_loop N [THREADS] [gate|-] [RATE]
 *   gate: print "READY <pid>" and wait for a line on stdin before the loop (to attach a tracer).
 *   RATE: at most this many events (allocations and frees) per second per thread; at full
 *         speed when absent or 0.
 * Prints: "TIME <seconds> EVENTS <allocations>".
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h> /* pthread_create, pthread_join */
#include <stdio.h>   /* printf, fgets */
#include <stdlib.h>  /* strtoul, strtod */
#include <string.h>  /* strcmp */
#include <time.h>    /* clock_gettime, nanosleep */
#include <unistd.h>  /* getpid */

#include <pymemtrace/pymemtrace.h> /* pymemtrace_malloc, pymemtrace_free */

static unsigned long iterations;
static double events_per_second; /* per thread; 0: no pacing */

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) * 1e-9;
}

/* Sleeps until `events` events are due at the paced rate. */
static void keep_pace(const struct timespec *start, unsigned long events)
{
    double ahead = (double)events / events_per_second - seconds_since(start);
    if (ahead > 0) {
        struct timespec pause = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
        nanosleep(&pause, NULL);
    }
}

static void *loop(void *unused)
{
    unsigned long i;
    struct timespec start;
    (void)unused;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (i = 0; i < iterations; ++i) {
        if (events_per_second > 0 && i % 64 == 0)
            keep_pace(&start, 2 * i);
        char *block = pymemtrace_malloc(64);
        if (block == NULL)
            abort();
        block[0] = (char)i;
        pymemtrace_free(block);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long threads = 1, t;
    pthread_t ids[64];
    struct timespec start, end;
    char line[16];

    if (argc < 2) {
        fprintf(stderr, "usage: %s N [THREADS] [gate]\n", argv[0]);
        return 2;
    }
    iterations = strtoul(argv[1], NULL, 10);
    if (argc > 2)
        threads = strtoul(argv[2], NULL, 10);
    if (threads < 1 || threads > 64)
        threads = 1;
    if (argc > 4)
        events_per_second = strtod(argv[4], NULL);
    if (argc > 3 && strcmp(argv[3], "gate") == 0) {
        printf("READY %ld\n", (long)getpid());
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL)
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (threads == 1) {
        loop(NULL);
    } else {
        for (t = 0; t < threads; ++t)
            pthread_create(&ids[t], NULL, loop, NULL);
        for (t = 0; t < threads; ++t)
            pthread_join(ids[t], NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("TIME %.9f EVENTS %lu\n",
           (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) * 1e-9,
           iterations * threads);
    return 0;
}
