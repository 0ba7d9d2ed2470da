/* SPDX-License-Identifier: MIT
 * batch_signal_program: threads without Python (no GIL, no location) allocating through
 * pymemtrace's wrappers while a timer's signal handler notes its own blocks on whichever thread
 * it interrupts, often in the middle of an append to that thread's ring (pymemtrace/batch.h).
 *
 *   batch_signal_program N     prints its pid, waits for a line on stdin, then 4 threads each
 *                              malloc and free N blocks (domain 0) while SIGALRM every 50 us
 *                              notes an alloc and a free of one static block (domain 17); prints
 *                              "done EVENTS_OF_THE_HANDLER" and waits for a line before exiting.
 * The handler allocates nothing from libc (malloc is not async-signal-safe): it reports a block
 * it owns, which is what an allocator's own signal-safe path would do.
 */
#define _DEFAULT_SOURCE /* SA_RESTART, setitimer under -std=c99 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <pymemtrace/pymemtrace.h>

#define THREADS 4
#define HANDLER_DOMAIN (PYMEMTRACE_DOMAIN_USER + 1)

static unsigned long handler_pairs;  /* alloc+free pairs the handler noted */
static char handler_blocks[THREADS * 64]; /* one per thread: a block lives on one thread only */
static __thread int thread_number;

static void on_alarm(int signal_number)
{
    char *block = &handler_blocks[thread_number * 64];
    (void)signal_number;
    pymemtrace_note_alloc(block, 8, HANDLER_DOMAIN);
    pymemtrace_note_free(block, HANDLER_DOMAIN);
    __atomic_add_fetch(&handler_pairs, 1, __ATOMIC_RELAXED);
}

struct work {
    int number;
    long blocks;
    sigset_t alarm;
};

static void *allocate(void *argument)
{
    const struct work *work = argument;
    long i;
    thread_number = work->number;
    pthread_sigmask(SIG_UNBLOCK, &work->alarm, NULL);
    for (i = 0; i < work->blocks; ++i)
        pymemtrace_free(pymemtrace_malloc(16 + (size_t)(i & 7)));
    return NULL;
}

int main(int argc, char **argv)
{
    struct work works[THREADS];
    pthread_t threads[THREADS];
    struct sigaction action;
    struct itimerval every = {{0, 50}, {0, 50}}, stop = {{0, 0}, {0, 0}};
    sigset_t alarm;
    char line[16];
    int i;
    if (argc != 2)
        return 2;
    printf("%d\n", (int)getpid());
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    action.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &action, NULL);
    /* The main thread only waits: the signal goes to the allocating threads, which unblock it. */
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm, NULL);
    setitimer(ITIMER_REAL, &every, NULL);
    for (i = 0; i < THREADS; ++i) {
        works[i].number = i;
        works[i].blocks = atol(argv[1]);
        works[i].alarm = alarm;
        pthread_create(&threads[i], NULL, allocate, &works[i]);
    }
    for (i = 0; i < THREADS; ++i)
        pthread_join(threads[i], NULL);
    setitimer(ITIMER_REAL, &stop, NULL);
    printf("done %lu\n", __atomic_load_n(&handler_pairs, __ATOMIC_RELAXED));
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    return 0;
}
