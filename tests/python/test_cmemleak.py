# SPDX-License-Identifier: MIT
"""cMemLeak: its four block types and its reference count functions, bad inputs included.
(One module for the one extension: about 600 lines, mostly one parametrized class per type.)

Nothing a caller passes may crash the interpreter or corrupt its memory (issue 9): the reference
count helpers give back only references that cMemLeak added and holds, read the count only of
objects they keep alive, never take a count above MAX_REFCNT, and the four types are immutable.
Whatever crashed or aborted the interpreter before runs in a subprocess, so that a regression
fails its test instead of killing the test runner.
"""
import gc
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import pytest

from pymemtrace import cMemLeak

BLOCK_TYPES = [cMemLeak.CMalloc, cMemLeak.PyRawMalloc, cMemLeak.PyMalloc, cMemLeak.PyObjectMalloc]
DOMAINS = {"CMalloc": 0, "PyRawMalloc": 1, "PyMalloc": 2, "PyObjectMalloc": 3}
# Allocators that tracemalloc sees (Python's three domains; not the C heap).
PYTHON_DOMAIN_TYPES = [cMemLeak.PyRawMalloc, cMemLeak.PyMalloc, cMemLeak.PyObjectMalloc]

# Sizes that no allocator can serve: MemoryError, never a crash.
IMPOSSIBLE_SIZES = [2**62, 2**63 - 1, 2**63, 2**64, 2**100]
NEGATIVE_SIZES = [-1, -2**63, -2**64, -2**100]
NON_INTEGERS = [1.0, 1.5, "8", b"8", None, [8], object()]
# The highest reference count cMemLeak sets (higher ones are immortal on CPython 3.12+).
MAX_REFCNT = 2**29
# What the refusal to give back a reference that cMemLeak does not hold says.
NOT_HELD = "gives back only references that py_incref or inc_refcnt added"


def names(types):
    return [t.__name__ for t in types]


class Index:
    """Not an int, but an integer all the same (it has __index__)."""

    def __index__(self):
        return 40


# --- The block types --------------------------------------------------------------------------

