// SPDX-License-Identifier: MIT
// cMemLeak: Python objects that own one block of memory from a chosen allocator, for watching
// allocations and leaks with a tracer. Every block is allocated and released through the
// pymemtrace wrappers, so pymemtrace:alloc and pymemtrace:free fire with the block's address,
// its size and its domain.
//
//   CMalloc         malloc / free                 domain 0
//   PyRawMalloc     PyMem_RawMalloc / RawFree     domain 1
//   PyMalloc        PyMem_Malloc / Free           domain 2
//   PyObjectMalloc  PyObject_Malloc / Free        domain 3
//
// The four types share one implementation, `Block<Family>`; a Family says which wrappers to call.
// Everything runs with the GIL held, which is what makes the types safe to share between threads.
#include <pymemtrace/python.h> // Python.h, pymemtrace_*malloc/free

#include <cerrno>   // errno, EFAULT
#include <cstddef>  // offsetof
#include <cstdint>  // uintptr_t
#include <cstring>  // std::memset, std::strrchr

#if defined(__linux__)
#  include <sys/uio.h> // process_vm_readv
#  include <unistd.h>  // getpid
#endif

namespace {

// --- Arguments --------------------------------------------------------------------------------

// Converts `arg` to a byte count. TypeError when it is not an integer (anything with
// __index__), ValueError when negative, MemoryError when above PY_SSIZE_T_MAX (no allocator can
// serve that). Returns false with the exception set.
bool parse_size(PyObject *arg, Py_ssize_t *size)
{
    PyObject *index = PyNumber_Index(arg);
    if (index == nullptr)
        return false;
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (value == -1 && PyErr_Occurred())
        return false;
    // On overflow `value` is -1: test `overflow` first.
    if (overflow > 0 || (overflow == 0 && value > PY_SSIZE_T_MAX)) {
        PyErr_SetString(PyExc_MemoryError, "size is larger than any allocation can be");
        return false;
    }
    if (overflow < 0 || value < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return false;
    }
    *size = static_cast<Py_ssize_t>(value);
    return true;
}

// Converts `arg` to a signed count for refcount arithmetic; `*overflow` as in
// PyLong_AsLongLongAndOverflow. TypeError when it is not an integer.
bool parse_delta(PyObject *arg, long long *delta, int *overflow)
{
    PyObject *index = PyNumber_Index(arg);
    if (index == nullptr)
        return false;
    *delta = PyLong_AsLongLongAndOverflow(index, overflow);
    Py_DECREF(index);
    return !(*delta == -1 && PyErr_Occurred());
}

// --- The block types --------------------------------------------------------------------------

struct BlockObject {
    PyObject ob_base;
    void *buffer;     // NULL until __init__ succeeds
    Py_ssize_t size;  // bytes asked of the allocator
};

BlockObject *as_block(PyObject *self)
{
    return reinterpret_cast<BlockObject *>(self);
}

// The families: which traced wrappers a type allocates and releases with.
struct CHeap {
    static constexpr const char *spec_name = "pymemtrace.cMemLeak.CMalloc";
    static constexpr const char *init_format = "O:CMalloc";
    static constexpr int domain = PYMEMTRACE_DOMAIN_C_HEAP;
    static constexpr const char *doc =
        "CMalloc(size)\n--\n\n"
        "A block of `size` bytes from the C heap (malloc, released with free when the object\n"
        "is deleted); pymemtrace probes report it with domain 0.\n\n"
        "size: an integer >= 0. A negative size raises ValueError, one no allocation can\n"
        "satisfy (larger than PY_SSIZE_T_MAX, or refused by the allocator) MemoryError, a\n"
        "non-integer TypeError. Size 0 allocates 1 byte, so that every block has its own\n"
        "address, and `size` then reads 1: `size` is always the byte count passed to the\n"
        "allocator and reported by the alloc probe. The bytes are not initialised.\n"
        "Calling __init__ again allocates a new block and then frees the old one.";
    static void *allocate(size_t size) { return pymemtrace_malloc(size); }
    static void release(void *ptr) { pymemtrace_free(ptr); }
};

struct PyMemRaw {
    static constexpr const char *spec_name = "pymemtrace.cMemLeak.PyRawMalloc";
    static constexpr const char *init_format = "O:PyRawMalloc";
    static constexpr int domain = PYMEMTRACE_DOMAIN_PYMEM_RAW;
    static constexpr const char *doc =
        "PyRawMalloc(size)\n--\n\n"
        "A block of `size` bytes from PyMem_RawMalloc (released with PyMem_RawFree when the\n"
        "object is deleted); pymemtrace probes report it with domain 1. This allocator never\n"
        "uses pymalloc's small-object pools.\n\n"
        "size: as for CMalloc (ValueError, MemoryError, TypeError; 0 allocates 1 byte and\n"
        "`size` reads 1). The bytes are not initialised. Calling __init__ again allocates a\n"
        "new block and then frees the old one.";
    static void *allocate(size_t size) { return pymemtrace_raw_malloc(size); }
    static void release(void *ptr) { pymemtrace_raw_free(ptr); }
};

struct PyMem {
    static constexpr const char *spec_name = "pymemtrace.cMemLeak.PyMalloc";
    static constexpr const char *init_format = "O:PyMalloc";
    static constexpr int domain = PYMEMTRACE_DOMAIN_PYMEM;
    static constexpr const char *doc =
        "PyMalloc(size)\n--\n\n"
        "A block of `size` bytes from PyMem_Malloc (released with PyMem_Free when the object\n"
        "is deleted); pymemtrace probes report it with domain 2. Blocks of 512 bytes or less\n"
        "come from pymalloc's pools, yet the probes fire for them all the same.\n\n"
        "size: as for CMalloc (ValueError, MemoryError, TypeError; 0 allocates 1 byte and\n"
        "`size` reads 1). The bytes are not initialised. Calling __init__ again allocates a\n"
        "new block and then frees the old one.";
    static void *allocate(size_t size) { return pymemtrace_mem_malloc(size); }
    static void release(void *ptr) { pymemtrace_mem_free(ptr); }
};

struct PyObjectMem {
    static constexpr const char *spec_name = "pymemtrace.cMemLeak.PyObjectMalloc";
    static constexpr const char *init_format = "O:PyObjectMalloc";
    static constexpr int domain = PYMEMTRACE_DOMAIN_PYOBJECT;
    static constexpr const char *doc =
        "PyObjectMalloc(size)\n--\n\n"
        "A block of `size` bytes from PyObject_Malloc (released with PyObject_Free when the\n"
        "object is deleted); pymemtrace probes report it with domain 3. Blocks of 512 bytes or\n"
        "less come from pymalloc's pools, yet the probes fire for them all the same.\n\n"
        "size: as for CMalloc (ValueError, MemoryError, TypeError; 0 allocates 1 byte and\n"
        "`size` reads 1). The bytes are not initialised. Calling __init__ again allocates a\n"
        "new block and then frees the old one.";
    static void *allocate(size_t size) { return pymemtrace_object_malloc(size); }
    static void release(void *ptr) { pymemtrace_object_free(ptr); }
};

template <class Family>
struct Block {
    static int init(PyObject *self, PyObject *args, PyObject *kwds)
    {
        static char size_keyword[] = "size";
        static char *keywords[] = {size_keyword, nullptr};
        PyObject *size_arg = nullptr;
        if (!PyArg_ParseTupleAndKeywords(args, kwds, Family::init_format, keywords, &size_arg))
            return -1;
        Py_ssize_t size = 0;
        if (!parse_size(size_arg, &size))
            return -1;
        if (size == 0)
            size = 1; // every block gets an address of its own
        void *buffer = Family::allocate(static_cast<size_t>(size));
        if (buffer == nullptr) {
            PyErr_Format(PyExc_MemoryError, "%s: cannot allocate %zd bytes",
                         Py_TYPE(self)->tp_name, size);
            return -1;
        }
        // A second __init__: the object holds the new block before the old one goes.
        BlockObject *block = as_block(self);
        void *old = block->buffer;
        block->buffer = buffer;
        block->size = size;
        if (old != nullptr)
            Family::release(old);
        return 0;
    }

