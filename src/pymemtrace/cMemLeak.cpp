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
// One file (about 750 lines) on purpose: an extension module's types, its reference ledger and its
// module state are one unit that CPython loads from one object; split, each part would need the
// others' internals in a header.
// Everything runs with the GIL held, which is what makes the types safe to share between threads.
//
// Nothing a Python caller passes may crash the interpreter or corrupt its memory (issue 9): the
// reference count helpers move counts only by references that cMemLeak itself added and holds
// (see "The reference ledger"), and the four types are immutable (see add_block_type).
#include <pymemtrace/python.h> // Python.h, pymemtrace_*malloc/free

#include <cstdint>       // int64_t, uintptr_t, UINTPTR_MAX
#include <cstring>       // std::memset, std::strrchr
#include <new>           // std::bad_alloc, std::nothrow
#include <unordered_map> // the ledger

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

// --- The reference ledger ---------------------------------------------------------------------
//
// Design (issue 9). The helpers that lower a reference count (py_decref, inc_refcnt(n < 0)) give
// back only references that the helpers which raise one (py_incref, inc_refcnt(n > 0)) added
// earlier: the ledger records, per object, how many references cMemLeak added and still holds.
// A reference cMemLeak holds is one nobody else holds, so giving it back can never free an
// object that anything else still references, and no count can be taken below the references
// the rest of the interpreter holds, whoever holds them. That makes every object safe, None,
// True, small ints, interned strings and objects held under two names alike, without a list
// of "unsafe" objects (any such list is incomplete: cached ints, the empty tuple, types...).
// The other choice, refusing a decrement that would go "below what the caller holds", cannot
// work: no code can know how many of an object's references its callers hold (the original
// cMemLeak guessed 2, and `a = [1]; b = a; py_decref(a); del b` freed the list under `a`).
//
// An object with references in the ledger is alive (those references keep it so), hence its
// address cannot belong to another object: the ledger is keyed by address, and
// py_refcnt_of_address reads only addresses found in it. The one way memory under a live
// reference is released anyway is the end of a sub-interpreter with its own allocator (3.12+,
// `use_main_obmalloc=False`), which frees whatever its objects still hold; each entry therefore
// records its interpreter's ID (never reused), and an entry of another interpreter is stale: it
// counts as no reference and is overwritten. The ledger is process-wide, guarded by the GIL
// (the module does not declare support for a per-interpreter GIL, so 3.12+ refuses to import it
// in such an interpreter). It is never freed: references it holds are leaked on purpose.
//
// Counts are never taken above max_refcnt, checked before any arithmetic. CPython 3.12+ treats
// higher counts as immortal (2**30 - 1 on 32-bit builds; bit 31 set on 64-bit ones, where
// Py_INCREF moves only the low 32 bits), and an immortal object's count never moves again; an
// immortal object (None, small ints... on 3.12+) has a count above max_refcnt and is refused.
constexpr Py_ssize_t max_refcnt = Py_ssize_t{1} << 29;

struct Held {
    int64_t interpreter; // PyInterpreterState_GetID of the interpreter that added the references
    Py_ssize_t count;    // references added and not yet given back, > 0
};

using Ledger = std::unordered_map<const PyObject *, Held>;

// The ledger, or nullptr (MemoryError set) when it cannot be created.
Ledger *ledger()
{
    static Ledger *const instance = new (std::nothrow) Ledger;
    if (instance == nullptr)
        PyErr_NoMemory();
    return instance;
}

int64_t current_interpreter()
{
#if PY_VERSION_HEX < 0x03090000
    return PyInterpreterState_GetID(PyThreadState_Get()->interp);
#else
    return PyInterpreterState_GetID(PyInterpreterState_Get());
#endif
}

// References to `object` that cMemLeak added and holds (0 when it holds none, or on error).
Py_ssize_t held_references(const PyObject *object)
{
    Ledger *entries = ledger();
    if (entries == nullptr) {
        PyErr_Clear(); // an empty ledger holds nothing
        return 0;
    }
    const auto found = entries->find(object);
    if (found == entries->end() || found->second.interpreter != current_interpreter())
        return 0;
    return found->second.count;
}

