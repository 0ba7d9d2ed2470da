/* SPDX-License-Identifier: MIT
 * pymemtrace/python.h: traced twins of CPython's three allocator domains, and the Python
 * location lookup behind the py* probes.
 *
 *   pymemtrace_raw_malloc/raw_calloc/raw_realloc/raw_free           PyMem_Raw*, domain 1
 *   pymemtrace_mem_malloc/mem_calloc/mem_realloc/mem_free           PyMem_*,    domain 2
 *   pymemtrace_object_malloc/object_calloc/object_realloc/object_free  PyObject_*, domain 3
 *   pymemtrace_mem_new/mem_resize/mem_del, pymemtrace_object_new/object_newvar/object_del
 *                                                     PyMem_New... and PyObject_New... twins
 *   pymemtrace_save_thread/restore_thread              PyEval_SaveThread/RestoreThread (behind
 *                                                     Py_BEGIN/END_ALLOW_THREADS) that keep the
 *                                                     location for allocations without the GIL
 *
 * <pymemtrace/redirect.h> sends a whole translation unit's calls to these twins, unmodified.
 *
 * Same signatures, results and GIL rules as the functions they wrap: the raw ones may be called
 * without the GIL, from any thread. Probe sizes are the sizes asked for (CPython serves 0 as 1).
 *
 * Including this header in any translation unit of a shared object makes every wrapper of that
 * shared object (C heap and C++ allocator too) fill the py* probes' filename, function and line
 * from the innermost Python frame of the calling thread, when the thread holds the GIL. The
 * function is the qualified name (`Class.method`, `outer.<locals>.inner`) on 3.11+, where code
 * objects carry one, and the plain name on 3.8-3.10. A thread that released the GIL through
 * pymemtrace_save_thread (Py_BEGIN_ALLOW_THREADS under redirect.h) gets the location where it
 * released it. No location ("" and line 0): a thread that released the GIL otherwise, one
 * without a thread state, a callback with no Python frame (a C atexit function), and,
 * on 3.8-3.11 only, a sub-interpreter run on a thread that already has a main-interpreter thread
 * state (see below). tests/locations proves each case on 3.8-3.15 under bpftrace (3.14 and 3.15
 * from Debian unstable, tools/sid-root.sh). While a tracer
 * is attached to pystack4 or pystack16, the lookup also fills the thread's stack record (up to 4
 * or 16 frames; location.h) that the py* probes' `stack` argument points at.
 *
 * CPython API used beyond the stable one, by version:
 *   3.8-3.12  _PyThreadState_UncheckedGet()   private; 3.13 renamed it PyThreadState_GetUnchecked
 *   3.8       PyThreadState.frame, PyFrameObject.f_code, f_back   struct fields (no accessors before 3.9)
 *   3.8-3.15  PyCodeObject.co_filename, co_name (3.8-3.10), co_qualname (3.11+)   unstable API
 * 3.14 and 3.15 changed nothing this lookup uses: their interpreter frames hold stack references
 * (tagged pointers), but the lookup only reaches frames through PyThreadState_GetFrame,
 * PyFrame_GetBack and PyFrame_GetCode, which still return plain new references, and the code
 * object still has those three fields. The default (GIL) builds only; free-threaded 3.14t is
 * untested.
 */
#ifndef PYMEMTRACE_PYTHON_H
#define PYMEMTRACE_PYTHON_H

#ifndef Py_PYTHON_H
#  define PY_SSIZE_T_CLEAN
#  include <Python.h>
#endif
#if PY_VERSION_HEX < 0x03080000
#  error "pymemtrace supports CPython 3.8 and later"
#endif
#if PY_VERSION_HEX < 0x030B0000
/* 3.8: PyFrameObject's fields (no accessor functions); 3.9, 3.10: PyFrame_GetBack, which
 * Python.h declares only from 3.11 */
#  include <frameobject.h>
#endif

