#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * pymemtrace_summary.d: bytes and size distributions per Python file, function and line, and per domain, aggregated in the kernel.
 *
 * Usage:  sudo dtrace -C -s toolkit/pymemtrace_summary.d -p PID [-D FULL_FILE_PATH]
 *   -D FULL_FILE_PATH    whole Python file paths instead of their basename
 * One complete line per event (entry and return joined by thread-locals, printed at return).
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
	@dist[this->file, copyinstr(arg4)] = quantize(arg1);
	@domain_bytes[(int)arg2] = sum(arg1);
	@domain_dist[(int)arg2] = quantize(arg1);
	block_size[arg0] = arg1;
	block_domain[arg0] = (int)arg2 + 1;
}

/* A moved block keeps its domain: -1 when it was allocated before tracing started. */
pymemtrace$target:::pyrealloc
{
	this->dom = block_domain[arg0] - 1;
	this->file = PYFILE(arg3);
	@bytes[this->file, copyinstr(arg4), (int)arg5, this->dom] = sum(arg2);
	@count[this->file, copyinstr(arg4), (int)arg5, this->dom] = count();
	@dist[this->file, copyinstr(arg4)] = quantize(arg2);
	@domain_bytes[this->dom] = sum(arg2);
	@domain_dist[this->dom] = quantize(arg2);
	@realloc_count[this->dom] = count();
	block_size[arg0] = 0;
	block_domain[arg0] = 0;
	block_size[arg1] = arg2;
	block_domain[arg1] = this->dom + 1;
}

/* Every free is counted, with or without a Python frame; free(NULL) apart. */
pymemtrace$target:::pyfree
/arg0 != 0/
{
	@free_count[(int)arg1] = count();
	@free_bytes[(int)arg1] = sum(block_size[arg0]);
	block_size[arg0] = 0;
	block_domain[arg0] = 0;
}

pymemtrace$target:::pyfree
/arg0 == 0/
{
	@free_null[(int)arg1] = count();
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
	printf("Python malloc byte distributions by Python file and function:\n");
	printa(@dist);
	printf("\nPython malloc byte distributions by domain:\n");
	printa(@domain_bytes);
	printa(@domain_dist);
	printf("\nBytes allocated by Python location (file, function, line, domain):\n");
	printa(@bytes);
	printa(@count);
	printf("\nFrees by domain (count, bytes, free(NULL)), reallocs by domain:\n");
	printa(@free_count);
	printa(@free_bytes);
	printa(@free_null);
	printa(@realloc_count);
}