// Records `count` (> 0) more references to `object`, which the caller then adds. False with
// MemoryError set when the ledger cannot grow. The caller has checked that the object's count
// stays at most max_refcnt, which bounds the ledger's count too.
bool hold_references(PyObject *object, Py_ssize_t count)
{
    Ledger *entries = ledger();
    if (entries == nullptr)
        return false;
    const int64_t interpreter = current_interpreter();
    try {
        Held &held = (*entries)[object];
        if (held.interpreter != interpreter) // new, or stale: another interpreter's object
            held = Held{interpreter, 0};
        held.count += count;
    } catch (const std::bad_alloc &) {
        PyErr_NoMemory();
        return false;
    }
    return true;
}

// Forgets `count` references to `object`, which the caller then gives back;
// 0 < count <= held_references(object).
void release_references(const PyObject *object, Py_ssize_t count)
{
    Ledger *entries = ledger();
    if (entries == nullptr)
        return;
    const auto found = entries->find(object);
    if (found == entries->end())
        return;
    found->second.count -= count;
    if (found->second.count <= 0)
        entries->erase(found);
}

void set_refcnt(PyObject *object, Py_ssize_t count)
{
#if PY_VERSION_HEX < 0x03090000
    object->ob_refcnt = count; // 3.8 has no Py_SET_REFCNT
#else
    Py_SET_REFCNT(object, count);
#endif
}

// The end of the ValueError of a call that would give back references cMemLeak does not hold.
#define CMEMLEAK_GIVES_BACK_ONLY_ITS_OWN                                                          \
    ": it gives back only references that py_incref or inc_refcnt added, so that no object "   \
    "still referenced elsewhere is freed"

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

// Adds n to the count, through the ledger: n > 0 adds references that cMemLeak then holds,
// n < 0 gives back ones it holds. The checks come before any arithmetic and before any change.
PyObject *block_inc_refcnt(PyObject *self, PyObject *arg)
{
    long long delta = 0;
    int overflow = 0;
    if (!parse_delta(arg, &delta, &overflow)) // may run Python code (__index__): read the
        return nullptr;                       // counts only after it
    const Py_ssize_t count = Py_REFCNT(self);
    const Py_ssize_t held = held_references(self);
    // On overflow `delta` is -1: test `overflow` first. count <= max_refcnt makes
    // max_refcnt - count exact.
    if (overflow > 0 || count > max_refcnt || delta > max_refcnt - count) {
        PyErr_Format(PyExc_OverflowError,
                     "inc_refcnt(%R) would take the reference count from %zd above %zd, the "
                     "most cMemLeak sets",
                     arg, count, max_refcnt);
        return nullptr;
    }
    // -held cannot overflow (held >= 0); delta may be LLONG_MIN, so compare, never negate it.
    if (overflow < 0 || delta < -static_cast<long long>(held)) {
        PyErr_Format(PyExc_ValueError,
                     "inc_refcnt(%R) would give back more references to this %.200s object "
                     "than the %zd that cMemLeak holds" CMEMLEAK_GIVES_BACK_ONLY_ITS_OWN,
                     arg, Py_TYPE(self)->tp_name, held);
        return nullptr;
    }
    if (delta > 0 && !hold_references(self, static_cast<Py_ssize_t>(delta)))
        return nullptr;
    if (delta < 0)
        release_references(self, static_cast<Py_ssize_t>(-delta));
    // Never 0: the references given back were held by the ledger, and this call's caller holds
    // `self` as well. At 1 the object is freed, correctly, when the caller lets go of it.
    const Py_ssize_t result = count + static_cast<Py_ssize_t>(delta);
    set_refcnt(self, result);
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
     "Adds the integer n to the object's reference count and returns the new count.\n"
     "n > 0 adds n references that cMemLeak holds: inc_refcnt(1) leaks the object, which is\n"
     "then never freed, not even at exit, unless the reference is given back. n < 0 gives\n"
     "back references that inc_refcnt or py_incref added; ValueError when cMemLeak holds\n"
     "fewer than -n, since taking away references that others hold would free the object\n"
     "while still referenced. OverflowError when the count would exceed 2**29 (checked\n"
     "before any arithmetic), TypeError for a non-integer."},
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

// The four types are immutable: none of their attributes can be set or deleted, so that
// `CMalloc.domain` cannot be rebound and then misreport the domain the probes carry (issue 9),
// nor a method be replaced. 3.10+ has immutable heap types (Py_TPFLAGS_IMMUTABLETYPE, which also
// refuses `__class__` assignment to and from them). 3.8 and 3.9 have none: there the four types
// get a metaclass (see below). Subclasses made in Python are mutable, as any Python class.
#if defined(Py_TPFLAGS_IMMUTABLETYPE)
constexpr unsigned long immutable_type_flag = Py_TPFLAGS_IMMUTABLETYPE;
#else
constexpr unsigned long immutable_type_flag = 0;
#endif

