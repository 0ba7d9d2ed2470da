# SPDX-License-Identifier: MIT
"""cMemLeak: its four block types and its reference count functions, bad inputs included."""
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

    @pytest.mark.parametrize("n", ["to one", "to zero", -1000, -2**63, -2**64, -2**100])
    def test_inc_refcnt_refuses_to_free_the_object(self, block_type, n):
        block = block_type(8)
        before = block.refcnt()  # this call's reference and `block`
        n = {"to one": 1 - before, "to zero": -before}.get(n, n)
        with pytest.raises(ValueError, match="below 2"):
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
    with pytest.raises(ValueError, match="below 2"):
        cMemLeak.py_decref(cMemLeak.CMalloc(8))  # the call holds the only reference
    obj = cMemLeak.CMalloc(8)
    before = cMemLeak.py_refcnt_of_object(obj)
    with pytest.raises(ValueError, match="below 2"):
        cMemLeak.py_decref(obj)  # `obj` and the call: it would be freed under `obj`
    assert cMemLeak.py_refcnt_of_object(obj) == before


def test_py_refcnt_of_object_counts_references():
    obj = object()
    before = cMemLeak.py_refcnt_of_object(obj)
    holders = [obj] * 5
    assert cMemLeak.py_refcnt_of_object(obj) == before + 5
    del holders


def test_py_refcnt_of_address_reads_the_count_of_a_live_object():
    obj = cMemLeak.CMalloc(8)
    before = cMemLeak.py_refcnt_of_address(id(obj))
    holders = [obj] * 3
    assert cMemLeak.py_refcnt_of_address(id(obj)) == before + 3
    del holders
    assert cMemLeak.py_refcnt_of_address(id(obj)) == before


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
    for make in (lambda: cMemLeak.CMalloc(1), object, list):
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
