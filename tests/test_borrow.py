"""Borrowed arrays (kernels/_borrow.py): the same memory without Numba's
reference counting, and writes through them that Numba's dead-code
elimination must keep."""

from collections import namedtuple

import numba
import numpy as np
import pytest

from deepnet_fast.kernels._borrow import borrow, matrix_view, returns_its_argument

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


@numba.njit
def _matrix_view_and_write(flat, offset, rows, cols, borrowed):
    m = matrix_view(borrow(flat) if borrowed else flat, offset, rows, cols)
    _write_inline(m.reshape(rows * cols), rows * cols - 1, -1.0)   # inlined write, last entry
    return m.copy(), m.strides


@pytest.mark.parametrize("borrowed", [False, True])
@pytest.mark.parametrize("offset, rows, cols", [(0, 3, 4), (5, 2, 3), (7, 5, 1), (12, 0, 3)])
def test_matrix_view_is_the_reshaped_slice_and_writes_land(offset, rows, cols, borrowed):
    flat = np.arange(20.0)
    expected = flat[offset:offset + rows * cols].reshape(rows, cols).copy()
    if rows * cols:
        expected.flat[-1] = -1.0
    view, strides = _matrix_view_and_write(flat, offset, rows, cols, borrowed)
    np.testing.assert_array_equal(view, expected)
    assert strides == (cols * 8, 8)
    if rows * cols:
        assert flat[offset + rows * cols - 1] == -1.0


@pytest.mark.parametrize("offset, rows, cols", [(-1, 2, 2), (0, -1, 2), (0, 2, -1), (17, 2, 2),
                                                (0, 5, 5)])
def test_training_matrix_refuses_a_view_outside_its_buffer(offset, rows, cols):
    from deepnet_fast.kernels.training import _matrix
    with pytest.raises(IndexError, match="does not fit"):
        _matrix(np.zeros(20), offset, rows, cols)
    np.testing.assert_array_equal(_matrix(np.arange(20.0), 16, 2, 2), [[16, 17], [18, 19]])
