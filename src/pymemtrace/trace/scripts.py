#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The toolkit's D scripts and their bpftrace twins, made from shared parts.

Every toolkit/*.bt and toolkit/*.d is generated here and checked in:

    python3 src/pymemtrace/trace/scripts.py --write toolkit/   regenerate them
    python3 src/pymemtrace/trace/scripts.py --check toolkit/   exit 1, naming each that differs
    (tools/generate-scripts.sh [--check] does the same for the repository's toolkit/)

Each part is written once, here, for both languages where both have it:

    OPTIONS, MODES, _bt_begin, _d_macros   the option words (bpftrace) and -D macros (D)
    PROBES, PYTHON_PROBES, _args           the probes' arguments, named
    Event, PROBE_EVENTS, _event_printf     the event lines: one printf format each, D and bpftrace
    _header                                what a script does, its usage, options and twin
    _Lang.where, _bt_basename              an event's Python location (bpftrace has no basename())
    _bt_python_stack, _d_python_stack      the per-thread stack of CPython frames
    _bt_size_bucket, _summary, _bt_live_*  the reports' map updates; _summary_end, _leaks_end
    Family, FAMILIES, _family_script       libc, PyObject_* and PyMem_Raw*: one template
    _bt_snapshot, _bt_enrol                the runner's --interval snapshots and --all enrolment
    _SPECS                                 each script: what it is, its parts, what its twin prints

bpftrace 0.17 has no functions or macros, so a generated .bt repeats a part wherever it is
needed; D scripts use the C preprocessor only for their options.

One file of about 900 lines on purpose: every part above is shared by the spec table (_SPECS) and
the two languages (_Lang); split, each piece would import all the others.

The runner calls bpftrace_script(name, libraries, python, libc) and passes file names that are
safe in a probe spec (/proc/PID/fd/N aliases): they are put in probe specs as given, and only
there. Standard library only, Python 3.8+; imports nothing from its package.
"""
import argparse
import collections
import os
import re
import sys

# The Python and C library that the checked-in .bt files name (Debian 12's); the runner passes
# the target's own.
BT_PYTHON = "/usr/bin/python3.11"
BT_LIBC = "/lib/x86_64-linux-gnu/libc.so.6"

GENERATOR = "src/pymemtrace/trace/scripts.py"

# ---------------------------------------------------------------------------------------------
# Options. bpftrace has no -D: a .bt script reads the words after the PID ($2, $3...) in BEGIN
# into @opt_WORD maps (1 when given); a D script tests the macro given with -D.

Option = collections.namedtuple("Option", "word old_word macro meaning")
FULL_FILE_PATH = Option("full_file_path", "full_path", "FULL_FILE_PATH",
                        "whole Python file paths instead of their basename")
PYTHON_CALL_STACK = Option("python_call_stack", "call_stack", "PYTHON_CALL_STACK",
                           "CALL and RTN lines of Python functions, with their depth")
OPTIONS = (FULL_FILE_PATH, PYTHON_CALL_STACK)
MODES = ("flow", "summary", "leaks")  # pymemtrace_pyframes.bt: its report, summary by default


def _opt(word):
    """The bpftrace map of an option or mode word."""
    return f"@opt_{word.word if isinstance(word, Option) else word}"


# ---------------------------------------------------------------------------------------------
# Probes and their arguments (include/pymemtrace/probes.h, CPython's Include/pydtrace.d).

PROBES = {
    "alloc": ("ptr", "size", "domain"),
    "realloc": ("old_ptr", "new_ptr", "size", "domain"),
    "free": ("ptr", "domain"),
    "pyalloc": ("ptr", "size", "domain", "file", "function", "line"),
    "pyrealloc": ("old_ptr", "new_ptr", "size", "file", "function", "line"),
    "pyfree": ("ptr", "domain", "file", "function", "line"),
}
PYTHON_PROBES = {name: ("file", "function", "line")
                 for name in ("function__entry", "function__return", "line")}
INTEGER = {"bt": "(int64)", "d": "(int)"}  # domain and line are ints; the rest pointers, sizes


def _args(probe, lang):
    """{argument name: expression} of a probe: argN, domain and line cast to int in `lang`."""
    names = PROBES.get(probe) or PYTHON_PROBES[probe]
    return {name: (INTEGER[lang] if name in ("domain", "line") else "") + f"arg{index}"
            for index, name in enumerate(names)}


# ---------------------------------------------------------------------------------------------
# Lines: `%6d %16s:%-4d -> %s EVENT`, i.e. PID, Python file, line, function, then the event.

LOCATION = "%6d %16s:%-4d"
BEGIN_LINE = "dtrace:::BEGIN\\n"
END_LINE = "\\ndtrace:::END\\n"
CALL_LINE = f"{LOCATION} -> CALL %s (depth %d)\\n"
RETURN_LINE = f"{LOCATION} <- RTN  %s (depth %d)\\n"
SUMMARY_TITLE = "\\nAllocations by Python location:\\n"
LEAKS_TITLE = "\\nStill allocated when tracing stopped:\\n"
PARAMETER_FORMATS = {"size": "%lu", "count": "%lu", "ptr": "0x%lx", "old_ptr": "0x%lx"}


class Event(collections.namedtuple("Event", "call params returned returns domain")):
    """The event part of a line, `CALL(PARAMS) [RETURNS 0x..] [domain N]`: `returned` names the
    value printed after the words `returns` (`pntr`, `PyObject_Malloc returns`); `domain`: True
    to print the domain."""

    def format(self):
        text = f"{self.call}({', '.join(PARAMETER_FORMATS[p] for p in self.params)})"
        if self.returned:
            text += f" {self.returns} 0x%lx"
        return f"{LOCATION} -> %s {text}{' domain %d' if self.domain else ''}\\n"

    def values(self, values):
        """The printf arguments after the location, from {name: expression}."""
        names = [*self.params, *([self.returned] if self.returned else []),
                 *(["domain"] if self.domain else [])]
        return [values[name] for name in names]


PROBE_EVENTS = {  # the lines of the pymemtrace probes, py* and plain alike
    "alloc": Event("malloc", ("size",), "ptr", "pntr", True),
    "realloc": Event("realloc", ("old_ptr", "size"), "new_ptr", "pntr", False),
    "free": Event("free", ("ptr",), None, None, True),
}


def _printf(fmt, values=()):
    return f'printf("{fmt}"{"".join(", " + value for value in values)});'


def _event_printf(event, location, values):
    """The printf of an event; location: (file, line, function) expressions."""
    return _printf(event.format(), ["pid", *location, *event.values(values)])


# ---------------------------------------------------------------------------------------------
# Text

def _indent(lines, depth=1):
    return ["\t" * depth + line if line else "" for line in lines]


def _block(head, body, tail="}"):
    """`head {`, the body indented, `}` (or another tail, such as `} else {`)."""
    return [f"{head} {{", *_indent(body), tail]


def _wrap(line, width=96, hang=""):
    """A comment line cut at spaces to `width` characters, continuations starting with `hang`."""
    out = []
    while len(line) > width:
        cut = line.rfind(" ", 0, width)
        if cut <= len(hang):
            break
        out.append(line[:cut])
        line = hang + line[cut + 1:]
    return out + [line]


def _comment(text):
    """The lines of a clause's comment: a text wrapped, or a tuple of lines kept as they are."""
    return list(text) if isinstance(text, tuple) else _wrap(text) if text else []


def _bt_clause(probe, body, condition=None, comment="", traced=True):
    """A clause; `traced`: it filters on @traced (False: every process, see _bt_enrol)."""
    predicate = " && ".join(([TRACED] if traced else []) + ([condition] if condition else []))
    return [*(f"// {line}" for line in _comment(comment)), probe,
            *([f"/{predicate}/"] if predicate else []), "{", *_indent(body), "}"]


def _d_clause(probes, body, predicate=None, comment=""):
    lines = [f" * {line}" for line in _comment(comment)]
    if lines:
        lines[0] = "/*" + lines[0][2:]
        lines[-1] += " */"
    return [*lines, ", ".join(probes) if isinstance(probes, list) else probes,
            *([f"/{predicate}/"] if predicate else []), "{", *_indent(body), "}"]