    static void dealloc(PyObject *self)
    {
        PyTypeObject *type = Py_TYPE(self);
        BlockObject *block = as_block(self);
        if (block->buffer != nullptr) {
            Family::release(block->buffer);
            block->buffer = nullptr;
        }
        type->tp_free(self);
        Py_DECREF(type); // instances of heap types own a reference to their type
    }
};

// --- What the four types share ----------------------------------------------------------------

PyObject *block_get_size(PyObject *self, void *)
{
    return PyLong_FromSsize_t(as_block(self)->size);
}

PyObject *block_get_buffer(PyObject *self, void *)
{
    return PyLong_FromVoidPtr(as_block(self)->buffer);
}

PyObject *block_repr(PyObject *self)
{
    const BlockObject *block = as_block(self);
    return PyUnicode_FromFormat("<%s size=%zd buffer=%p>", Py_TYPE(self)->tp_name, block->size,
                                block->buffer);
}

PyObject *block_refcnt(PyObject *self, PyObject *)
{
    return PyLong_FromSsize_t(Py_REFCNT(self));
}

// The lowest count inc_refcnt and py_decref leave: the reference the call itself holds (the
// caller's argument), and one for whoever holds the object. Taking it to 1 would free the object
// as the call returns, under the variable the caller still reads it from; to 0, during the call.
constexpr int minimum_refcnt = 2;

PyObject *block_inc_refcnt(PyObject *self, PyObject *arg)
{
    long long delta = 0;
    int overflow = 0;
    if (!parse_delta(arg, &delta, &overflow))
        return nullptr;
    const Py_ssize_t count = Py_REFCNT(self);
    // On overflow `delta` is -1: test `overflow` first.
    if (overflow < 0 || (overflow == 0 && count + delta < minimum_refcnt)) {
        PyErr_Format(PyExc_ValueError,
                     "inc_refcnt(%R) would take the reference count from %zd below %d and free "
                     "the object while it is still referenced",
                     arg, count, minimum_refcnt);
        return nullptr;
    }
    if (overflow > 0 || delta > static_cast<long long>(PY_SSIZE_T_MAX - count)) {
        PyErr_Format(PyExc_OverflowError, "inc_refcnt(%R) would overflow the reference count",
                     arg);
        return nullptr;
    }
    const Py_ssize_t result = count + static_cast<Py_ssize_t>(delta);
    Py_SET_REFCNT(self, result);
    return PyLong_FromSsize_t(result);
}

PyGetSetDef block_getset[] = {
    {"size", block_get_size, nullptr,
     "Bytes allocated: the size asked for, or 1 when 0 was asked for (read-only).", nullptr},
    {"buffer", block_get_buffer, nullptr,
     "Address of the block as an int, as the alloc and free probes report it (read-only); 0\n"
     "before __init__ has run.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMethodDef block_methods[] = {
    {"refcnt", block_refcnt, METH_NOARGS,
     "refcnt($self, /)\n--\n\n"
     "The object's reference count, including the reference held by this call."},
    {"inc_refcnt", block_inc_refcnt, METH_O,
     "inc_refcnt($self, n, /)\n--\n\n"
     "Adds the integer n (which may be negative) to the object's reference count and returns\n"
     "the new count. inc_refcnt(1) leaks the object: it is never freed, not even at exit.\n"
     "ValueError when the count would fall below 2 (this call's reference and the caller's):\n"
     "the object would then be freed while still referenced, at once or as the call returns.\n"
     "OverflowError when the count would overflow, TypeError for a non-integer. Lowering the\n"
     "count below the references really held still frees the object too early: only give\n"
     "back what inc_refcnt or py_incref added."},
    {nullptr, nullptr, 0, nullptr},
};

// One function pointer as a type slot's `void *`.
template <class Function>
void *slot(Function *function)
{
    return reinterpret_cast<void *>(function);
}

template <class Family>
PyType_Slot block_slots[] = {
    {Py_tp_doc, const_cast<char *>(Family::doc)},
    {Py_tp_new, slot(PyType_GenericNew)},
    {Py_tp_init, slot(Block<Family>::init)},
    {Py_tp_dealloc, slot(Block<Family>::dealloc)},
    {Py_tp_repr, slot(block_repr)},
    {Py_tp_getset, block_getset},
    {Py_tp_methods, block_methods},
    {0, nullptr},
};

template <class Family>
PyType_Spec block_spec = {
    Family::spec_name,
    static_cast<int>(sizeof(BlockObject)),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    block_slots<Family>,
};

// Creates the type of `Family`, gives it a `domain` class attribute, adds it to `module`.
template <class Family>
int add_block_type(PyObject *module)
{
    PyObject *type = PyType_FromSpec(&block_spec<Family>);
    if (type == nullptr)
        return -1;
    PyObject *domain = PyLong_FromLong(Family::domain);
    int result = domain == nullptr ? -1 : PyObject_SetAttrString(type, "domain", domain);
    Py_XDECREF(domain);
    if (result == 0)
        result = PyModule_AddObject(module, std::strrchr(Family::spec_name, '.') + 1, type);
    if (result != 0)
        Py_DECREF(type); // PyModule_AddObject steals the reference only on success
    return result;
}

// --- Module functions -------------------------------------------------------------------------

PyObject *py_incref(PyObject *, PyObject *object)
{
    Py_INCREF(object);
    Py_RETURN_NONE;
}

PyObject *py_decref(PyObject *, PyObject *object)
{
    if (Py_REFCNT(object) - 1 < minimum_refcnt) {
        PyErr_Format(PyExc_ValueError,
                     "py_decref() would take the reference count from %zd below %d and free "
                     "the object while it is still referenced",
                     Py_REFCNT(object), minimum_refcnt);
        return nullptr;
    }
    Py_DECREF(object);
    Py_RETURN_NONE;
}

PyObject *py_refcnt_of_object(PyObject *, PyObject *object)
{
    return PyLong_FromSsize_t(Py_REFCNT(object));
}

PyObject *py_refcnt_of_address(PyObject *, PyObject *address_arg)
{
    if (!PyLong_Check(address_arg)) {
        PyErr_Format(PyExc_TypeError, "address must be an int, not %.200s",
                     Py_TYPE(address_arg)->tp_name);
        return nullptr;
    }
    void *address = PyLong_AsVoidPtr(address_arg);
    if (address == nullptr) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "address 0 is not an object");
        else if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "address is outside the address space");
        }
        return nullptr;
    }
    if (reinterpret_cast<uintptr_t>(address) % alignof(PyObject) != 0) {
        PyErr_Format(PyExc_ValueError, "address %p is not aligned as an object", address);
        return nullptr;
    }
    char *field = static_cast<char *>(address) + offsetof(PyObject, ob_refcnt);
    Py_ssize_t count = 0;
