/* SPDX-License-Identifier: MIT
 * fork_target: a traced process that forks. It waits (up to 30 s) until a tracer has enabled its
 * pymemtrace:alloc probe, allocates once (the first hit of the site, which a kernel with the uprobe
 * nop5 optimisation rewrites for a 5-byte site), forks, and the child allocates CHILD_ALLOCS
 * times; the parent waits (up to 30 s) for the child and reports how it ended.
 *
 * Sizes: the parent allocates PARENT_SIZE bytes, the child CHILD_SIZE + i for i = 0..CHILD_ALLOCS-1.
 * Prints, one line each:
 *   "pid <parent pid>"                                 at start
 *   "trampoline yes|no"                                whether the parent has [uprobes-trampoline]
 *   "child <pid> exit <code>" | "child <pid> signal <n>" | "child <pid> timeout"
 * Exits 0 when it ran (whatever the child did), 2 on bad use, 3 if the probe was never enabled.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>   /* kill, SIGKILL */
#include <stdio.h>    /* printf, fopen, fgets */
#include <string.h>   /* strstr */
#include <sys/wait.h> /* waitpid */
#include <time.h>     /* nanosleep */
#include <unistd.h>   /* fork, getpid, _exit */

#include <pymemtrace/pymemtrace.h> /* pymemtrace_malloc, pymemtrace_free, pymemtrace_probe_enabled */

#define PARENT_SIZE 1111
#define CHILD_SIZE 2000
#define CHILD_ALLOCS 5

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int allocate(size_t size)
{
    char *block = pymemtrace_malloc(size);
    if (block == NULL)
        return 0;
    block[0] = 1;
    pymemtrace_free(block);
    return 1;
}

static int has_trampoline(void)
{
    char line[512];
    int found = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL)
        return 0;
    while (fgets(line, sizeof line, maps) != NULL)
        if (strstr(line, "[uprobes-trampoline]") != NULL)
            found = 1;
    fclose(maps);
    return found;
}

int main(void)
{
    int i, status = 0;
    pid_t child;

    printf("pid %ld\n", (long)getpid());
    fflush(stdout);
    for (i = 0; !pymemtrace_probe_enabled(PYMEMTRACE_PROBE_ALLOC); ++i) {
        if (i >= 3000)
            return 3;
        sleep_ms(10);
    }
    if (!allocate(PARENT_SIZE))
        return 1;
    printf("trampoline %s\n", has_trampoline() ? "yes" : "no");
    fflush(stdout);

    child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        for (i = 0; i < CHILD_ALLOCS; ++i)
            if (!allocate(CHILD_SIZE + (size_t)i))
                _exit(1);
        _exit(0);
    }
    for (i = 0; i < 3000; ++i) {
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child)
            break;
        sleep_ms(10);
    }
    if (i == 3000) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        printf("child %ld timeout\n", (long)child);
    } else if (WIFSIGNALED(status)) {
        printf("child %ld signal %d\n", (long)child, WTERMSIG(status));
    } else {
        printf("child %ld exit %d\n", (long)child, WEXITSTATUS(status));
    }
    return 0;
}
