"""Borrowed arrays (kernels/_borrow.py): the same memory without Numba's
reference counting, and writes through them that Numba's dead-code
elimination must keep."""

from collections import namedtuple

import numba
import numpy as np
import pytest

from deepnet_fast.kernels._borrow import borrow, returns_its_argument

Pair = namedtuple("Pair", "a b")


@numba.njit(inline="always")
def _write_inline(x, i, value):
    x[i] = value


@numba.njit
def _borrow_and_write(x, i, value):
    y = borrow(x)
    _write_inline(y, i, value)      # inlined code writing through the borrow
    return y[i], y.shape[0], y.strides[0]


def test_writes_through_a_borrowed_array_land_in_the_original():
    x = np.zeros(5)
    assert _borrow_and_write(x, 3, 2.5) == (2.5, 5, 8)
    np.testing.assert_array_equal(x, [0, 0, 0, 2.5, 0])


@numba.njit
def _views(x):
    y = borrow(x)
    return y.T[1, 0], y[:, 1:].sum(), y[2, 3]


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_borrowed_views_read_what_the_original_holds(layout):
    x = np.arange(12.0).reshape(3, 4)
    x = {"C": x, "F": np.asfortranarray(x), "strided": np.arange(24.0).reshape(3, 8)[:, ::2]}[layout]
    assert _views(x) == (x.T[1, 0], x[:, 1:].sum(), x[2, 3])


@returns_its_argument
@numba.njit
def _borrowed_pair(p):
    return Pair(borrow(p.a), borrow(p.b))


@numba.njit(inline="always")
def _write_field(p, i, value):
    p.b[i] = value


@numba.njit
def _write_through_a_borrowed_tuple(p, value):
    q = _borrowed_pair(p)
    _write_field(q, 0, value)


def test_inlined_writes_through_a_borrowed_tuple_are_kept():
    # Without returns_its_argument, Numba removed this write as dead.
    p = Pair(np.zeros(2), np.zeros(3))
    _write_through_a_borrowed_tuple(p, 7.0)
    np.testing.assert_array_equal(p.b, [7.0, 0.0, 0.0])
