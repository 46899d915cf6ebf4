"""Tests for `keras_swn.bank.allocation`: templates per bank, windows."""

from keras_swn.bank.allocation import allocate
from keras_swn.bank.allocation import window_offsets


class TestAllocate:
    def test_hand_example(self):
        units = {(0, 0): 10, (0, 1): 5, (1, 0): 20}
        users = {(0, 0): 3, (0, 1): 1, (1, 0): 2}
        alloc = allocate(units, users, 100)
        assert alloc.sizes == {(0, 0): 40, (0, 1): 15, (1, 0): 40}
        assert alloc.templates == {(0, 0): 4, (0, 1): 3, (1, 0): 2}
        assert alloc.excess == 5
        alloc = allocate(units, users, 100, bank_size=2)
        assert alloc.templates == {(0, 0): 2, (0, 1): 2, (1, 0): 2}

    def test_strict_test(self):
        # excess - unit == 0 does not buy a template.
        alloc = allocate({(0, 0): 10}, {(0, 0): 2}, 20)
        assert alloc.sizes == {(0, 0): 10} and alloc.excess == 10
        alloc = allocate({(0, 0): 10}, {(0, 0): 2}, 21)
        assert alloc.sizes == {(0, 0): 20} and alloc.excess == 1

    def test_cap_is_8_not_bank_size(self):
        alloc = allocate({(0, 0): 1}, {(0, 0): 20}, 1000, bank_size=4)
        assert alloc.sizes == {(0, 0): 8}
        assert alloc.templates == {(0, 0): 4}

    def test_one_template_does_not_fit(self):
        alloc = allocate({(0, 0): 10, (0, 1): 10}, {(0, 0): 5, (0, 1): 5}, 15)
        assert alloc.sizes == {(0, 0): 10, (0, 1): 10}
        assert alloc.excess == -5


class TestWindowOffsets:
    def test_window_offsets(self):
        assert window_offsets(8, 1, 4, 5) == [0, 4, 0, 4, 0]
        assert window_offsets(6, 1, 4, 3) == [0, 0, 0]
        assert window_offsets(8, 1, 8, 3) == [0, 0, 0]
        # The counter also wraps after K layers.
        assert window_offsets(8, 1, 2, 5) == [0, 2, 0, 2, 0]
        assert window_offsets(9, 1, 3, 4) == [0, 3, 6, 0]
        assert window_offsets(8, 1, 3, 4) == [0, 3, 0, 3]