#include <stdint.h> /* uint32_t, uint64_t: the stack record */
#include <string.h> /* strncpy: names that are not UTF-8 */

#include "pymemtrace.h"

PYMEMTRACE_DETAIL_WRAP_ALLOCATOR(pymemtrace_raw_malloc, pymemtrace_raw_calloc,
                                 pymemtrace_raw_realloc, pymemtrace_raw_free, PyMem_RawMalloc,
                                 PyMem_RawCalloc, PyMem_RawRealloc, PyMem_RawFree,
                                 PYMEMTRACE_DOMAIN_PYMEM_RAW)
PYMEMTRACE_DETAIL_WRAP_ALLOCATOR(pymemtrace_mem_malloc, pymemtrace_mem_calloc,
                                 pymemtrace_mem_realloc, pymemtrace_mem_free, PyMem_Malloc,
                                 PyMem_Calloc, PyMem_Realloc, PyMem_Free,
                                 PYMEMTRACE_DOMAIN_PYMEM)
PYMEMTRACE_DETAIL_WRAP_ALLOCATOR(pymemtrace_object_malloc, pymemtrace_object_calloc,
                                 pymemtrace_object_realloc, pymemtrace_object_free,
                                 PyObject_Malloc, PyObject_Calloc, PyObject_Realloc,
                                 PyObject_Free, PYMEMTRACE_DOMAIN_PYOBJECT)

/* Twins of CPython's allocation macros, with the same overflow checks:
 *   pymemtrace_mem_new(type, n), pymemtrace_mem_resize(p, type, n), pymemtrace_mem_del(p)
 *   pymemtrace_object_new(type, typeobj), pymemtrace_object_newvar(type, typeobj, n),
 *   pymemtrace_object_del(op)
 */
#define pymemtrace_mem_new(type, n)                                                            \
    (((size_t)(n) > PY_SSIZE_T_MAX / sizeof(type))                                             \
         ? NULL                                                                                \
         : (type *)pymemtrace_mem_malloc((n) * sizeof(type)))
#define pymemtrace_mem_resize(p, type, n)                                                      \
    ((p) = ((size_t)(n) > PY_SSIZE_T_MAX / sizeof(type))                                       \
               ? NULL                                                                          \
               : (type *)pymemtrace_mem_realloc((p), (n) * sizeof(type)))
#define pymemtrace_mem_del(p) pymemtrace_mem_free(p)
#define pymemtrace_object_new(type, typeobj) ((type *)pymemtrace_object_new_of(typeobj))
#define pymemtrace_object_newvar(type, typeobj, n)                                             \
    ((type *)pymemtrace_object_newvar_of((typeobj), (n)))
#define pymemtrace_object_del(op) pymemtrace_object_free(op)

/* An object made through a traced call is always noted, whatever its type's tp_free: the usual
 * pair, PyObject_New and PyObject_Del in tp_dealloc (tp_free left to CPython's default), frees it
 * through the traced twin too. A tp_dealloc that calls Py_TYPE(self)->tp_free(self) instead, with
 * tp_free left to CPython's PyObject_Free, frees it inside libpython, unseen: such an object stays
 * reported as held (docs/extensions.md).
 *
 * CPython's _PyObject_New (behind PyObject_New), allocating through the traced twin. */
PYMEMTRACE_INLINE PyObject *pymemtrace_object_new_of(PyTypeObject *type)
{
    size_t size = (size_t)type->tp_basicsize;
    PyObject *op = (PyObject *)PyObject_Malloc(size);
    if (op == NULL)
        return PyErr_NoMemory();
    pymemtrace_note_alloc(op, size, PYMEMTRACE_DOMAIN_PYOBJECT);
    return PyObject_Init(op, type);
}