# ---------------------------------------------------------------------------------------------
# The processes traced (bpftrace): $1 and, unless the runner asks otherwise, every task that it
# or a traced task forks: processes by their pid, threads by their tid (a thread's events carry
# its process's pid, already traced). bpftrace 0.17 attaches uprobes system-wide, so every clause
# filters on @traced. A task leaves it when it exits, so that its number, once reused, is not
# traced; a process's wait status (curtask->exit_code: 9 for SIGKILL, status << 8 for exit) is
# kept in @ended[pid] for the report.

TRACED = "@traced[pid]"


def _bt_follow(follow, everyone=False, setid=False):
    clauses = []
    if follow and not everyone:
        clauses.append(["tracepoint:sched:sched_process_fork", f"/{TRACED}/", "{",
                        "\t@traced[(uint64)args->child_pid] = 1;", "}"])
    if setid and not everyone:
        clauses.append(_bt_setid())
    clauses.append(["tracepoint:sched:sched_process_exit", "/@traced[tid]/", "{",
                    "\tif (tid == pid) { @ended[pid] = (int64)curtask->exit_code; }",
                    "\tdelete(@traced[tid]);", "}"])
    return clauses


# A traced process that execs a set-user-ID or set-group-ID program (its credentials changed by
# the exec, so its user could no longer ptrace it) leaves @traced at that exec, before the new
# program runs: none of its events, nor those of what it forks, are traced from then on, and
# SETID_LINE tells the runner (numbers only: its PID, 1 if its user IDs changed). The runner
# asks for this when the report is for a user other than root (scripts.bpftrace_script's
# `setid`).
SETID_LINE = "dtrace:::SETID %d %d\\n"
_CRED = "curtask->cred->"


def _bt_setid():
    user = " || ".join(f"{_CRED}{which}uid.val != {_CRED}uid.val" for which in ("e", "s"))
    group = " || ".join(f"{_CRED}{which}gid.val != {_CRED}gid.val" for which in ("e", "s"))
    return [f"tracepoint:sched:sched_process_exec", f"/{TRACED} && ({user} || {group})/", "{",
            f"\t$user = ({user}) ? 1 : 0;", f"\tdelete({TRACED});",
            f"\t{_printf(SETID_LINE, ['pid', '$user'])}", "}"]


# Every process (pymemtrace-trace --all): no clause filters on @traced; a process enters it with
# its first event, and that once, PROCESS_LINE tells the runner its PID (to read its command line
# while it lives). Only a number is printed: nothing a process controls.
PROCESS_LINE = "dtrace:::PROCESS %d\\n"


def _bt_enrol():
    return [f"if ({TRACED} == 0) {{ {TRACED} = 1; {_printf(PROCESS_LINE, ['pid'])} }}"]


# ---------------------------------------------------------------------------------------------
# An event's Python location. bpftrace: $b is the file (its basename unless full_file_path),
# read with str() only when printed or used as a key; on the stack, $f, $fn, $ln. D: PYFILE().

def _bt_basename(ptr):
    """$b = the file at `ptr`, or its basename unless full_file_path."""
    return [
        f"$b = {ptr};",
        *_block(f"if (!{_opt(FULL_FILE_PATH)})", [
            "// The basename, read a word at a time (a byte at a time costs 4x more).",
            "$i = (uint64)0;",
            "$stop = 0;",
            *_block("while ($i < 256)", [
                f"$w = *(uint64 *)({ptr} + $i);",
                "$k = (uint64)0;",
                *_block("unroll(8)", [
                    "$c = $w & 0xff;",
                    "if ($c == 0) { $stop = 1; }",
                    f"if ($stop == 0 && $c == 47) {{ $b = {ptr} + $i + $k + 1; }}",
                    "$w = $w >> 8;",
                    "$k++;",
                ]),
                "if ($stop) { break; }",
                "$i += 8;",
            ]),
        ]),
    ]