@pytest.mark.parametrize("block_type", BLOCK_TYPES, ids=names(BLOCK_TYPES))
class TestBlockTypes:
    def test_size_positional_and_keyword(self, block_type):
        assert block_type(1477).size == 1477
        assert block_type(size=128).size == 128

    def test_accepts_any_integer_with_index(self, block_type):
        assert block_type(Index()).size == 40
        assert block_type(True).size == 1

    def test_buffer_is_a_nonzero_address_distinct_for_live_blocks(self, block_type):
        blocks = [block_type(64) for _ in range(16)]
        buffers = {block.buffer for block in blocks}
        assert len(buffers) == 16
        assert all(isinstance(b, int) and b > 0 for b in buffers)

    def test_size_zero_allocates_one_byte_and_reports_it(self, block_type):
        blocks = [block_type(0) for _ in range(4)]
        assert all(block.size == 1 for block in blocks)
        assert len({block.buffer for block in blocks}) == 4

    def test_size_and_buffer_are_read_only(self, block_type):
        block = block_type(8)
        with pytest.raises(AttributeError):
            block.size = 9
        with pytest.raises(AttributeError):
            block.buffer = 0
        with pytest.raises(AttributeError):
            del block.size

    def test_domain_class_attribute(self, block_type):
        assert block_type.domain == DOMAINS[block_type.__name__]

    def test_module_and_qualified_name(self, block_type):
        assert block_type.__module__ == "pymemtrace.cMemLeak"
        assert repr(block_type(8)).startswith(f"<pymemtrace.cMemLeak.{block_type.__name__} size=8 buffer=0x")

    def test_docstring_and_signature(self, block_type):
        import inspect
        assert "size" in block_type.__doc__
        assert str(inspect.signature(block_type)) == "(size)"

    def test_missing_or_extra_arguments_raise_type_error(self, block_type):
        with pytest.raises(TypeError):
            block_type()
        with pytest.raises(TypeError):
            block_type(1, 2)
        with pytest.raises(TypeError):
            block_type(bytes=1)

    @pytest.mark.parametrize("size", NEGATIVE_SIZES)
    def test_negative_size_raises_value_error(self, block_type, size):
        with pytest.raises(ValueError, match="negative"):
            block_type(size)

    @pytest.mark.parametrize("size", IMPOSSIBLE_SIZES)
    def test_impossible_size_raises_memory_error(self, block_type, size):
        with pytest.raises(MemoryError):
            block_type(size)

    @pytest.mark.parametrize("size", NON_INTEGERS, ids=repr)
    def test_non_integer_size_raises_type_error(self, block_type, size):
        with pytest.raises(TypeError):
            block_type(size)

    def test_second_init_replaces_the_block(self, block_type):
        block = block_type(100)
        block.__init__(200)
        assert block.size == 200
        block.__init__(size=0)
        assert block.size == 1

    def test_failed_second_init_keeps_the_first_block(self, block_type):
        block = block_type(100)
        buffer = block.buffer
        for bad, error in [(-1, ValueError), (2**62, MemoryError), ("x", TypeError)]:
            with pytest.raises(error):
                block.__init__(bad)
            assert (block.size, block.buffer) == (100, buffer)

    def test_uninitialised_object_has_no_block(self, block_type):
        block = block_type.__new__(block_type)
        assert (block.size, block.buffer) == (0, 0)
        del block  # frees nothing

    def test_refcnt_counts_references(self, block_type):
        block = block_type(8)
        before = block.refcnt()
        others = [block, block]
        assert block.refcnt() == before + 2
        del others
        assert block.refcnt() == before

    def test_inc_refcnt_returns_the_new_count_and_can_be_undone(self, block_type):
        block = block_type(8)
        before = block.refcnt()
        assert block.inc_refcnt(3) == before + 3
        assert block.refcnt() == before + 3
        assert block.inc_refcnt(-3) == before
        assert block.inc_refcnt(0) == before

    @pytest.mark.parametrize("n", [-1, "to one", "to zero", -1000, -2**63, -2**64, -2**100])
    def test_inc_refcnt_refuses_to_free_the_object(self, block_type, n):
        block = block_type(8)
        before = block.refcnt()  # this call's reference and `block`
        n = {"to one": 1 - before, "to zero": -before}.get(n, n)
        with pytest.raises(ValueError, match=NOT_HELD):
            block.inc_refcnt(n)
        assert block.refcnt() == before
        assert block.size == 8  # still alive and well

    def test_inc_refcnt_refuses_to_free_a_temporary(self, block_type):
        with pytest.raises(ValueError):
            block_type(8).inc_refcnt(-1)

    @pytest.mark.parametrize("n", [2**63, 2**64, 2**100])
    def test_inc_refcnt_refuses_to_overflow(self, block_type, n):
        block = block_type(8)
        with pytest.raises(OverflowError):
            block.inc_refcnt(n)

    @pytest.mark.parametrize("n", [1.0, "1", None])
    def test_inc_refcnt_non_integer_raises_type_error(self, block_type, n):
        with pytest.raises(TypeError):
            block_type(8).inc_refcnt(n)

    # Issue 9: inc_refcnt(2**63 - 1) added first (a signed overflow) and then refused with a
    # ValueError about the count going below 2; counts near 2**31 make objects immortal on 3.12+.
    @pytest.mark.parametrize("n", [2**63 - 1, 2**63 - 2, 2**62, 2**32, 2**31, MAX_REFCNT])
    def test_inc_refcnt_checks_overflow_before_adding(self, block_type, n):
        block = block_type(8)
        before = block.refcnt()
        with pytest.raises(OverflowError, match="above"):
            block.inc_refcnt(n)
        assert block.refcnt() == before
        with pytest.raises(ValueError, match=NOT_HELD):
            block.inc_refcnt(-1)  # and nothing was recorded as held

    def test_inc_refcnt_up_to_the_limit_and_back(self, block_type):
        block = block_type(8)
        before = block.refcnt()
        assert block.inc_refcnt(MAX_REFCNT - before) == MAX_REFCNT
        with pytest.raises(OverflowError, match="above"):
            block.inc_refcnt(1)
        with pytest.raises(OverflowError, match="above"):
            cMemLeak.py_incref(block)
        assert block.inc_refcnt(before - MAX_REFCNT) == before
        with pytest.raises(ValueError, match=NOT_HELD):
            block.inc_refcnt(-1)

    def test_references_added_by_either_helper_are_given_back_by_either(self, block_type):
        block = block_type(8)
        before = block.refcnt()
        block.inc_refcnt(2)
        cMemLeak.py_incref(block)
        cMemLeak.py_decref(block)
        cMemLeak.py_decref(block)
        assert block.inc_refcnt(-1) == before
        with pytest.raises(ValueError, match=NOT_HELD):
            cMemLeak.py_decref(block)
        with pytest.raises(ValueError, match=NOT_HELD):
            block.inc_refcnt(-1)
        assert block.refcnt() == before

    # Issue 9: `CMalloc.domain = 5` was accepted, and the type then misreported the domain its
    # probes carry. No attribute of the four types can be set or deleted, not even through
    # type.__setattr__. Tried in a subprocess: a regression must not change the types that the
    # other tests use (a deleted __new__ cannot be put back as it was).
    def test_type_attributes_cannot_be_set_or_deleted(self, block_type):
        result = run_python(f"""
            from pymemtrace import cMemLeak
            T = cMemLeak.{block_type.__name__}
            for name in ["domain", "refcnt", "inc_refcnt", "size", "buffer", "__init__",
                         "__new__", "__repr__", "__doc__", "new"]:
                for how, change in [("set", lambda: setattr(T, name, 7)),
                                    ("type.__setattr__", lambda: type.__setattr__(T, name, 7)),
                                    ("del", lambda: delattr(T, name)),
                                    ("type.__delattr__", lambda: type.__delattr__(T, name))]:
                    try:
                        change()
                    except (TypeError, AttributeError):
                        continue
                    print(how, name)
            print("domain", T.domain, "size", T(8).size)
        """)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"domain {DOMAINS[block_type.__name__]} size 8"]

    def test_domain_of_an_instance_is_read_only(self, block_type):
        block = block_type(8)
        with pytest.raises(AttributeError):
            block.domain = 7
        with pytest.raises(AttributeError):
            del block.domain
        assert block.domain == DOMAINS[block_type.__name__]

    def test_a_block_keeps_its_type_and_its_allocator(self, block_type):
        """Freeing a block with another family's allocator would corrupt the heap."""
        block = block_type(8)
        others = [t for t in BLOCK_TYPES if t is not block_type]
        subclasses = [type("Other", (t,), {"__slots__": ()}) for t in others]
        for other in others + subclasses + [object]:
            with pytest.raises(TypeError):
                block.__class__ = other
        for other in others:
            with pytest.raises(TypeError):
                other.__init__(block, 8)
            with pytest.raises(TypeError):
                type("Both", (block_type, other), {})
        assert type(block) is block_type and block.size == 8

    def test_subclass(self, block_type):
        class Labelled(block_type):
            def __init__(self, size, label):
                super().__init__(size)
                self.label = label

        block = Labelled(77, "here")
        assert (block.size, block.label) == (77, "here")
        assert block.buffer > 0
        assert isinstance(block, block_type)
        assert Labelled.domain == block_type.domain
        del block
        gc.collect()

    def test_subclass_with_slots_and_cycle_is_collected(self, block_type):
        class Node(block_type):
            pass

        a, b = Node(10), Node(20)
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2

    def test_threads_create_share_and_reinit(self, block_type):
        shared = block_type(10)
        errors = []

        def work(seed):
            try:
                for i in range(2000):
                    block = block_type((seed * 131 + i) % 3000)
                    assert block.buffer
                    shared.__init__(i % 700)
                    assert shared.buffer
                    del block
            except Exception as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert shared.buffer