/* CPython's _PyObject_NewVar (behind PyObject_NewVar). */
PYMEMTRACE_INLINE PyVarObject *pymemtrace_object_newvar_of(PyTypeObject *type, Py_ssize_t nitems)
{
    size_t size = _PyObject_VAR_SIZE(type, nitems);
    PyVarObject *op = (PyVarObject *)PyObject_Malloc(size);
    if (op == NULL)
        return (PyVarObject *)PyErr_NoMemory();
    pymemtrace_note_alloc(op, size, PYMEMTRACE_DOMAIN_PYOBJECT);
    return PyObject_InitVar(op, type, nitems);
}

#if PYMEMTRACE_HAVE_USDT

/* Where the calling thread released the GIL through pymemtrace_save_thread, until it takes it
 * back; filename NULL otherwise. One per thread and shared object. */
__attribute__((weak)) PYMEMTRACE_HIDDEN __thread struct pymemtrace_location
    pymemtrace_detail_released_at; /* a definition (a global's name is the same in C++) */

/* Looked up with the GIL still held, where the lookup is safe: the thread's own frames cannot
 * change while it runs without the GIL, and the frame that released it (with its code object and
 * names) lives until the thread takes the GIL back and returns. */
PYMEMTRACE_OUTLINE void pymemtrace_detail_note_release(void)
{
    struct pymemtrace_location where = {"", "", 0, 0, 0, 0};
    pymemtrace_python_locate(&where);
    pymemtrace_detail_released_at = where;
}

/* The thread state of the calling thread if it holds the GIL, else NULL. Never blocks, never
 * takes the GIL: the raw wrappers run on threads that have none. */
static inline PyThreadState *pymemtrace_detail_attached_thread_state(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked(); /* thread-local: NULL unless attached */
#elif PY_VERSION_HEX >= 0x030C0000
    /* Private API. Thread-local since 3.12 (_Py_tss_tstate; libpython3.12 reads it through
     * __tls_get_addr), cleared when the thread releases the GIL: NULL unless attached. */
    return _PyThreadState_UncheckedGet();
#else
    /* 3.8-3.11: _PyThreadState_UncheckedGet() (private API) is _PyRuntime's GIL holder,
     * whichever thread it is: taken alone it would give a C thread the location of the thread
     * that holds the GIL meanwhile. It is ours only if it is the thread state PyGILState
     * registered for this thread, which no other thread can make current; compared as
     * pointers, never dereferenced, as another thread may free it at any time. A sub-interpreter
     * run on a thread that already has a main-interpreter thread state (Py_NewInterpreter from
     * Python code) is not registered, so it gets no location; telling it apart would mean
     * reading the holder's fields without knowing that we hold the GIL. */
    PyThreadState *holder = _PyThreadState_UncheckedGet();
    if (holder == NULL || holder != PyGILState_GetThisThreadState())
        return NULL;
    return holder;
#endif
}

/* The bytes of a name that is not valid UTF-8: room for the longest a tracer reads (bpftrace:
 * 200), cut there. */
#define PYMEMTRACE_DETAIL_RAW_NAME 256
/* The names that are not UTF-8 whose bytes are kept while the process lives, at most. */
#define PYMEMTRACE_DETAIL_RAW_NAMES_KEPT 65536

/* Names that are not UTF-8 (str -> their bytes, surrogateescape), kept while the process lives:
 * a batched event carries the name's address and is read later (batch.h), after the thread's
 * next lookups. Main interpreter only (an isolated one has its own GIL). One per shared object. */
__attribute__((weak)) PYMEMTRACE_HIDDEN PyObject *pymemtrace_detail_raw_names_kept;

