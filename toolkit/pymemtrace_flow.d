#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * pymemtrace_flow.d: one line per allocation event of the pymemtrace provider, at its Python
 *   location.
 * Do not edit by hand: generated from src/pymemtrace/trace/scripts.py (tools/generate-scripts.sh).
 *
 * Usage:  sudo dtrace -C -s toolkit/pymemtrace_flow.d -p PID [-D FULL_FILE_PATH]
 *   -D FULL_FILE_PATH     whole Python file paths instead of their basename
 *                         (bpftrace: the word full_file_path)
 * Oracle DTrace for Linux reads the pymemtrace probes through its stapsdt provider
 *   (PID-qualified, as here). It traces PID alone; the bpftrace twin also follows what PID forks.
 * Twin: pymemtrace_flow.bt prints the same lines: BEGIN, one line per event, END; the bpftrace
 *   script then the number of events, @flow_events.
 * toolkit/pymemtrace-trace runs pymemtrace_flow.bt on Linux.
 */
#pragma D option quiet
#pragma D option dynvarsize=64m
#pragma D option bufsize=16m

#ifdef FULL_FILE_PATH
#define PYFILE(p) ((p) != 0 ? copyinstr(p) : "")
#else
#define PYFILE(p) ((p) != 0 ? basename(copyinstr(p)) : "")
#endif

dtrace:::BEGIN
{
	printf("dtrace:::BEGIN\n");
}

pymemtrace$target:::pyalloc
{
	printf("%6d %16s:%-4d -> %s malloc(%lu) pntr 0x%lx domain %d\n", pid, PYFILE(arg3), (int)arg5, copyinstr(arg4), arg1, arg0, (int)arg2);
}

pymemtrace$target:::pyrealloc
{
	printf("%6d %16s:%-4d -> %s realloc(0x%lx, %lu) pntr 0x%lx\n", pid, PYFILE(arg3), (int)arg5, copyinstr(arg4), arg0, arg2, arg1);
}

pymemtrace$target:::pyfree
{
	printf("%6d %16s:%-4d -> %s free(0x%lx) domain %d\n", pid, PYFILE(arg2), (int)arg4, copyinstr(arg3), arg0, (int)arg1);
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
}