template <class Family>
PyType_Spec block_spec = {
    Family::spec_name,
    static_cast<int>(sizeof(BlockObject)),
    0,
    static_cast<unsigned int>(Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | immutable_type_flag),
    block_slots<Family>,
};

#if PY_VERSION_HEX < 0x030A0000
// 3.8 and 3.9: the metaclass `pymemtrace.cMemLeak.BlockType`, a subclass of `type`. Its
// __setattr__ and __delattr__ refuse the four types themselves (as 3.10+ does, with the same
// TypeError); `type.__setattr__(CMalloc, ...)`, which would skip them, is refused by CPython
// itself (no call may jump over a C-level __setattr__). Its read-only `domain` descriptor
// answers `T.domain` for the four types and their subclasses from the family of the type,
// before any class dict is consulted, and refuses to be set even if that check were absent.
// The types are created by PyType_FromSpec, which takes no metaclass before 3.12, and then
// given this one: it has type's layout, so the type objects are valid instances of it.

// The domain of a block type or of a subclass of one; -1 for any other type.
int block_domain(const PyTypeObject *type)
{
    for (; type != nullptr; type = type->tp_base) {
        const destructor dealloc = type->tp_dealloc;
        if (dealloc == Block<CHeap>::dealloc)
            return CHeap::domain;
        if (dealloc == Block<PyMemRaw>::dealloc)
            return PyMemRaw::domain;
        if (dealloc == Block<PyMem>::dealloc)
            return PyMem::domain;
        if (dealloc == Block<PyObjectMem>::dealloc)
            return PyObjectMem::domain;
    }
    return -1;
}

// One of the four types themselves (their subclasses' tp_dealloc is CPython's subtype_dealloc).
bool is_block_type(PyObject *type)
{
    const destructor dealloc = reinterpret_cast<PyTypeObject *>(type)->tp_dealloc;
    return dealloc == Block<CHeap>::dealloc || dealloc == Block<PyMemRaw>::dealloc
        || dealloc == Block<PyMem>::dealloc || dealloc == Block<PyObjectMem>::dealloc;
}

int block_type_setattro(PyObject *type, PyObject *name, PyObject *value)
{
    if (is_block_type(type)) {
        PyErr_Format(PyExc_TypeError, "cannot %s %R attribute of immutable type '%s'",
                     value == nullptr ? "delete" : "set", name,
                     reinterpret_cast<PyTypeObject *>(type)->tp_name);
        return -1;
    }
    return PyType_Type.tp_setattro(type, name, value);
}

PyObject *block_type_get_domain(PyObject *type, void *)
{
    const int domain = block_domain(reinterpret_cast<PyTypeObject *>(type));
    if (domain < 0) {
        PyErr_SetString(PyExc_AttributeError, "domain");
        return nullptr;
    }
    return PyLong_FromLong(domain);
}