class _Lang:
    """What a part shared by both languages needs to know of the one it is written in."""

    def __init__(self, name, probes=None, everyone=False, whole_paths=False):
        self.name, self.probes, self.bt = name, probes, name == "bt"
        self.everyone = everyone  # bpftrace: trace every process that makes events
        # bpftrace: files always whole, with no basename loop in the program (the runner's: it
        # shortens them in the report, once per location; the loop cost bpftrace ~0.18 s to
        # compile and verify at every start, and more for each library)
        self.whole_paths = whole_paths
        self.retval = "retval" if self.bt else "arg1"  # what a function returned

    def basename(self, ptr):
        """$b = the file at `ptr` (bpftrace), its basename unless full_file_path or whole_paths."""
        return [f"$b = {ptr};"] if self.whole_paths else _bt_basename(ptr)

    def clause(self, probe, body, condition=None, comment=""):
        if not self.bt:
            return _d_clause(probe, body, condition, comment)
        if self.everyone and ":pymemtrace:" in probe:
            body = [*_bt_enrol(), *body]
        return _bt_clause(probe, body, condition, comment, traced=not self.everyone)

    def args(self, probe):
        return _args(probe, self.name)

    def pymemtrace(self, probe):
        return self.probes.pymemtrace(probe) if self.bt else f"pymemtrace$target:::{probe}"

    def cpython(self, probe):
        if self.bt:
            return self.probes.cpython(probe)
        return f"python$target:::{probe.replace('__', '-')}"

    def function(self, family, name, ret=False):
        if self.bt:
            return self.probes.function(family.binary, name, ret)
        return f"pid$target:{family.d_module}:{name}:{'return' if ret else 'entry'}"

    def thread(self, name):
        """A per-thread variable."""
        return f"@{name}[tid]" if self.bt else f"self->{name}"

    def forget(self, variable):
        return f"delete({variable});" if self.bt else f"{variable} = 0;"

    def where(self, probe=None):
        """(lines, (file, line, function)): the Python location that `probe` carries or, with
        no probe, that of the innermost Python frame of the thread (see _bt_python_stack)."""
        if probe:
            args = self.args(probe)
            if self.bt:
                return (self.basename(args["file"]),
                        ("str($b)", args["line"], f"str({args['function']})"))
            return [], (f"PYFILE({args['file']})", args["line"], f"copyinstr({args['function']})")
        if self.bt:
            return (["$d = @depth[tid];", "$f = @pyfile[tid, $d];", "$fn = @pyfunc[tid, $d];",
                     "$ln = @pyline[tid, $d];", *self.basename("$f")],
                    ("str($b)", "$ln", "str($fn)"))
        return (["this->f = pyfile[tid, self->depth];", "this->fn = pyfunc[tid, self->depth];",
                 "this->ln = pyline[tid, self->depth];"],
                ("PYFILE(this->f)", "this->ln", "PYSTR(this->fn)"))


class BtProbes:
    """The probe specs of a bpftrace program: the pymemtrace probes of each library (`*` when
    none is named: bpftrace -p finds them), CPython's probes in `python`, and the functions of
    `python` or `libc` by uprobes. Records what it was asked for."""

    def __init__(self, libraries, python, libc):
        self.libraries, self.python, self.libc = libraries, python or BT_PYTHON, libc or BT_LIBC
        self.uses_libraries = False
        self.binaries = set()  # "python", "libc"

    def pymemtrace(self, probe):
        self.uses_libraries = True
        if self.libraries is None:
            return f"usdt:*:pymemtrace:{probe}"
        return ",".join(f"usdt:{library}:pymemtrace:{probe}" for library in self.libraries)

    def cpython(self, probe):
        self.binaries.add("python")
        return f"usdt:{self.python}:python:{probe}"

    def function(self, binary, name, ret=False):
        self.binaries.add(binary)
        path = self.libc if binary == "libc" else self.python
        return f"{'uretprobe' if ret else 'uprobe'}:{path}:{name}"


# ---------------------------------------------------------------------------------------------
# The per-thread stack of Python frames, from CPython's probes.

STACK_COMMENT = (
    "Python context: a per-thread stack of (file, function, line) indexed by depth, kept as",
    "the addresses of the running code object's strings and read only when an event prints.",
    "CPython 3.11 does not report the entry of Python-to-Python calls (it does report their",
    "returns): a line event from a frame not on top pushes it, one from the frame just below pops.",
)
STACK = ("pyfile", "pyfunc", "pyline")


def _frame_is(lang, depth):
    """Whether the frame at `depth` is the one that CPython's probe reports."""
    args, at = _args("line", lang), "@" if lang == "bt" else ""
    return (f"{at}pyfunc[tid, {depth}] == {args['function']} && "
            f"{at}pyfile[tid, {depth}] == {args['file']}")


def _call_stack_line(lang, probe, fmt, depth):
    """The CALL or RTN line of CPython's `probe`."""
    lines, location = lang.where(probe)
    return lines + [_printf(fmt, ["pid", *location, depth])]


def _bt_python_stack(lang):
    args = lang.args("line")
    pop = [f"delete(@{name}[tid, $d]);" for name in STACK]

    def call_stack(probe, fmt):
        return _block(f"if ({_opt(PYTHON_CALL_STACK)})", _call_stack_line(lang, probe, fmt, "$d"))

    entry = ["$d = @depth[tid] + 1;", "@depth[tid] = $d;",
             *(f"@{name}[tid, $d] = {args[arg]};" for name, arg in zip(STACK, args)),
             *call_stack("function__entry", CALL_LINE)]
    line = ["$d = @depth[tid];",
            *_block(f"if (!({_frame_is('bt', '$d')}))", [
                *_block(f"if ($d > 0 && {_frame_is('bt', '$d - 1')})", [*pop, "$d = $d - 1;"],
                        "} else {"),
                *_indent(["$d = $d + 1;", f"@pyfile[tid, $d] = {args['file']};",
                          f"@pyfunc[tid, $d] = {args['function']};"]),
                "}",
                "@depth[tid] = $d;",
            ]),
            f"@pyline[tid, $d] = {args['line']};"]
    ret = ["$d = @depth[tid];", *call_stack("function__return", RETURN_LINE),
           *_block(f"if ($d > 0 && {_frame_is('bt', '$d')})", [*pop, "@depth[tid] = $d - 1;"])]
    return [lang.clause(lang.cpython("function__entry"), entry, comment=STACK_COMMENT),
            lang.clause(lang.cpython("line"), line),
            lang.clause(lang.cpython("function__return"), ret)]


