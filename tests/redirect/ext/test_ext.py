# SPDX-License-Identifier: MIT
"""The extension's own tests: they know nothing of pymemtrace and must pass on every build."""
import pytest

import redirected


def test_squares_are_computed_through_pymem_new_and_resize():
    assert redirected.squares(6) == [0, 1, 4, 9, 16, 25]


def test_pymem_new_refuses_a_count_that_overflows():
    assert redirected.too_many() is True


@pytest.mark.parametrize("domain", [0, 1, 2, 3])
def test_grow_reads_back_what_it_wrote_in_every_allocator(domain):
    assert redirected.grow(domain, 100) == 100 * 1 + 100 * 2


@pytest.mark.parametrize("domain", [0, 1, 2, 3])
def test_kept_blocks_are_released_once(domain):
    slot = redirected.keep(domain, 64)
    redirected.release(slot)
    with pytest.raises(KeyError):
        redirected.release(slot)


def test_a_block_object_holds_its_size():
    block = redirected.block(123)
    assert block.size() == 123 and redirected.BLOCK_SIZE > 0


def test_old_style_objects_are_made_kept_and_dropped():
    assert redirected.old_churn(5) == 5 and redirected.OLD_SIZE > 0
    redirected.old_keep(1)


def test_the_cxx_translation_unit_keeps_and_releases():
    slot = redirected.cxx_keep(10)
    redirected.cxx_release(slot)
    with pytest.raises(KeyError):
        redirected.cxx_release(slot)


def test_the_cython_module_allocates_and_frees():
    cyblocks = pytest.importorskip("cyblocks")
    assert cyblocks.Buffer(50).size == 50
    assert cyblocks.churn_pymem(20) == 20