PyGetSetDef block_type_getset[] = {
    {"domain", block_type_get_domain, nullptr,
     "The pymemtrace domain of the blocks of this type (read-only).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot block_type_slots[] = {
    {Py_tp_setattro, slot(block_type_setattro)},
    {Py_tp_getset, block_type_getset},
    {0, nullptr},
};

// basicsize and itemsize are type's, set before use: a metaclass adds no field.
PyType_Spec block_type_spec = {
    "pymemtrace.cMemLeak.BlockType", 0, 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    block_type_slots,
};

// A new reference to the metaclass, or nullptr with the exception set.
PyObject *make_block_metatype()
{
    block_type_spec.basicsize = static_cast<int>(PyType_Type.tp_basicsize);
    block_type_spec.itemsize = static_cast<int>(PyType_Type.tp_itemsize);
    PyObject *bases = PyTuple_Pack(1, reinterpret_cast<PyObject *>(&PyType_Type));
    if (bases == nullptr)
        return nullptr;
    PyObject *metatype = PyType_FromSpecWithBases(&block_type_spec, bases);
    Py_DECREF(bases);
    return metatype;
}
#endif

// Creates the type of `Family`, gives it a `domain` class attribute, adds it to `module`.
// `metatype` is the metaclass on 3.8 and 3.9, unused (nullptr) on 3.10+.
template <class Family>
int add_block_type(PyObject *module, PyObject *metatype)
{
    PyObject *type = PyType_FromSpec(&block_spec<Family>);
    if (type == nullptr)
        return -1;
#if PY_VERSION_HEX < 0x030A0000
    // The type is still private to this function: nothing has looked it up or cached it. Its
    // old metatype, `type`, is static and was not counted; the new one is.
    Py_INCREF(metatype);
    type->ob_type = reinterpret_cast<PyTypeObject *>(metatype);
#else
    (void)metatype;
#endif
    // Into the type's dict directly: the type refuses attribute assignment from the start.
    PyObject *domain = PyLong_FromLong(Family::domain);
    int result = domain == nullptr
        ? -1
        : PyDict_SetItemString(reinterpret_cast<PyTypeObject *>(type)->tp_dict, "domain", domain);
    Py_XDECREF(domain);
    if (result == 0) {
        PyType_Modified(reinterpret_cast<PyTypeObject *>(type));
        result = PyModule_AddObject(module, std::strrchr(Family::spec_name, '.') + 1, type);
    }
    if (result != 0)
        Py_DECREF(type); // PyModule_AddObject steals the reference only on success
    return result;
}

// --- Module functions -------------------------------------------------------------------------

PyObject *py_incref(PyObject *, PyObject *object)
{
    const Py_ssize_t count = Py_REFCNT(object);
    if (count >= max_refcnt) {
        PyErr_Format(PyExc_OverflowError,
                     "py_incref would take the reference count of this %.200s object from %zd "
                     "above %zd, the most cMemLeak sets (an immortal object of CPython 3.12+, "
                     "whose count never moves, has a higher one)",
                     Py_TYPE(object)->tp_name, count, max_refcnt);
        return nullptr;
    }
    if (!hold_references(object, 1))
        return nullptr;
    Py_INCREF(object);
    Py_RETURN_NONE;
}

PyObject *py_decref(PyObject *, PyObject *object)
{
    const Py_ssize_t held = held_references(object);
    if (held < 1) {
        PyErr_Format(PyExc_ValueError,
                     "py_decref() would give back a reference to this %.200s object, but "
                     "cMemLeak holds none" CMEMLEAK_GIVES_BACK_ONLY_ITS_OWN,
                     Py_TYPE(object)->tp_name);
        return nullptr;
    }
    release_references(object, 1);
    // The caller holds `object` too: this never frees it; the caller's last reference may.
    Py_DECREF(object);
    Py_RETURN_NONE;
}

PyObject *py_refcnt_of_object(PyObject *, PyObject *object)
{
    return PyLong_FromSsize_t(Py_REFCNT(object));
}

// Reads only objects that the ledger keeps alive: the address is looked up, never dereferenced
// first, so that no address, mapped or not, object or not, is read unless it is a live object.
PyObject *py_refcnt_of_address(PyObject *, PyObject *address_arg)
{
    if (!PyLong_Check(address_arg)) {
        PyErr_Format(PyExc_TypeError, "address must be an int, not %.200s",
                     Py_TYPE(address_arg)->tp_name);
        return nullptr;
    }
    const unsigned long long value = PyLong_AsUnsignedLongLong(address_arg);
    if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) { // negative or too large
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "address is outside the address space");
        }
        return nullptr;
    }
    if (value > UINTPTR_MAX) {
        PyErr_SetString(PyExc_ValueError, "address is outside the address space");
        return nullptr;
    }
    const PyObject *object = reinterpret_cast<const PyObject *>(static_cast<uintptr_t>(value));
    if (object == nullptr) {
        PyErr_SetString(PyExc_ValueError, "address 0 is not an object");
        return nullptr;
    }
    if (held_references(object) < 1) {
        PyErr_Format(PyExc_ValueError,
                     "cMemLeak holds no reference to an object at address %p: it reads only "
                     "objects that py_incref or inc_refcnt keep alive (other memory may hold "
                     "no object, or data); py_refcnt_of_object(obj) reads any object",
                     static_cast<const void *>(object));
        return nullptr;
    }
    return PyLong_FromSsize_t(Py_REFCNT(object));
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
     "Adds a reference to obj (Py_INCREF) that cMemLeak holds, and returns None. Unless\n"
     "py_decref gives it back, obj is leaked: never freed, not even at exit. OverflowError\n"
     "when obj's count is 2**29 or more: cMemLeak never sets a higher count, and on CPython\n"
     "3.12+ immortal objects (None, small ints, ...) have one."},
    {"py_decref", py_decref, METH_O,
     "py_decref($module, obj, /)\n--\n\n"
     "Gives back one reference to obj that py_incref or inc_refcnt added (Py_DECREF) and\n"
     "returns None. ValueError when cMemLeak holds none: taking away a reference that\n"
     "something else holds would free obj while still in use, or, for None and other\n"
     "singletons, abort the interpreter."},
    {"py_refcnt_of_object", py_refcnt_of_object, METH_O,
     "py_refcnt_of_object($module, obj, /)\n--\n\n"
     "obj's reference count, including the reference held by this call."},
    {"py_refcnt_of_address", py_refcnt_of_address, METH_O,
     "py_refcnt_of_address($module, address, /)\n--\n\n"
     "The reference count of the object at `address` (id(obj) in CPython), provided cMemLeak\n"
     "holds a reference to it (py_incref, inc_refcnt): such an object is alive, even with no\n"
     "name left, which is what makes reading it safe. Any other address raises ValueError,\n"
     "and memory there is never read: it may hold no object, or another object's data.\n"
     "TypeError when address is not an int."},
    {"py_bytes_of_size", py_bytes_of_size, METH_O,
     "py_bytes_of_size($module, size, /)\n--\n\n"
     "A bytes object of `size` zero bytes, made by CPython itself (its object allocator, not\n"
     "pymemtrace's wrappers). Size errors as for CMalloc: ValueError when negative,\n"
     "MemoryError when impossibly large, TypeError for a non-integer."},
    {nullptr, nullptr, 0, nullptr},
};