#if defined(__linux__)
    // Read through the kernel: an unmapped address is EFAULT, not a crash.
    struct iovec local = {&count, sizeof count};
    struct iovec remote = {field, sizeof count};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(sizeof count)) {
        if (errno == EFAULT)
            PyErr_Format(PyExc_ValueError, "no readable memory at address %p", address);
        else
            PyErr_SetFromErrno(PyExc_OSError);
        return nullptr;
    }
#else
    std::memcpy(&count, field, sizeof count);
#endif
    return PyLong_FromSsize_t(count);
}

PyObject *py_bytes_of_size(PyObject *, PyObject *size_arg)
{
    Py_ssize_t size = 0;
    if (!parse_size(size_arg, &size))
        return nullptr;
    if (size > PY_SSIZE_T_MAX - static_cast<Py_ssize_t>(sizeof(PyBytesObject))) {
        PyErr_SetString(PyExc_MemoryError, "size is larger than any bytes object can be");
        return nullptr;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(nullptr, size);
    if (bytes != nullptr)
        std::memset(PyBytes_AS_STRING(bytes), 0, static_cast<size_t>(size));
    return bytes;
}

PyMethodDef module_functions[] = {
    {"py_incref", py_incref, METH_O,
     "py_incref($module, obj, /)\n--\n\n"
     "Adds one to obj's reference count (Py_INCREF) and returns None. Without a matching\n"
     "py_decref the object is leaked: it is never freed."},
    {"py_decref", py_decref, METH_O,
     "py_decref($module, obj, /)\n--\n\n"
     "Takes one from obj's reference count (Py_DECREF) and returns None: undoes a py_incref.\n"
     "ValueError when the count would fall below 2 (this call's reference and the caller's),\n"
     "since obj would then be freed while still referenced.\n"
     "Taking away a reference that something else still holds frees obj too early."},
    {"py_refcnt_of_object", py_refcnt_of_object, METH_O,
     "py_refcnt_of_object($module, obj, /)\n--\n\n"
     "obj's reference count, including the reference held by this call."},
    {"py_refcnt_of_address", py_refcnt_of_address, METH_O,
     "py_refcnt_of_address($module, address, /)\n--\n\n"
     "The reference count stored at `address`, read as the start of a Python object (the\n"
     "address of an object is id(obj) in CPython). The memory is read through the kernel, so\n"
     "an unmapped address raises ValueError instead of crashing, as do 0 and a misaligned\n"
     "address; TypeError when address is not an int. Memory that is mapped but holds no live\n"
     "object gives a meaningless number."},
    {"py_bytes_of_size", py_bytes_of_size, METH_O,
     "py_bytes_of_size($module, size, /)\n--\n\n"
     "A bytes object of `size` zero bytes, made by CPython itself (its object allocator, not\n"
     "pymemtrace's wrappers). Size errors as for CMalloc: ValueError when negative,\n"
     "MemoryError when impossibly large, TypeError for a non-integer."},
    {nullptr, nullptr, 0, nullptr},
};

int module_exec(PyObject *module)
{
    if (add_block_type<CHeap>(module) != 0 || add_block_type<PyMemRaw>(module) != 0
        || add_block_type<PyMem>(module) != 0 || add_block_type<PyObjectMem>(module) != 0)
        return -1;
    return 0;
}

PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, slot(module_exec)},
    {0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pymemtrace.cMemLeak",
    "Objects owning one block of memory from a chosen allocator: CMalloc (C heap),\n"
    "PyRawMalloc (PyMem_Raw*), PyMalloc (PyMem_*), PyObjectMalloc (PyObject_*). Each block is\n"
    "allocated and freed through pymemtrace's wrappers, so the pymemtrace:alloc and\n"
    "pymemtrace:free probes report it (pointer == .buffer, size == .size, domain == .domain).\n"
    "Also reference count helpers, for making and studying leaks.",
    0,
    module_functions,
    module_slots,
    nullptr,
    nullptr,
    nullptr,
};

} // namespace

PyMODINIT_FUNC PyInit_cMemLeak(void)
{
    return PyModuleDef_Init(&module_def);
}