def _d_python_stack(lang):
    args = _args("line", "d")
    top = "tid, self->depth"

    def call_stack(probe, fmt):
        return ["#ifdef PYTHON_CALL_STACK",
                *lang.clause(lang.cpython(probe),
                             _call_stack_line(lang, probe, fmt, "self->depth")),
                "#endif"]

    return [
        lang.clause(lang.cpython("function__entry"),
                    ["self->depth++;", *(f"{name}[{top}] = {args[arg]};"
                                         for name, arg in zip(STACK, args))],
                    comment=STACK_COMMENT) + call_stack("function__entry", CALL_LINE),
        lang.clause(lang.cpython("line"), [
            f"this->below = self->depth > 0 && {_frame_is('d', 'self->depth - 1')};",
            f"pyfile[{top}] = this->below ? 0 : pyfile[{top}];",
            f"pyfunc[{top}] = this->below ? 0 : pyfunc[{top}];",
            "self->depth = this->below ? self->depth - 1 : self->depth + 1;",
            f"pyfile[{top}] = {args['file']};",
            f"pyfunc[{top}] = {args['function']};",
        ], f"!({_frame_is('d', 'self->depth')})"),
        lang.clause(lang.cpython("line"), [f"pyline[{top}] = {args['line']};"]),
        call_stack("function__return", RETURN_LINE),
        lang.clause(lang.cpython("function__return"),
                    [*(f"{name}[{top}] = 0;" for name in STACK), "self->depth--;"],
                    f"self->depth > 0 && {_frame_is('d', 'self->depth')}"),
    ]


def _python_stack(lang):
    return (_bt_python_stack if lang.bt else _d_python_stack)(lang)


# ---------------------------------------------------------------------------------------------
# Reports. Summary: bpftrace keeps one map, @alloc[pid, file, function, line, domain, size
# bucket] = stats(size), from which the runner draws totals and histograms; D keeps @bytes,
# @count and @dist = quantize(). Leaks: bpftrace keeps @live[pid, ptr] = (size, domain, file,
# function, line), pid first since a forked child holds its parent's pointers;
# D, which cannot walk an array at END, adds to and takes from @live_bytes and @live_count.

def _bt_size_bucket(size):
    """$bucket = the size's power of two, -1 for 0."""
    return [
        "// The size's power-of-two bucket (-1 for 0): the histograms are drawn from it in the",
        "// report, so one map keyed once by the two names serves totals and histograms alike.",
        f"$rest = (uint64){size};",
        "$bucket = (int64)0;",
        *(f"if ($rest >= (uint64)1 << {bits}) {{ $bucket += {bits}; $rest = $rest >> {bits}; }}"
          for bits in (32, 16, 8, 4, 2, 1)),
        f"if ({size} == 0) {{ $bucket = -1; }}",
    ]


def _summary(lang, location, size, domain):
    file, line, function = location
    if lang.bt:
        # @alloc_events counts what @alloc should hold: a full @alloc (a per-CPU map, which
        # fills before its nominal size) refuses keys silently, and the report says how many.
        return [*_bt_size_bucket(size),
                f"@alloc[pid, {file}, {function}, {line}, {domain}, $bucket] = stats({size});",
                "@alloc_events = count();"]
    key = f"this->file, {function}, {line}, {domain}"
    return [f"this->file = {file};", f"@bytes[{key}] = sum({size});", f"@count[{key}] = count();",
            f"@dist[this->file, {function}, {domain}] = quantize({size});"]


def _bt_live_keep(location, ptr, size, domain):
    """@live[pid, ptr] = the block; @live_domain[pid, ptr] = its domain + 2 (never 0: domains are >= -1),
    read back to count the blocks a full map refused in @live_refused (the two maps hold the
    same keys, so they fill together): a leak report that lost blocks says how many."""
    file, line, function = location
    return [f"@live[pid, {ptr}] = ({size}, {domain}, {file}, {function}, {line});",
            f"@live_domain[pid, {ptr}] = {domain} + 2;",
            f"if (@live_domain[pid, {ptr}] == 0) {{ @live_refused = count(); }}"]


def _bt_live_forget(ptr):
    return [f"delete(@live[pid, {ptr}]);", f"delete(@live_domain[pid, {ptr}]);"]


LIVE = ("size", "domain", "file", "func", "line")  # D: live_NAME[ptr], domain + 1 (0: none)


def _d_live_set(ptr, values):
    return [f"live_{name}[{ptr}] = {value};" for name, value in zip(LIVE, values)]


def _d_live_add(location, ptr, size, domain):
    file, line, function = location
    key = f"this->file, this->func, {line}, {domain}"
    return [f"this->file = {file};", f"this->func = {function};",
            *_d_live_set(ptr, [size, f"{domain} + 1", "this->file", "this->func", line]),
            f"@live_bytes[{key}] = sum((long){size});", f"@live_count[{key}] = sum(1);"]


def _end(lang, title, bt_maps, d_printa):
    """A report's END: its title, then its maps (bpftrace print(), D printa())."""
    return [_printf(title), *([f"print({name});" for name in bt_maps] if lang.bt else d_printa)]


def _summary_end(lang):
    return _end(lang, SUMMARY_TITLE, ["@alloc", "@alloc_events"],
                ["printa(@dist);", "printa(@count);", "printa(@bytes);"])


def _leaks_end(lang):
    return _end(lang, LEAKS_TITLE, ["@live", "@live_refused"],
                [f'printa("   %s, %s, line %d, domain %d: %@d {what}\\n", @live_{name});'
                 for what, name in (("blocks", "count"), ("bytes", "bytes"))])


# ---------------------------------------------------------------------------------------------
# Allocator families: four functions, whose entry keeps the arguments per thread and whose
# return prints one complete line at the Python location of the frame stack.

Family = collections.namedtuple("Family", "binary d_module functions returns callers what")
KEPT = {"malloc": ("size",), "calloc": ("count", "size"), "realloc": ("ptr", "size")}


def _functions(prefix, names):
    return dict(zip(("malloc", "calloc", "realloc", "free"), (prefix + name for name in names)))


def _cpython_family(prefix, what):
    """CPython's public allocator functions PREFIX{Malloc,Calloc,Realloc,Free}."""
    return Family("python", "", _functions(prefix, ("Malloc", "Calloc", "Realloc", "Free")),
                  lambda function: f"{function} returns", False, what)


LIBC = Family("libc", "libc*", _functions("", ("malloc", "calloc", "realloc", "free")),
              lambda function: "pntr", True,
              "every libc malloc, calloc, realloc and free of a Python process, with its Python "
              "location.")
