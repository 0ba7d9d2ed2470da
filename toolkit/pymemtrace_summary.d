#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * pymemtrace_summary.d: bytes and size distributions per Python file, function, line and domain,
 * aggregated in the kernel. One probe hit per allocation: frees are not traced (the leaks script
 * pairs them), and a realloc, whose probe carries no domain, counts under domain -1.
 *
 * Usage:  sudo dtrace -C -s toolkit/pymemtrace_summary.d -p PID [-D FULL_FILE_PATH]
 *   -D FULL_FILE_PATH    whole Python file paths instead of their basename
 * Its bpftrace twin, pymemtrace_summary.bt, prints the same lines; toolkit/pymemtrace-trace runs that one.
 */
#pragma D option quiet
#pragma D option dynvarsize=64m
#pragma D option bufsize=16m

#ifdef FULL_FILE_PATH
#define PYFILE(p) ((p) != 0 ? copyinstr(p) : "")
#else
#define PYFILE(p) ((p) != 0 ? basename(copyinstr(p)) : "")
#endif
#define PYSTR(p) ((p) != 0 ? copyinstr(p) : "")

dtrace:::BEGIN
{
	printf("dtrace:::BEGIN\n");
}
/* Oracle DTrace for Linux reads these probes through its stapsdt provider (PID-qualified, as here). */

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
	@bytes[this->file, copyinstr(arg4), (int)arg5, -1] = sum(arg2);
	@count[this->file, copyinstr(arg4), (int)arg5, -1] = count();
	@dist[this->file, copyinstr(arg4), -1] = quantize(arg2);
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
	printf("Python malloc byte distributions by Python file, function and domain:\n");
	printa(@dist);
	printf("\nAllocations by Python location (file, function, line, domain): count, bytes:\n");
	printa(@count);
	printa(@bytes);
}