@pytest.mark.parametrize("block_type", PYTHON_DOMAIN_TYPES, ids=names(PYTHON_DOMAIN_TYPES))
def test_release_is_seen_by_tracemalloc(block_type):
    """Deleting a block and re-initialising one both give the memory back."""
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        block = block_type(1_000_000)
        assert tracemalloc.get_traced_memory()[0] - baseline >= 1_000_000
        block.__init__(2_000_000)  # frees the first megabyte
        assert 2_000_000 <= tracemalloc.get_traced_memory()[0] - baseline < 2_500_000
        del block
        assert tracemalloc.get_traced_memory()[0] - baseline < 100_000
    finally:
        tracemalloc.stop()


# --- Module functions -------------------------------------------------------------------------

def test_module_functions_have_docstrings():
    for name in ["py_incref", "py_decref", "py_refcnt_of_object", "py_refcnt_of_address",
                 "py_bytes_of_size"]:
        assert len(getattr(cMemLeak, name).__doc__) > 40, name
    for block_type in BLOCK_TYPES:
        assert block_type.refcnt.__doc__ and block_type.inc_refcnt.__doc__


def test_py_incref_and_py_decref_move_the_count_by_one():
    obj = cMemLeak.CMalloc(8)
    before = cMemLeak.py_refcnt_of_object(obj)
    assert cMemLeak.py_incref(obj) is None
    assert cMemLeak.py_refcnt_of_object(obj) == before + 1
    assert cMemLeak.py_decref(obj) is None
    assert cMemLeak.py_refcnt_of_object(obj) == before