static inline const char *pymemtrace_detail_kept_raw_name(PyObject *text, PyObject *bytes)
{
    PyObject *kept = __atomic_load_n(&pymemtrace_detail_raw_names_kept, __ATOMIC_ACQUIRE);
    PyObject *known;
#if PY_VERSION_HEX >= 0x03090000
    if (PyInterpreterState_Get() != PyInterpreterState_Main())
#else
    if (_PyInterpreterState_Get() != PyInterpreterState_Main())
#endif
        return NULL;
    if (kept == NULL) {
        PyObject *made = PyDict_New(), *none = NULL;
        if (made == NULL)
            return NULL;
        if (__atomic_compare_exchange_n(&pymemtrace_detail_raw_names_kept, &none, made, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            kept = made;
        else {
            Py_DECREF(made); /* another thread made it first (free-threaded builds) */
            kept = none;
        }
    }
    known = PyDict_GetItemWithError(kept, text); /* borrowed: the dict keeps it */
    if (known != NULL)
        return PyBytes_AS_STRING(known);
    if (PyErr_Occurred() || bytes == NULL
        || PyDict_GET_SIZE(kept) >= PYMEMTRACE_DETAIL_RAW_NAMES_KEPT
        || PyDict_SetItem(kept, text, bytes) != 0)
        return NULL;
    return PyBytes_AS_STRING(bytes);
}

static inline const char *pymemtrace_detail_utf8(PyObject *text,
                                                 char (*raw)[PYMEMTRACE_DETAIL_RAW_NAME])
{
    const char *utf8;
    PyObject *bytes;
    if (text == NULL || !PyUnicode_Check(text))
        return "";
    /* ASCII: the string's own bytes. Otherwise CPython allocates a UTF-8 copy once, through
     * PyObject_Malloc, and keeps it with the string. */
    utf8 = PyUnicode_AsUTF8(text);
    if (utf8 != NULL)
        return utf8;
    /* A name with bytes that are not UTF-8 (a file name, decoded with surrogateescape): its own
     * bytes, kept while the process lives, or (past the most kept, or in a subinterpreter) copied
     * into the calling thread's buffer, which outlives the probe that follows but not the
     * thread's next lookup. */
    PyErr_Clear();
    utf8 = pymemtrace_detail_kept_raw_name(text, NULL);
    PyErr_Clear();
    if (utf8 != NULL)
        return utf8;
    bytes = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
    if (bytes == NULL) {
        PyErr_Clear();
        return "";
    }
    utf8 = pymemtrace_detail_kept_raw_name(text, bytes);
    PyErr_Clear();
    if (utf8 == NULL) {
        strncpy(*raw, PyBytes_AS_STRING(bytes), PYMEMTRACE_DETAIL_RAW_NAME - 1);
        (*raw)[PYMEMTRACE_DETAIL_RAW_NAME - 1] = '\0';
        utf8 = *raw;
    }
    Py_DECREF(bytes); /* kept: the dict holds it */
    return utf8;
}

/* splitmix64's finaliser: every bit of the input moves about half the bits of the output. */
static inline uint64_t pymemtrace_detail_mix(uint64_t bits)
{
    bits ^= bits >> 30;
    bits *= 0xbf58476d1ce4e5b9u;
    bits ^= bits >> 27;
    bits *= 0x94d049bb133111ebu;
    return bits ^ (bits >> 31);
}

/* hash() of a name, which the string caches: content, so that the id of a frame cannot be taken
 * over by another code object's strings at the same addresses once the first one died. */
static inline uint64_t pymemtrace_detail_name_hash(PyObject *text)
{
    Py_hash_t hash;
    if (text == NULL || !PyUnicode_Check(text))
        return 0;
    hash = PyObject_Hash(text);
    if (hash == -1) {
        PyErr_Clear();
        return 0;
    }
    return (uint64_t)hash;
}

/* A frame's content id, never 0 (0: no frame). */
static inline uint64_t pymemtrace_detail_frame_id(PyObject *filename, PyObject *function, int line)
{
    uint64_t id = pymemtrace_detail_mix(
        pymemtrace_detail_name_hash(filename)
        ^ pymemtrace_detail_mix(pymemtrace_detail_name_hash(function)
                                + 0x9e3779b97f4a7c15u * ((uint64_t)(uint32_t)line + 1)));
    return id != 0 ? id : 1;
}

/* The frame that called `frame`, and `frame` released; NULL at the outermost. */
static inline PyFrameObject *pymemtrace_detail_caller(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x03090000
    PyFrameObject *back = PyFrame_GetBack(frame); /* new reference; 3.11+ makes the object */
    Py_DECREF(frame);
    return back;
#else
    return frame->f_back; /* borrowed */
#endif
}

/* While pynative is attached: the native caller in the record, which goes with the event (with no
 * frames, requested 0, when no depth is asked). */
static inline void pymemtrace_detail_give_native(struct pymemtrace_location *location,
                                                 struct pymemtrace_stack *stack, uintptr_t native)
{
    if (pymemtrace_semaphores[PYMEMTRACE_PROBE_PYNATIVE] == 0)
        return;
    if (location->stack == 0)
        stack->depth = stack->requested = 0;
    stack->native = native;
    location->native = native;
    location->stack = (uintptr_t)stack;
}

/* Fills `location` from the innermost Python frame of the calling thread and, while a tracer asks
 * for depth (pystack4 or pystack16 attached), the thread's stack record with that many frames,
 * whose address goes in `location->stack`. Runs only inside the py* probes' path. The strings
 * belong to the frames' code objects, which the running frames keep alive until they return, or
 * (a name that is not UTF-8) to the names kept while the process lives: either way they outlive
 * the probe. */
PYMEMTRACE_EXTERN_C __attribute__((weak, noinline)) PYMEMTRACE_HIDDEN void
pymemtrace_python_locate(struct pymemtrace_location *location)
{
    /* The lookup may allocate: 3.11+ creates the frame object, and a non-ASCII name gets its
     * UTF-8 copy. An allocator hook reporting through pymemtrace_note_* would come back here and,
     * on 3.11+, recurse until the stack overflows (tests/locations: hooked()); nested events get
     * no location instead. */
    static __thread int looking_up;
    static __thread char raw_names[PYMEMTRACE_STACK_FRAMES][2][PYMEMTRACE_DETAIL_RAW_NAME];
    static __thread struct pymemtrace_stack stack;
    PyThreadState *tstate;
    PyFrameObject *frame;
    PyCodeObject *code;
    uint32_t wanted = 0, depth = 0;
    uint64_t stack_id = 0;
    int batched = pymemtrace_semaphores[PYMEMTRACE_PROBE_PYBATCH] != 0; /* frame ids wanted */
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *saved_exception;
#else
    PyObject *saved_type, *saved_value, *saved_traceback;
#endif

    if (looking_up)
        return;
    tstate = pymemtrace_detail_attached_thread_state();
    if (tstate == NULL) {
        /* Without the GIL: where it was released, if through pymemtrace_save_thread (the record
         * as it was filled then). */
        uintptr_t native = location->native;
        if (pymemtrace_detail_released_at.filename != NULL)
            *location = pymemtrace_detail_released_at;
        pymemtrace_detail_give_native(location, &stack, native);
        return;
    }
    looking_up = 1;
#if PY_VERSION_HEX >= 0x030C0000
    saved_exception = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&saved_type, &saved_value, &saved_traceback);
#endif
    /* The request, read here only: the wrappers' fast path reads the first three pairs alone. */
    if (PYMEMTRACE_UNLIKELY(pymemtrace_semaphore_pairs[PYMEMTRACE_PROBE_PYSTACK4 / 2] != 0))
        wanted = pymemtrace_semaphores[PYMEMTRACE_PROBE_PYSTACK16] != 0 ? PYMEMTRACE_STACK_FRAMES
                                                                         : 4;

#if PY_VERSION_HEX >= 0x03090000
    frame = PyThreadState_GetFrame(tstate); /* new reference, or NULL */
#else
    frame = tstate->frame; /* borrowed */
#endif
    while (frame != NULL) {
        PyObject *function;
        const char *filename_utf8, *function_utf8;
        int lineno;
#if PY_VERSION_HEX >= 0x03090000
        code = PyFrame_GetCode(frame); /* new reference */
#else
        code = frame->f_code;
#endif
#if PY_VERSION_HEX >= 0x030B0000
        function = code->co_qualname;
#else
        function = code->co_name;
#endif
        lineno = PyFrame_GetLineNumber(frame);
        filename_utf8 = pymemtrace_detail_utf8(code->co_filename, &raw_names[depth][0]);
        function_utf8 = pymemtrace_detail_utf8(function, &raw_names[depth][1]);
        if (depth == 0) {
            location->lineno = lineno;
            location->filename = filename_utf8;
            location->function = function_utf8;
            /* A batching tracer reads the names once per id (batch.h). */
            if (batched)
                location->frame = pymemtrace_detail_frame_id(code->co_filename, function, lineno);
        }
        if (wanted != 0) {
            struct pymemtrace_frame *record = &stack.frames[depth];
            record->id = pymemtrace_detail_frame_id(code->co_filename, function, lineno);
            stack_id = pymemtrace_detail_mix(stack_id ^ record->id);
            record->stack = stack_id;
            record->filename = filename_utf8;
            record->function = function_utf8;
            record->lineno = lineno;
            record->reserved = 0;
        }
#if PY_VERSION_HEX >= 0x03090000
        Py_DECREF(code);
#endif
        if (++depth >= wanted) {
#if PY_VERSION_HEX >= 0x03090000
            Py_DECREF(frame);
#endif
            break;
        }
        frame = pymemtrace_detail_caller(frame);
    }
    if (wanted != 0) {
        uint32_t rest;
        /* A shorter stack keeps its key at every depth a tracer may read. */
        for (rest = depth; rest < wanted; ++rest) {
            struct pymemtrace_frame *record = &stack.frames[rest];
            record->id = 0;
            record->stack = stack_id;
            record->filename = "";
            record->function = "";
            record->lineno = 0;
            record->reserved = 0;
        }
        stack.depth = depth;
        stack.requested = wanted;
        location->stack = (uintptr_t)&stack;
    }
    pymemtrace_detail_give_native(location, &stack, location->native);

#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved_exception);
#else
    PyErr_Restore(saved_type, saved_value, saved_traceback);
#endif
    looking_up = 0;
}

#endif /* PYMEMTRACE_HAVE_USDT */

/* PyEval_SaveThread's twin: while a tracer asks for locations, the calling thread's location is
 * kept for the allocations it makes without the GIL (redirect.h renames PyEval_SaveThread, so
 * Py_BEGIN_ALLOW_THREADS and Cython's `with nogil` use it). Untraced: three loads and a branch. */
PYMEMTRACE_INLINE PyThreadState *pymemtrace_save_thread(void)
{
#if PYMEMTRACE_HAVE_USDT
    if (PYMEMTRACE_UNLIKELY(pymemtrace_semaphores[PYMEMTRACE_PROBE_PYALLOC]
                            | pymemtrace_semaphores[PYMEMTRACE_PROBE_PYREALLOC]
                            | pymemtrace_semaphores[PYMEMTRACE_PROBE_PYFREE]))
        pymemtrace_detail_note_release();
#endif
    return PyEval_SaveThread();
}

/* PyEval_RestoreThread's twin: the thread holds the GIL again, and its own frames tell where. */
PYMEMTRACE_INLINE void pymemtrace_restore_thread(PyThreadState *tstate)
{
    PyEval_RestoreThread(tstate);
#if PYMEMTRACE_HAVE_USDT
    if (PYMEMTRACE_UNLIKELY(pymemtrace_detail_released_at.filename != NULL))
        pymemtrace_detail_released_at.filename = NULL;
#endif
}

#endif /* PYMEMTRACE_PYTHON_H */
