# SPDX-License-Identifier: MIT
"""Allocations through locate_ext from every kind of Python code, for test_locations.py.

A line that calls into locate_ext carries a tag, `# ALLOC: <tag>`; test_locations.py finds the
line from the tag and knows which file, function and line its py* probes must name. Every call is
printed as a record `REC|<tag>|<op>|<domain>|<size>|<ptr>|<new_ptr>` so that the test can match
the probes' pointers with the ones Python got. Runs with Python 3.8+, with or without a tracer.
"""
import atexit
import sys
import threading

import locate_ext as ext  # its exec slot allocates: the record `init`

HEAP, RAW, MEM, OBJECT = 0, 1, 2, 3


def record(tag, op, domain, size, ptr, new_ptr=0):
    print(f"REC|{tag}|{op}|{domain}|{size}|{ptr}|{new_ptr}")
    return new_ptr or ptr


def every_family():
    """malloc, calloc, realloc and free in each domain, from a plain module-level function."""
    for domain in (HEAP, RAW, MEM, OBJECT):
        size = 100 + domain
        p = record("function_malloc", "malloc", domain, size, ext.malloc(domain, size))  # ALLOC: function_malloc
        q = record("function_calloc", "calloc", domain, 4 * size, ext.calloc(domain, 4, size))  # ALLOC: function_calloc
        r = record("function_realloc", "realloc", domain, 3000, p, ext.realloc(domain, p, 3000))  # ALLOC: function_realloc
        n = record("function_realloc_null", "realloc", domain, 50, 0, ext.realloc(domain, 0, 50))  # ALLOC: function_realloc_null
        for block in (q, r, n):
            record("function_free", "free", domain, 0, block); ext.free(domain, block)  # ALLOC: function_free


def outer():
    def inner():
        return record("nested", "malloc", MEM, 64, ext.malloc(MEM, 64))  # ALLOC: nested
    return inner()


class Widget:
    def build(self):
        return record("method", "malloc", OBJECT, 72, ext.malloc(OBJECT, 72))  # ALLOC: method


def generator():
    yield record("generator", "malloc", RAW, 80, ext.malloc(RAW, 80))  # ALLOC: generator


lambda_alloc = lambda: record("lambda", "malloc", HEAP, 88, ext.malloc(HEAP, 88))  # ALLOC: lambda


def comprehension():
    return [record("listcomp", "malloc", MEM, size, ext.malloc(MEM, size)) for size in (96, 97)]  # ALLOC: listcomp


def größe():
    """A non-ASCII name: the lookup asks CPython for its UTF-8 form, allocated once."""
    return record("non_ascii", "malloc", MEM, 152, ext.malloc(MEM, 152))  # ALLOC: non_ascii


def in_thread():
    record("thread", "malloc", RAW, 104, ext.malloc(RAW, 104))  # ALLOC: thread


def while_handling():
    """Allocates in an `except` block; the exception being handled must survive the lookup."""
    try:
        raise KeyError("handled")
    except KeyError as error:
        record("except", "malloc", MEM, 112, ext.malloc(MEM, 112))  # ALLOC: except
        assert sys.exc_info()[1] is error, sys.exc_info()


def with_pending_error():
    """locate_ext allocates and frees while a ValueError is set in C; it must survive."""
    ptr, kept = ext.keep_pending_error(120)  # ALLOC: pending_error
    record("pending_error", "malloc", MEM, 120, ptr)
    record("pending_error", "free", MEM, 0, ptr)
    assert kept, "the pending exception did not survive the location lookup"


def without_location(tag, records):
    for op, domain, size, ptr, new_ptr in records:
        record(tag, op, domain, size, ptr, new_ptr)


def hooked():
    """A PyObject allocator hook reporting through pymemtrace: the lookup must not recurse."""
    ext.hook_object_allocator(True)
    objects = [object() for _ in range(3)]  # 3.11+: the lookup creates this frame's object
    ext.hook_object_allocator(False)
    return objects


def at_exit():
    p = record("atexit", "malloc", RAW, 128, ext.malloc(RAW, 128))  # ALLOC: atexit
    ext.free(RAW, p)  # ALLOC: atexit_free
    record("atexit_free", "free", RAW, 0, p)


def main():
    print(f"ENABLED|{'|'.join(map(str, ext.probes_enabled()))}")
    record("init", "malloc", MEM, 24, ext.init_block)
    record("init", "free", MEM, 0, ext.init_block)
    every_family()
    outer()
    Widget().build()
    list(generator())
    lambda_alloc()
    comprehension()
    größe()
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    while_handling()
    with_pending_error()
    without_location("c_thread", ext.c_thread(True))
    without_location("c_thread", ext.c_thread(False))
    without_location("without_gil", ext.without_gil())
    without_location("released_gil", ext.released_gil())  # ALLOC: released_gil
    with open(sys.argv[1]) as source:  # the sub-interpreter's code: in_subinterpreter.py
        sub_records = ext.run_in_subinterpreter(source.read(), sys.argv[1])
    for line in sub_records.splitlines():
        print(line)
    hooked()
    atexit.register(at_exit)


main()
# Module level; then at exit, a C function called with no Python frame at all.
p = record("module", "malloc", RAW, 136, ext.malloc(RAW, 136))  # ALLOC: module
atexit.register(ext.free, RAW, p)
record("atexit_c", "free", RAW, 0, p)
