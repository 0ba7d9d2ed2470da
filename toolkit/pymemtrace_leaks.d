#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * pymemtrace_leaks.d: the blocks still allocated when tracing stops, with the Python location
 *   that allocated them.
 * Do not edit by hand: generated from src/pymemtrace/trace/scripts.py (tools/generate-scripts.sh).
 *
 * Usage:  sudo dtrace -C -s toolkit/pymemtrace_leaks.d -p PID [-D FULL_FILE_PATH]
 *   -D FULL_FILE_PATH     whole Python file paths instead of their basename
 *                         (bpftrace: the word full_file_path)
 * Oracle DTrace for Linux reads the pymemtrace probes through its stapsdt provider
 *   (PID-qualified, as here). It traces PID alone; the bpftrace twin also follows what PID forks.
 * Twin: pymemtrace_leaks.bt prints the same lines (BEGIN, END, a title) and other maps after
 *   them: the bpftrace script @live[pid, ptr] = (size, domain, file, function, line), one entry
 *   per block; the D script, which cannot walk an array, the blocks and bytes per file, function,
 *   line and domain (@live_count, @live_bytes).
 * toolkit/pymemtrace-trace runs pymemtrace_leaks.bt on Linux.
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

/* D cannot walk an array at END: each block remembers its location, and the aggregations
 * @live_bytes and @live_count are added to at allocation and taken from at release. */
pymemtrace$target:::pyalloc
{
	this->file = PYFILE(arg3);
	this->func = copyinstr(arg4);
	live_size[arg0] = arg1;
	live_domain[arg0] = (int)arg2 + 1;
	live_file[arg0] = this->file;
	live_func[arg0] = this->func;
	live_line[arg0] = (int)arg5;
	@live_bytes[this->file, this->func, (int)arg5, (int)arg2] = sum((long)arg1);
	@live_count[this->file, this->func, (int)arg5, (int)arg2] = sum(1);
}

/* Releases (and the old half of a move) of blocks allocated while tracing. */
pymemtrace$target:::pyfree, pymemtrace$target:::pyrealloc
/live_domain[arg0] != 0/
{
	this->dom = live_domain[arg0] - 1;
	@live_bytes[live_file[arg0], live_func[arg0], live_line[arg0], this->dom] = sum(-(long)live_size[arg0]);
	@live_count[live_file[arg0], live_func[arg0], live_line[arg0], this->dom] = sum(-1);
	self->moved_domain = this->dom + 1;
	live_size[arg0] = 0;
	live_domain[arg0] = 0;
	live_file[arg0] = 0;
	live_func[arg0] = 0;
	live_line[arg0] = 0;
}

/* The new half of a move keeps the domain (-1 when allocated before tracing started): the clause
 * above left it in self->moved_domain. */
pymemtrace$target:::pyrealloc
{
	this->dom = self->moved_domain - 1;
	this->file = PYFILE(arg3);
	this->func = copyinstr(arg4);
	live_size[arg1] = arg2;
	live_domain[arg1] = this->dom + 1;
	live_file[arg1] = this->file;
	live_func[arg1] = this->func;
	live_line[arg1] = (int)arg5;
	@live_bytes[this->file, this->func, (int)arg5, this->dom] = sum((long)arg2);
	@live_count[this->file, this->func, (int)arg5, this->dom] = sum(1);
}

pymemtrace$target:::pyfree, pymemtrace$target:::pyrealloc
{
	self->moved_domain = 0;
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
	printf("\nStill allocated when tracing stopped:\n");
	printa("   %s, %s, line %d, domain %d: %@d blocks\n", @live_count);
	printa("   %s, %s, line %d, domain %d: %@d bytes\n", @live_bytes);
}