FAMILIES = {
    "py_flow_malloc_free": LIBC,
    "py_object_D_WITH_PYMALLOC": _cpython_family(
        "PyObject_", "Python's object allocator (release builds, pymalloc on) through its public "
                     "PyObject_* functions, with Python locations."),
    "py_object_U_WITH_PYMALLOC": _cpython_family(
        "PyMem_Raw", "Python's raw allocator (builds --without-pymalloc) through its public "
                     "PyMem_Raw* functions, with Python locations."),
}
# Libc's malloc also adds up its sizes by engine caller (no Python frame) and by Python file and
# function: @NAME_total = sum, @NAME = power-of-two histogram.
CALLERS = (("by engine caller", "@by_caller", "   %A, total bytes = %@d\\n"),
           ("by Python file and function", "@by_python", "   %s, %s, bytes total = %@d\\n"))


def _family_event(family, call):
    name = family.functions[call]
    if call == "free":
        return Event(name, ("ptr",), None, None, False)
    return Event(name, KEPT[call], "ret", family.returns(name), False)


def _family_comment(family):
    f = family.functions
    inside = ("(glibc's realloc(NULL, n) and realloc(p, 0) call malloc and free)"
              if family is LIBC else f"({f['malloc']} or {f['free']})")
    return (f"{'/'.join(f.values())}: the entry keeps the arguments per thread, the return "
            f"prints one complete line. Calls made inside {f['realloc']} {inside} are not "
            "reported twice.")


def _aggregate(lang, name, key, size):
    return [f"{name}_total[{key}] = sum({size});",
            f"{name}[{key}] = {'hist' if lang.bt else 'quantize'}({size});"]


def _callers_end(lang):
    lines = []
    for index, (title, name, total) in enumerate(CALLERS):
        newline = "\\n" if index else ""
        lines += _end(lang, f"{newline}Python malloc byte distributions {title}:\\n",
                      [f"{name}_total", name],
                      [f'printa("{total}", {name}_total);', f"printa({name});"])
    return lines


def _family_script(family, lang):
    blocks = _python_stack(lang)
    on_stack, location = lang.where()
    not_in_realloc = f"!{lang.thread('in_realloc')}"
    for call in ("malloc", "calloc", "realloc"):
        function, called = family.functions[call], lang.thread(f"in_{call}")
        kept = {arg: f"arg{index}" for index, arg in enumerate(KEPT[call])}
        if family.callers and call == "malloc":
            kept["caller"] = '*(uint64 *)reg("sp")' if lang.bt else "ucaller"
        values = {arg: lang.thread(f"{call}_{arg}") for arg in kept}
        entry = [f"{called} = 1;", *(f"{values[arg]} = {arg_n};" for arg, arg_n in kept.items())]
        forget = [lang.forget(variable) for variable in [called, *values.values()]]
        printing = [*on_stack, _event_printf(_family_event(family, call), location,
                                             {**values, "ret": lang.retval})]
        cases = []  # (condition, lines): where libc's malloc adds up its size
        if "caller" in kept:
            file = "$f" if lang.bt else "this->f"
            cases = [(f"{file} == 0", _aggregate(lang, CALLERS[0][1], f"usym({values['caller']})",
                                                 values["size"])),
                     (None if lang.bt else f"{file} != 0",
                      _aggregate(lang, CALLERS[1][1], f"{location[0]}, {location[2]}",
                                 values["size"]))]
        blocks.append(lang.clause(lang.function(family, function), entry,
                                  None if call == "realloc" else not_in_realloc,
                                  _family_comment(family) if call == "malloc" else ""))
        returned = lang.function(family, function, ret=True)
        if lang.bt:  # one clause, if/else
            blocks.append(lang.clause(returned, printing + (_bt_choose(cases) if cases else [])
                                      + forget, called))
        elif cases:  # D: a clause a case, then one that forgets
            blocks += [lang.clause(returned, printing, called),
                       *(lang.clause(returned, lines, f"{called} && {condition}")
                         for condition, lines in cases),
                       lang.clause(returned, forget, called)]
        else:
            blocks.append(lang.clause(returned, printing + forget, called))
    blocks.append(lang.clause(
        lang.function(family, family.functions["free"]),
        [*on_stack, _event_printf(_family_event(family, "free"), location, {"ptr": "arg0"})],
        not_in_realloc))
    return blocks


# ---------------------------------------------------------------------------------------------
# The scripts of the pymemtrace probes

def _flow(lang):
    # bpftrace: @flow_events counts the lines printed, so that a reader knows exactly how many
    # its perf buffer dropped (bpftrace's own "Lost N events" undercounts).
    count = ["@flow_events = count();"] if lang.bt else []
    blocks = []
    for probe in ("pyalloc", "pyrealloc", "pyfree"):
        lines, location = lang.where(probe)
        blocks.append(lang.clause(lang.pymemtrace(probe), [
            *lines, _event_printf(PROBE_EVENTS[probe[2:]], location, lang.args(probe)),
            *count]))
    return blocks


def _flow_end(lang):
    return ["print(@flow_events);"] if lang.bt else []


def _summary_script(lang):
    blocks = []
    for probe in ("pyalloc", "pyrealloc"):
        args = lang.args(probe)
        domain = args.get("domain", f"{INTEGER[lang.name]}-1")  # pyrealloc carries none
        lines, location = lang.where(probe)
        blocks.append(lang.clause(lang.pymemtrace(probe),
                                  [*lines, *_summary(lang, location, args["size"], domain)]))
    return blocks


# Detaching from a running process: the runner first calls tgkill(PID, STOP_TID, 0), which does
# nothing to the process (no such thread, no signal), and stops the recording of allocations; the
# frees in flight still arrive before it detaches. bpftrace detaches probe by probe: frees no
# longer seen while allocations still were would report blocks as live that are not.
STOP_TID = 2147483646  # above any pid_max: never a real thread


def _bt_stop_recording():
    return ["tracepoint:syscalls:sys_enter_tgkill",
            f"/args->tgid == $1 && args->pid == {STOP_TID} && args->sig == 0 && uid == 0/",
            "{", "\t@stopping = 1;", "}"]