int module_exec(PyObject *module)
{
    PyObject *metatype = nullptr;
#if PY_VERSION_HEX < 0x030A0000
    metatype = make_block_metatype();
    if (metatype == nullptr)
        return -1;
#endif
    int result = 0;
    if (add_block_type<CHeap>(module, metatype) != 0
        || add_block_type<PyMemRaw>(module, metatype) != 0
        || add_block_type<PyMem>(module, metatype) != 0
        || add_block_type<PyObjectMem>(module, metatype) != 0)
        result = -1;
    Py_XDECREF(metatype); // each type holds its own reference
    return result;
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
    "The four types are immutable: `domain` and their other attributes cannot be rebound.\n"
    "\n"
    "Also reference count helpers, for making and studying leaks, which no argument can make\n"
    "crash the interpreter, free an object still in use or read memory that holds no object:\n"
    "cMemLeak keeps a ledger of the references it added (py_incref, inc_refcnt(n > 0)) and\n"
    "gives back (py_decref, inc_refcnt(n < 0)) only those; counts never go above 2**29.\n"
    "\n"
    "Changes against the original pymemtrace cMemLeak, whose names are kept:\n"
    "- py_decref, and inc_refcnt with n < 0, give back only references that py_incref or\n"
    "  inc_refcnt added, else ValueError. The original decremented any count: py_decref(None)\n"
    "  in a loop aborted the interpreter (none_dealloc), and an object held under two names\n"
    "  was freed while one still referred to it.\n"
    "- py_refcnt_of_address(address) reads only objects that cMemLeak holds a reference to,\n"
    "  else ValueError. The original read the 8 bytes at any address (another object's data,\n"
    "  code, the vdso): use py_refcnt_of_object(obj) for any object.\n"
    "- inc_refcnt and py_incref raise OverflowError, checked before any arithmetic, when the\n"
    "  count would exceed 2**29 (the original overflowed first and then misreported).\n"
    "- CMalloc.domain and the other attributes of the four types are read-only (TypeError).",
    0,
    module_functions,
    module_slots,
    nullptr,
    nullptr,
    nullptr,
};

} // namespace

#if PY_VERSION_HEX < 0x03090000 && defined(__GNUC__)
// 3.8's PyMODINIT_FUNC does not export the function: under -fvisibility=hidden (meson's default
// for extension modules) Python would not find it.
extern "C" __attribute__((visibility("default"))) PyObject *PyInit_cMemLeak(void);
#endif

PyMODINIT_FUNC PyInit_cMemLeak(void)
{
    return PyModuleDef_Init(&module_def);
}