def test_py_decref_refuses_to_free_an_object_in_use():
    with pytest.raises(ValueError, match=NOT_HELD):
        cMemLeak.py_decref(cMemLeak.CMalloc(8))  # the call holds the only reference
    obj = cMemLeak.CMalloc(8)
    before = cMemLeak.py_refcnt_of_object(obj)
    with pytest.raises(ValueError, match=NOT_HELD):
        cMemLeak.py_decref(obj)  # `obj` and the call: it would be freed under `obj`
    assert cMemLeak.py_refcnt_of_object(obj) == before


def test_py_refcnt_of_object_counts_references():
    obj = object()
    before = cMemLeak.py_refcnt_of_object(obj)
    holders = [obj] * 5
    assert cMemLeak.py_refcnt_of_object(obj) == before + 5
    del holders


def test_py_refcnt_of_address_reads_the_count_of_an_object_cmemleak_holds():
    obj = cMemLeak.CMalloc(8)
    cMemLeak.py_incref(obj)
    before = cMemLeak.py_refcnt_of_address(id(obj))
    assert before == cMemLeak.py_refcnt_of_object(obj) - 1  # which counts its argument
    holders = [obj] * 3
    assert cMemLeak.py_refcnt_of_address(id(obj)) == before + 3
    del holders
    assert cMemLeak.py_refcnt_of_address(id(obj)) == before
    cMemLeak.py_decref(obj)
    with pytest.raises(ValueError, match="holds no reference"):
        cMemLeak.py_refcnt_of_address(id(obj))  # alive, but not kept so by cMemLeak


@pytest.mark.parametrize("address", [0, 1, 7, 8, 4096, 2**47 + 8, -8, 2**64 - 8, 2**64, 2**100])
def test_py_refcnt_of_address_rejects_bad_addresses(address):
    with pytest.raises(ValueError):
        cMemLeak.py_refcnt_of_address(address)


@pytest.mark.parametrize("address", [1.0, "0x1000", None, object()], ids=repr)
def test_py_refcnt_of_address_non_integer_raises_type_error(address):
    with pytest.raises(TypeError):
        cMemLeak.py_refcnt_of_address(address)


@pytest.mark.parametrize("size", [0, 1, 27, 1000, 100_000])
def test_py_bytes_of_size_gives_zeroed_bytes(size):
    data = cMemLeak.py_bytes_of_size(size)
    assert type(data) is bytes
    assert data == bytes(size)


@pytest.mark.parametrize("size,error", [(-1, ValueError), (-2**100, ValueError),
                                        (2**62, MemoryError), (2**63 - 1, MemoryError),
                                        (2**63, MemoryError), (2**100, MemoryError),
                                        (1.0, TypeError), ("1", TypeError), (None, TypeError)])
