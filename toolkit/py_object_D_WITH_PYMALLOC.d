#!/usr/sbin/dtrace -Cs
/* SPDX-License-Identifier: MIT
 * py_object_D_WITH_PYMALLOC.d: Python's object allocator (release builds, pymalloc on) through
 *   its public PyObject_* functions, with Python locations.
 * Do not edit by hand: generated from src/pymemtrace/trace/scripts.py (tools/generate-scripts.sh).
 *
 * Usage:  sudo dtrace -C -s toolkit/py_object_D_WITH_PYMALLOC.d -p PID [-D FULL_FILE_PATH] [-D PYTHON_CALL_STACK]
 *   -D FULL_FILE_PATH     whole Python file paths instead of their basename
 *                         (bpftrace: the word full_file_path)
 *   -D PYTHON_CALL_STACK  CALL and RTN lines of Python functions, with their depth
 *                         (bpftrace: the word python_call_stack)
 * One complete line per event: the entry keeps the arguments in thread-locals (self->), the
 *   return prints.
 * CPython's probes need a Python built --with-dtrace (Debian's /usr/bin/python3).
 * Twin: py_object_D_WITH_PYMALLOC.bt prints the same lines: BEGIN, one line per event, END.
 * toolkit/pymemtrace-trace runs py_object_D_WITH_PYMALLOC.bt on Linux.
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

/* PyObject_Malloc/PyObject_Calloc/PyObject_Realloc/PyObject_Free: the entry keeps the arguments
 * per thread, the return prints one complete line. Calls made inside PyObject_Realloc
 * (PyObject_Malloc or PyObject_Free) are not reported twice. */
pid$target::PyObject_Malloc:entry
/!self->in_realloc/
{
	self->in_malloc = 1;
	self->malloc_size = arg0;
}

pid$target::PyObject_Malloc:return
/self->in_malloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s PyObject_Malloc(%lu) PyObject_Malloc returns 0x%lx\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), self->malloc_size, arg1);
	self->in_malloc = 0;
	self->malloc_size = 0;
}

pid$target::PyObject_Calloc:entry
/!self->in_realloc/
{
	self->in_calloc = 1;
	self->calloc_count = arg0;
	self->calloc_size = arg1;
}

pid$target::PyObject_Calloc:return
/self->in_calloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s PyObject_Calloc(%lu, %lu) PyObject_Calloc returns 0x%lx\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), self->calloc_count, self->calloc_size, arg1);
	self->in_calloc = 0;
	self->calloc_count = 0;
	self->calloc_size = 0;
}

pid$target::PyObject_Realloc:entry
{
	self->in_realloc = 1;
	self->realloc_ptr = arg0;
	self->realloc_size = arg1;
}

pid$target::PyObject_Realloc:return
/self->in_realloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s PyObject_Realloc(0x%lx, %lu) PyObject_Realloc returns 0x%lx\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), self->realloc_ptr, self->realloc_size, arg1);
	self->in_realloc = 0;
	self->realloc_ptr = 0;
	self->realloc_size = 0;
}

pid$target::PyObject_Free:entry
/!self->in_realloc/
{
	this->f = pyfile[tid, self->depth];
	this->fn = pyfunc[tid, self->depth];
	this->ln = pyline[tid, self->depth];
	printf("%6d %16s:%-4d -> %s PyObject_Free(0x%lx)\n", pid, PYFILE(this->f), this->ln, PYSTR(this->fn), arg0);
}

dtrace:::END
{
	printf("\ndtrace:::END\n");
}