def _bt_leaks(lang):
    alloc, move, free = (lang.args(probe) for probe in ("pyalloc", "pyrealloc", "pyfree"))
    (alloc_lines, alloc_at), (move_lines, move_at) = lang.where("pyalloc"), lang.where("pyrealloc")
    return [
        _bt_stop_recording(),
        lang.clause(lang.pymemtrace("pyalloc"),
                    [*alloc_lines, *_bt_live_keep(alloc_at, alloc["ptr"], alloc["size"],
                                                  alloc["domain"])],
                    condition="@stopping == 0",
                    comment="@live[pid, ptr] = (size, domain, file, function, line) of the last "
                            "allocation or move of a block; none once the runner stops "
                            "recording (see the tgkill clause)."),
        lang.clause(lang.pymemtrace("pyrealloc"),
                    [f"$domain = @live_domain[pid, {move['old_ptr']}] - 2;",
                     "if ($domain < -1) { $domain = -1; }",
                     *_bt_live_forget(move["old_ptr"]), *move_lines,
                     *_bt_live_keep(move_at, move["new_ptr"], move["size"], "$domain")],
                    comment="A moved block keeps its domain (-1 when it was allocated before "
                            "tracing started)."),
        lang.clause(lang.pymemtrace("pyfree"), _bt_live_forget(free["ptr"])),
    ]


def _d_leaks(lang):
    alloc, move = lang.args("pyalloc"), lang.args("pyrealloc")
    release = [lang.pymemtrace("pyfree"), lang.pymemtrace("pyrealloc")]
    old = ", ".join(f"live_{name}[arg0]" for name in ("file", "func", "line")) + ", this->dom"
    return [
        lang.clause(lang.pymemtrace("pyalloc"),
                    _d_live_add(lang.where("pyalloc")[1], alloc["ptr"], alloc["size"],
                                alloc["domain"]),
                    comment="D cannot walk an array at END: each block remembers its location, "
                            "and the aggregations @live_bytes and @live_count are added to at "
                            "allocation and taken from at release."),
        lang.clause(release, [
            "this->dom = live_domain[arg0] - 1;",
            f"@live_bytes[{old}] = sum(-(long)live_size[arg0]);",
            f"@live_count[{old}] = sum(-1);",
            "self->moved_domain = this->dom + 1;",
            *_d_live_set("arg0", ["0"] * len(LIVE)),
        ], "live_domain[arg0] != 0",
            comment="Releases (and the old half of a move) of blocks allocated while tracing."),
        lang.clause(lang.pymemtrace("pyrealloc"),
                    ["this->dom = self->moved_domain - 1;",
                     *_d_live_add(lang.where("pyrealloc")[1], move["new_ptr"], move["size"],
                                  "this->dom")],
                    comment="The new half of a move keeps the domain (-1 when allocated before "
                            "tracing started): the clause above left it in self->moved_domain."),
        lang.clause(release, ["self->moved_domain = 0;"]),
    ]


def _bt_choose(branches):
    """if / else if / else: (condition, lines) pairs, None the condition of the else; pairs
    without lines are left out."""
    lines = []
    for condition, body in [(c, b) for c, b in branches if b]:
        if condition is None:
            lines.append("} else {")
        else:
            lines.append(f"{'} else if' if lines else 'if'} ({condition}) {{")
        lines += _indent(body)
    return lines + ["}"]


def _bt_by_mode(flow, leaks, summary=()):
    """pymemtrace_pyframes.bt: what the report chosen at BEGIN does."""
    return _bt_choose([(_opt("flow"), flow), (_opt("leaks"), leaks), (None, summary)])


def _pyframes(lang):
    alloc, move = lang.args("alloc"), lang.args("realloc")
    on_stack, location = lang.where()
    free = {name: f"${name}" for name in lang.args("free")}
    return _python_stack(lang) + [
        lang.clause(lang.pymemtrace("alloc"), [*on_stack, *_bt_by_mode(
            [_event_printf(PROBE_EVENTS["alloc"], location, alloc)],
            _bt_live_keep(location, alloc["ptr"], alloc["size"], alloc["domain"]),
            _summary(lang, location, alloc["size"], alloc["domain"]))]),
        lang.clause(lang.pymemtrace("realloc"), [*on_stack, *_bt_by_mode(
            [_event_printf(PROBE_EVENTS["realloc"], location, move)],
            [*_bt_live_forget(move["old_ptr"]),
             *_block(f"if ({move['new_ptr']} != 0)",
                     _bt_live_keep(location, move["new_ptr"], move["size"], move["domain"]))],
            # Under domain -1, as pymemtrace_summary counts a realloc (its pyrealloc carries no
            # domain): both frame sources give the same rows for the same events.
            _block(f"if ({move['new_ptr']} != 0)",
                   _summary(lang, location, move["size"], f"{INTEGER[lang.name]}-1")))],
            f"!({move['new_ptr']} == 0 && {move['size']} != 0)",
            "Every realloc: (NULL, p, n) allocates, (p, q, n) moves, (p, NULL, 0) releases, "
            "(p, NULL, n) failed."),
        lang.clause(lang.pymemtrace("free"), [
            "// arguments read first: bpftrace 0.17 cannot read them inside nested branches here",
            *(f"{free[name]} = {value};" for name, value in lang.args("free").items()),
            *_bt_by_mode([*on_stack, _event_printf(PROBE_EVENTS["free"], location, free)],
                         _bt_live_forget(free["ptr"]))]),
    ]


def _pyframes_end(lang):
    return _bt_choose([(_opt("leaks"), _leaks_end(lang)),
                       (f"!{_opt('flow')}", _summary_end(lang))])


# ---------------------------------------------------------------------------------------------
# The scripts. twins: what the D twin prints, alike and not (tests/toolkit/test_twins.py checks
# that both have the same printf formats and probes); None: no D twin.

Script = collections.namedtuple("Script", "what options modes clauses end twins notes")
SAME_LINES = "prints the same lines: BEGIN, one line per event, END."
NEEDS_DTRACE = "CPython's probes need a Python built --with-dtrace (Debian's /usr/bin/python3)."

