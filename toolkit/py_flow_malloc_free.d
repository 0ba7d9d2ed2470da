#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * py_flow_malloc_free.d: every libc malloc, calloc, realloc and free of a Python process, with
 *   its Python location.
 * Do not edit by hand: generated from src/pymemtrace/trace/scripts.py (tools/generate-scripts.sh).
 *
 * Usage:  sudo dtrace -C -s toolkit/py_flow_malloc_free.d -p PID [-D FULL_FILE_PATH] [-D PYTHON_CALL_STACK]
 *   -D FULL_FILE_PATH     whole Python file paths instead of their basename
 *                         (bpftrace: the word full_file_path)
 *   -D PYTHON_CALL_STACK  CALL and RTN lines of Python functions, with their depth
 *                         (bpftrace: the word python_call_stack)
 * One complete line per event: the entry keeps the arguments in thread-locals (self->), the
 *   return prints.
 * CPython's probes need a Python built --with-dtrace (Debian's /usr/bin/python3).
 * Twin: py_flow_malloc_free.bt prints the same lines (BEGIN, one line per event, END, titles) and
 *   the same maps after them, @by_caller(_total)[caller] and @by_python(_total)[file, function]
 *   (sums and power-of-two histograms of malloc sizes), formatted differently: the D script with
 *   printa(), the bpftrace script with print().
 * toolkit/pymemtrace-trace runs py_flow_malloc_free.bt on Linux.
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

/* Python context: a per-thread stack of (file, function, line) indexed by depth, kept as
 * the addresses of the running code object's strings and read only when an event prints.
 * CPython 3.11 does not report the entry of Python-to-Python calls (it does report their
 * returns): a line event from a frame not on top pushes it, one from the frame just below pops. */
python$target:::function-entry
{
	self->depth++;
	pyfile[tid, self->depth] = arg0;
	pyfunc[tid, self->depth] = arg1;
	pyline[tid, self->depth] = (int)arg2;
}
#ifdef PYTHON_CALL_STACK
python$target:::function-entry
{
	printf("%6d %16s:%-4d -> CALL %s (depth %d)\n", pid, PYFILE(arg0), (int)arg2, copyinstr(arg1), self->depth);
}
#endif

python$target:::line
/!(pyfunc[tid, self->depth] == arg1 && pyfile[tid, self->depth] == arg0)/
{
	this->below = self->depth > 0 && pyfunc[tid, self->depth - 1] == arg1 && pyfile[tid, self->depth - 1] == arg0;
	pyfile[tid, self->depth] = this->below ? 0 : pyfile[tid, self->depth];
	pyfunc[tid, self->depth] = this->below ? 0 : pyfunc[tid, self->depth];
	self->depth = this->below ? self->depth - 1 : self->depth + 1;
	pyfile[tid, self->depth] = arg0;
	pyfunc[tid, self->depth] = arg1;
}

python$target:::line
{
	pyline[tid, self->depth] = (int)arg2;
}

#ifdef PYTHON_CALL_STACK
python$target:::function-return
{
	printf("%6d %16s:%-4d <- RTN  %s (depth %d)\n", pid, PYFILE(arg0), (int)arg2, copyinstr(arg1), self->depth);
}
#endif

python$target:::function-return
/self->depth > 0 && pyfunc[tid, self->depth] == arg1 && pyfile[tid, self->depth] == arg0/
{
	pyfile[tid, self->depth] = 0;
	pyfunc[tid, self->depth] = 0;
	pyline[tid, self->depth] = 0;
	self->depth--;
}

/* malloc/calloc/realloc/free: the entry keeps the arguments per thread, the return prints one
 * complete line. Calls made inside realloc (glibc's realloc(NULL, n) and realloc(p, 0) call
 * malloc and free) are not reported twice. */
pid$target:libc*:malloc:entry
/!self->in_realloc/
{
	self->in_malloc = 1;
	self->malloc_size = arg0;
	self->malloc_caller = ucaller;
}

pid$target:libc*:malloc:return
/self->in_malloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s malloc(%lu) pntr 0x%lx\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), self->malloc_size, arg1);
}

pid$target:libc*:malloc:return
/self->in_malloc && this->f == 0/
{
	@by_caller_total[usym(self->malloc_caller)] = sum(self->malloc_size);
	@by_caller[usym(self->malloc_caller)] = quantize(self->malloc_size);
}

pid$target:libc*:malloc:return
/self->in_malloc && this->f != 0/
{
	@by_python_total[PYFILE(this->f), PYSTR(this->fn)] = sum(self->malloc_size);
	@by_python[PYFILE(this->f), PYSTR(this->fn)] = quantize(self->malloc_size);
}

pid$target:libc*:malloc:return
/self->in_malloc/
{
	self->in_malloc = 0;
	self->malloc_size = 0;
	self->malloc_caller = 0;
}

pid$target:libc*:calloc:entry
/!self->in_realloc/
{
	self->in_calloc = 1;
	self->calloc_count = arg0;
	self->calloc_size = arg1;
}

pid$target:libc*:calloc:return
/self->in_calloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s calloc(%lu, %lu) pntr 0x%lx\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), self->calloc_count, self->calloc_size, arg1);
	self->in_calloc = 0;
	self->calloc_count = 0;
	self->calloc_size = 0;
}

pid$target:libc*:realloc:entry
{
	self->in_realloc = 1;
	self->realloc_ptr = arg0;
	self->realloc_size = arg1;
}

pid$target:libc*:realloc:return
/self->in_realloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s realloc(0x%lx, %lu) pntr 0x%lx\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), self->realloc_ptr, self->realloc_size, arg1);
	self->in_realloc = 0;
	self->realloc_ptr = 0;
	self->realloc_size = 0;
}

pid$target:libc*:free:entry
/!self->in_realloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s free(0x%lx)\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), arg0);
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
	printf("Python malloc byte distributions by engine caller:\n");
	printa("   %A, total bytes = %@d\n", @by_caller_total);
	printa(@by_caller);
	printf("\nPython malloc byte distributions by Python file and function:\n");
	printa("   %s, %s, bytes total = %@d\n", @by_python_total);
	printa(@by_python);
}
