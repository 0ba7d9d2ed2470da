#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * pymemtrace_summary.d: bytes and size distributions per Python file, function, line and domain,
 *   aggregated in the kernel.
 * Do not edit by hand: generated from src/pymemtrace/trace/scripts.py (tools/generate-scripts.sh).
 *
 * Usage:  sudo dtrace -C -s toolkit/pymemtrace_summary.d -p PID [-D FULL_FILE_PATH]
 *   -D FULL_FILE_PATH     whole Python file paths instead of their basename
 *                         (bpftrace: the word full_file_path)
 * Oracle DTrace for Linux reads the pymemtrace probes through its stapsdt provider
 *   (PID-qualified, as here). It traces PID alone; the bpftrace twin also follows what PID forks.
 * One probe hit per allocation: frees are not traced (the leaks script pairs them), and a
 *   realloc, whose probe carries no domain, counts under domain -1.
 * Twin: pymemtrace_summary.bt prints the same lines (BEGIN, END, a title) and other maps after
 *   them: the bpftrace script one map, @alloc[pid, file, function, line, domain, size bucket] =
 *   stats(size) (count, average, total), from which toolkit/pymemtrace-trace draws totals and
 *   histograms; the D script @dist[file, function, domain] = quantize(size), then @count and
 *   @bytes[file, function, line, domain].
 * toolkit/pymemtrace-trace runs pymemtrace_summary.bt on Linux.
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
	this->file = PYFILE(arg3);
	@bytes[this->file, copyinstr(arg4), (int)arg5, (int)arg2] = sum(arg1);
	@count[this->file, copyinstr(arg4), (int)arg5, (int)arg2] = count();
	@dist[this->file, copyinstr(arg4), (int)arg2] = quantize(arg1);
}

pymemtrace$target:::pyrealloc
{
	this->file = PYFILE(arg3);
	@bytes[this->file, copyinstr(arg4), (int)arg5, (int)-1] = sum(arg2);
	@count[this->file, copyinstr(arg4), (int)arg5, (int)-1] = count();
	@dist[this->file, copyinstr(arg4), (int)-1] = quantize(arg2);
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
	printf("\nAllocations by Python location:\n");
	printa(@dist);
	printa(@count);
	printa(@bytes);
}