_SPECS = {
    "pymemtrace_flow": Script(
        "one line per allocation event of the pymemtrace provider, at its Python location.",
        (FULL_FILE_PATH,), (), _flow, _flow_end,
        "prints the same lines: BEGIN, one line per event, END; the bpftrace script then the "
        "number of events, @flow_events.", ()),
    "pymemtrace_summary": Script(
        "bytes and size distributions per Python file, function, line and domain, aggregated "
        "in the kernel.", (FULL_FILE_PATH,), (), _summary_script, _summary_end,
        "prints the same lines (BEGIN, END, a title) and other maps after them: the bpftrace "
        "script one map, @alloc[pid, file, function, line, domain, size bucket] = stats(size) "
        "(count, average, total), from which toolkit/pymemtrace-trace draws totals and "
        "histograms; the D script @dist[file, function, domain] = quantize(size), then @count "
        "and @bytes[file, function, line, domain].",
        ("One probe hit per allocation: frees are not traced (the leaks script pairs them), and "
         "a realloc, whose probe carries no domain, counts under domain -1.",)),
    "pymemtrace_leaks": Script(
        "the blocks still allocated when tracing stops, with the Python location that "
        "allocated them.", (FULL_FILE_PATH,), (),
        lambda lang: (_bt_leaks if lang.bt else _d_leaks)(lang), _leaks_end,
        "prints the same lines (BEGIN, END, a title) and other maps after them: the bpftrace "
        "script @live[pid, ptr] = (size, domain, file, function, line), one entry per block; "
        "the D "
        "script, which cannot walk an array, the blocks and bytes per file, function, line and "
        "domain (@live_count, @live_bytes).", ()),
    "pymemtrace_pyframes": Script(
        "the plain pymemtrace probes (alloc, realloc, free), located by CPython's own probes "
        "(function__entry, function__return, line) instead of the py* probes.",
        OPTIONS, MODES, _pyframes, _pyframes_end, None,
        ("Prints the lines of pymemtrace_flow.bt (flow), or the map of pymemtrace_summary.bt "
         "(summary, the default) or of pymemtrace_leaks.bt (leaks). It has no D twin.",
         NEEDS_DTRACE + " The line probe fires on every executed line, so this costs several "
         "times what the py* probes cost.")),
}
for _script, _allocators in FAMILIES.items():
    _SPECS[_script] = Script(
        _allocators.what, OPTIONS, (),
        lambda lang, family=_allocators: _family_script(family, lang),
        _callers_end if _allocators.callers else None,
        "prints the same lines (BEGIN, one line per event, END, titles) and the same maps after "
        "them, @by_caller(_total)[caller] and @by_python(_total)[file, function] (sums and "
        "power-of-two histograms of malloc sizes), formatted differently: the D script with "
        "printa(), the bpftrace script with print()." if _allocators.callers else SAME_LINES,
        (NEEDS_DTRACE,))

SCRIPTS = list(_SPECS)
D_SCRIPTS = [name for name in SCRIPTS if _SPECS[name].twins]


def _spec(name):
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"no toolkit script {name!r}; there are {', '.join(SCRIPTS)}") from None


def _header(name, spec, lang):
    """The first comment: what the script does, how to run it, its options, its twin. The same
    whatever files the probes name."""
    lines = [f"{name}.{lang.name}: {spec.what}",
             f"Do not edit by hand: generated from {GENERATOR} (tools/generate-scripts.sh).", ""]
    if lang.bt:
        probes = lang.probes
        words = ["|".join(spec.modes)] if spec.modes else []
        lines += [f"Usage:  bpftrace {'-p PID ' if probes.uses_libraries else ''}toolkit/{name}.bt "
                  "PID " + " ".join(f"[{word}]" for word in words + [o.word for o in spec.options]),
                  "Words after the PID, in any order:"]
        if spec.modes:
            lines.append(f"  {words[0]}  the report (default summary)")
        for o in spec.options:
            lines += [f"  {o.word:<19} {o.meaning}",
                      f"  {'':<19} (D: -D {o.macro}; the older word {o.old_word} works too)"]
        lines.append("The target PID is $1 and what it forks, and theirs (@traced; every clause "
                     "filters on it, since bpftrace 0.17 attaches uprobes system-wide).")
        if probes.uses_libraries:
            lines.append("-p is needed only for the `*` in `usdt:*:pymemtrace:...` (every library "
                         "of PID with the probes); pymemtrace-trace names the library files "
                         "instead, which also sees extensions imported later.")
        if probes.binaries:
            files = " and ".join(text for binary, text in (("python", "Python 3.11"),
                                                           ("libc", "C library"))
                                 if binary in probes.binaries)
            lines.append(f"The checked-in file names Debian 12's {files} in its probes; "
                         "pymemtrace-trace puts the target's in their place.")
    else:
        lines.append(f"Usage:  sudo dtrace -C -s toolkit/{name}.d -p PID "
                     + " ".join(f"[-D {o.macro}]" for o in spec.options))
        for o in spec.options:
            lines += [f"  -D {o.macro:<18} {o.meaning}",
                      f"  {'':<21} (bpftrace: the word {o.word})"]
        if name in FAMILIES:
            lines.append("One complete line per event: the entry keeps the arguments in "
                         "thread-locals (self->), the return prints.")
        else:
            lines.append("Oracle DTrace for Linux reads the pymemtrace probes through its "
                         "stapsdt provider (PID-qualified, as here). It traces PID alone; "
                         "the bpftrace twin also follows what PID forks.")
    lines += spec.notes
    if spec.twins:
        lines.append(f"Twin: {name}.{'d' if lang.bt else 'bt'} {spec.twins}")
    lines.append("toolkit/pymemtrace-trace runs "
                 + ("this file for you." if lang.bt else f"{name}.bt on Linux."))
    lines = [part for line in lines
             for part in ([line] if line.startswith("Usage:") else _wrap(line, hang="  "))]
    if lang.bt:
        return ["#!/usr/bin/env bpftrace", "// SPDX-License-Identifier: MIT",
                *(f"// {line}".rstrip() for line in lines)]
    return ["#!/usr/sbin/dtrace -Cs", "/* SPDX-License-Identifier: MIT",
            *(f" * {line}".rstrip() for line in lines), " */"]


# ---------------------------------------------------------------------------------------------
# Whole scripts

def _bt_begin(spec, everyone=False):
    """BEGIN: each option or mode word looked for among the words after the PID."""
    words = ([(mode,) for mode in spec.modes if mode != "summary"]
             + [(option.word, option.old_word) for option in spec.options])
    slots = range(2, 2 + len(spec.options) + (1 if spec.modes else 0))
    lines = []
    for spellings in words:
        tests = [f'str(${slot}) == "{word}"' for slot in slots for word in spellings]
        lines.append(f"{_opt(spellings[0])} = ({tests[0]}")
        for test in tests[1:]:
            if len(lines[-1]) + len(test) > 84:
                lines.append(f"\t|| {test}")
            else:
                lines[-1] += f" || {test}"
        lines[-1] += ") ? 1 : 0;"
    traced = [] if everyone else ["@traced[(uint64)$1] = 1;"]
    return ["BEGIN", "{", *_indent(lines + traced + [_printf(BEGIN_LINE)]), "}"]