def test_py_bytes_of_size_bad_sizes(size, error):
    with pytest.raises(error):
        cMemLeak.py_bytes_of_size(size)


@pytest.mark.parametrize("function", ["py_incref", "py_decref", "py_refcnt_of_object",
                                      "py_refcnt_of_address", "py_bytes_of_size"])
def test_module_functions_take_exactly_one_argument(function):
    with pytest.raises(TypeError):
        getattr(cMemLeak, function)()
    with pytest.raises(TypeError):
        getattr(cMemLeak, function)(1, 2)


# --- Issue 9: what aborted, freed too early or read any memory ---------------------------------

def run_python(script):
    """Runs `script` in a new interpreter in development mode, where freed memory is poisoned so
    that a use after free shows; returns the completed process."""
    return subprocess.run([sys.executable, "-X", "dev", "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=120)


# Objects shared by the whole interpreter: singletons, cached small ints, interned strings, the
# empty tuple and bytes, a type, a module.
SHARED = "None, True, False, 0, 1, -5, 256, '', 'py_decref', (), b'', Ellipsis, int, sys"


def test_py_decref_of_none_in_a_loop_is_refused_and_the_interpreter_survives():
    """py_decref(None) took away references that others held: the loop ended in
    'Fatal Python error: none_dealloc' (an abort). The same for every shared object."""
    result = run_python(f"""
        import sys
        from pymemtrace import cMemLeak
        refused = 0
        for _ in range(100_000):
            try:
                cMemLeak.py_decref(None)
            except ValueError:
                refused += 1
        for obj in ({SHARED}):
            count = sys.getrefcount(obj)
            for _ in range(1000):
                try:
                    cMemLeak.py_decref(obj)
                except ValueError:
                    refused += 1
            assert sys.getrefcount(obj) > count - 100, (obj, count, sys.getrefcount(obj))
        print("refused", refused)
    """)
    assert "Fatal Python error" not in result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", str(100_000 + 1000 * len(SHARED.split(",")))]


def test_py_decref_never_frees_an_object_still_referenced_elsewhere():
    """`a = [1]; b = a; py_decref(a); del b` freed the list while `a` still named it."""
    result = run_python("""
        import gc
        from pymemtrace import cMemLeak
        a = [1]
        b = a
        try:
            cMemLeak.py_decref(a)
        except ValueError:
            print("refused")
        del b
        junk = [[i] for i in range(100_000)]  # takes over freed memory, if any
        gc.collect()
        assert a == [1], a
        a.append(2)
        block = cMemLeak.CMalloc(8)
        other = block
        try:
            cMemLeak.py_decref(block)
        except ValueError:
            print("refused")
        del other
        junk = [cMemLeak.CMalloc(8) for _ in range(1000)]
        assert a == [1, 2] and block.size == 8 and block.buffer not in {j.buffer for j in junk}
        print("intact")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "refused", "intact"]


def mapping_starts(*names):
    """Start addresses of this process's mappings whose name contains one of `names`."""
    with open("/proc/self/maps") as maps:
        return [int(line.split("-")[0], 16) for line in maps
                if any(name in line for name in names)]


def test_py_refcnt_of_address_reads_no_memory_that_cmemleak_does_not_keep_alive():
    """py_refcnt_of_address read the 8 bytes at any address: a bytes object's data (here a
    secret), objects it knew nothing of, a freed object, code, the vdso."""
    secret = b"correct horse battery staple :-)"
    data = id(secret) + sys.getsizeof(b"") - 1  # where CPython keeps the bytes of a bytes object
    addresses = [data + offset for offset in range(0, len(secret), 8)]
    addresses += [id(secret), id(None), id(cMemLeak), id(addresses), id(cMemLeak.CMalloc)]
    freed = [object()]
    addresses.append(id(freed))
    del freed
    addresses += mapping_starts("[vdso]", "[stack]", "cMemLeak")
    assert len(addresses) > 10
    for address in addresses:
        with pytest.raises(ValueError, match="holds no reference"):
            cMemLeak.py_refcnt_of_address(address)


def test_py_refcnt_of_address_follows_an_object_with_no_name_left():
    """What the function is for: the count of a leaked object, found by address."""
    obj = ["leaked on purpose"]
    address = id(obj)
    cMemLeak.py_incref(obj)
    del obj
    assert cMemLeak.py_refcnt_of_address(address) == 1  # cMemLeak's reference alone
    found = [o for o in gc.get_objects() if id(o) == address]
    assert found == [["leaked on purpose"]]
    cMemLeak.py_decref(found[0])
    del found  # frees the list
    with pytest.raises(ValueError, match="holds no reference"):
        cMemLeak.py_refcnt_of_address(address)


@pytest.mark.parametrize("obj", [None, True, 0, 256, "", (), b"", int, cMemLeak], ids=repr)
def test_py_incref_and_py_decref_of_a_shared_object(obj):
    """Safe for any object: py_decref gives back what py_incref added, and no more. An immortal
    object of CPython 3.12+ (count above MAX_REFCNT, never moving) is refused."""
    if sys.getrefcount(obj) >= MAX_REFCNT:
        with pytest.raises(OverflowError, match="immortal"):
            cMemLeak.py_incref(obj)
    else:
        cMemLeak.py_incref(obj)
        cMemLeak.py_incref(obj)
        cMemLeak.py_decref(obj)
        cMemLeak.py_decref(obj)
    with pytest.raises(ValueError, match=NOT_HELD):
        cMemLeak.py_decref(obj)


def test_the_module_documents_what_changed_against_the_original():
    for name in ["py_decref", "py_refcnt_of_address", "inc_refcnt", "domain"]:
        assert name in cMemLeak.__doc__


# --- The interpreter survives -----------------------------------------------------------------

SURVIVAL_SCRIPT = textwrap.dedent("""
    import gc, sys
    from pymemtrace import cMemLeak
    types = [cMemLeak.CMalloc, cMemLeak.PyRawMalloc, cMemLeak.PyMalloc, cMemLeak.PyObjectMalloc]
    bad = [-1, -2**100, 2**62, 2**63, 2**64, 2**100, 1.5, "x", None, b"1"]
    caught = 0
    for t in types:
        for size in bad:
            for call in (lambda: t(size), lambda: t(8).__init__(size)):
                try:
                    call()
                except (ValueError, MemoryError, TypeError):
                    caught += 1
        block = t(8)
        for n in (-1, -2, -3, -2**70, 2**70, "1"):
            try:
                block.inc_refcnt(n)
            except (ValueError, OverflowError, TypeError):
                caught += 1
        leaked = t(64)
        leaked.inc_refcnt(1)  # never freed, not even at exit
        del leaked
        for i in range(1000):
            block.__init__(i)
    for f in (cMemLeak.py_refcnt_of_address, cMemLeak.py_bytes_of_size):
        for arg in (0, 1, 8, -8, 2**64, 2**100, -1, 2**62, "x"):
            try:
                f(arg)
            except (ValueError, MemoryError, TypeError):
                caught += 1
    for make in (lambda: cMemLeak.CMalloc(1), object, list, lambda: None, lambda: 0,
                 lambda: "", lambda: ()):
        obj = make()
        for _ in range(3):  # one holder besides the call: refused
            try:
                cMemLeak.py_decref(obj)
            except ValueError:
                caught += 1
        try:
            cMemLeak.py_decref(make())
        except ValueError:
            caught += 1
        try:
            cMemLeak.py_refcnt_of_address(id(obj))
        except ValueError:
            caught += 1
    try:
        cMemLeak.CMalloc(8).inc_refcnt(2**63 - 1)
    except OverflowError:
        caught += 1
    gc.collect()
    print("survived", caught)
""")


def test_interpreter_survives_every_bad_input_and_exits_cleanly():
    result = subprocess.run([sys.executable, "-X", "dev", "-c", SURVIVAL_SCRIPT],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("survived ")
    assert int(result.stdout.split()[1]) > 100
    assert "Traceback" not in result.stderr