# Maps the runner reads and bpftrace prints at exit: not cleared (bpftrace would print a cleared
# scalar map again, as 0, after the report, which a reader would then take as the last word).
UNCLEARED = ("@live_refused", "@alloc_events", "@flow_events", "@ended")


def _bt_end(program, printing):
    """END: the END line, the report, then every map cleared (or bpftrace would print it)."""
    maps = [name for name in dict.fromkeys(re.findall(r"@\w+", "\n".join([program, *printing])))
            if name not in UNCLEARED]
    clear = [""]
    for name in maps:
        if len(clear[-1]) > 72:
            clear.append("")
        clear[-1] += f"{' ' if clear[-1] else ''}clear({name});"
    return ["END", "{", *_indent([_printf(END_LINE), *printing, *clear]), "}"]


# Snapshots (pymemtrace-trace --interval): the leaks script prints its live blocks every N
# seconds after SNAPSHOT_LINE; the runner adds them up by location. Nothing is added to the
# events' clauses: the cost is the print's (measured: ~11 us of bpftrace and ~3 us of the
# runner per live block), paid once an interval.
SNAPSHOT_LINE = "dtrace:::SNAPSHOT\\n"


def _bt_snapshot(seconds):
    return [f"interval:ms:{max(1, round(seconds * 1000))}", "{",
            *_indent([_printf(SNAPSHOT_LINE), "print(@live);", "print(@live_refused);"]), "}"]


def bpftrace_script(name, libraries=None, python=BT_PYTHON, libc=BT_LIBC, follow=True,
                    interval=None, everyone=False, whole_paths=False, setid=False):
    """The bpftrace program `name` (one of SCRIPTS). `libraries`: None for the standalone form,
    `usdt:*:pymemtrace:PROBE` (bpftrace -p finds the libraries), or a list of library paths,
    one probe spec each, joined by commas; `python` and `libc`: the files named in CPython's
    probes and in the uprobes. The three are put in probe specs as given, never checked or
    escaped, and nowhere else. `follow`: trace the processes that PID forks, and theirs.
    `interval`: seconds between snapshots of the live blocks (pymemtrace_leaks only).
    `everyone`: trace every process whose library makes events, $1 the runner's own PID (only
    the tgkill that stops recording names it). `whole_paths`: files always whole, without the
    basename loop (the runner's programs). `setid`: a process that execs a set-user-ID or
    set-group-ID program is no longer traced (see _bt_setid; not with `everyone`)."""
    spec = _spec(name)
    if interval is not None and name != "pymemtrace_leaks":
        raise ValueError(f"snapshots (interval) are made by pymemtrace_leaks, not {name}")
    lang = _Lang("bt", BtProbes(libraries, python, libc), everyone, whole_paths)
    parts = ["\n".join(_bt_begin(spec, everyone)),
             *("\n".join(clause) for clause in _bt_follow(follow, everyone, setid)),
             *("\n".join(clause) for clause in spec.clauses(lang))]
    if interval is not None:
        parts.append("\n".join(_bt_snapshot(interval)))
    if libraries is not None and not libraries and lang.probes.uses_libraries:
        raise ValueError(f"{name} attaches to pymemtrace probes: give at least one library")
    end = _bt_end("\n".join(parts), spec.end(lang) if spec.end else [])
    return "\n\n".join(["\n".join(_header(name, spec, lang)), *parts, "\n".join(end)]) + "\n"


D_PRAGMAS = ["#pragma D option quiet", "#pragma D option dynvarsize=64m",
             "#pragma D option bufsize=16m"]


def _d_macros(uses_stack):
    """PYFILE: a file as FULL_FILE_PATH asks; PYSTR: a string that may be NULL (stack only)."""
    return ["#ifdef FULL_FILE_PATH", '#define PYFILE(p) ((p) != 0 ? copyinstr(p) : "")', "#else",
            '#define PYFILE(p) ((p) != 0 ? basename(copyinstr(p)) : "")', "#endif",
            *(['#define PYSTR(p) ((p) != 0 ? copyinstr(p) : "")'] if uses_stack else [])]


def d_script(name):
    """The D script `name` (one of D_SCRIPTS)."""
    spec = _spec(name)
    if not spec.twins:
        raise ValueError(f"{name} has no D twin (only a bpftrace script)")
    lang = _Lang("d")
    clauses = ["\n".join(clause) for clause in spec.clauses(lang)]
    end = [_printf(END_LINE), *(spec.end(lang) if spec.end else [])]
    parts = ["\n".join(_header(name, spec, lang) + D_PRAGMAS),
             "\n".join(_d_macros(any("PYSTR(" in clause for clause in clauses))),
             "\n".join(_d_clause("dtrace:::BEGIN", [_printf(BEGIN_LINE)])), *clauses,
             "\n".join(_d_clause("dtrace:::END", end))]
    return "\n\n".join(parts) + "\n"


def generated():
    """{file name: text} of every script of toolkit/."""
    files = {f"{name}.bt": bpftrace_script(name) for name in SCRIPTS}
    files.update({f"{name}.d": d_script(name) for name in D_SCRIPTS})
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Generate the toolkit's bpftrace and D scripts, or check them.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="DIR", help="write every script into DIR")
    action.add_argument("--check", metavar="DIR",
                        help="exit 1, naming them, if scripts in DIR differ from the generated")
    action.add_argument("--print", metavar="FILE", help="print one script, e.g. pymemtrace_flow.bt")
    args = parser.parse_args(argv)
    files = generated()
    if args.print:
        if args.print not in files:
            parser.error(f"{args.print}: not one of {', '.join(sorted(files))}")
        sys.stdout.write(files[args.print])
        return 0
    if args.write:
        for file, text in files.items():
            path = os.path.join(args.write, file)
            with open(path, "w") as out:
                out.write(text)
            os.chmod(path, 0o755)
        print(f"wrote {len(files)} scripts into {args.write}")
        return 0
    differing = []
    for file, text in sorted(files.items()):
        path = os.path.join(args.check, file)
        try:
            with open(path) as existing:
                same = existing.read() == text
        except OSError:
            same = False
        if not same:
            differing.append(path)
    for path in differing:
        print(f"differs from what {GENERATOR} makes: {path}")
    if differing:
        print("fix: tools/generate-scripts.sh")
        return 1
    print(f"{len(files)} scripts as generated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
