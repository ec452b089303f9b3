"""Typed constants for dtype-generic kernels.

Numba promotes ``float32 op int`` to float64, so a literal ``0`` or ``1`` in a
float32 kernel silently widens the arithmetic (and halves the SIMD lanes).
``zero_like(x)``/``one_like(x)`` give constants of ``x``'s own type instead;
``cast_like(value, x)`` rounds a float64 value to it, as NumPy rounds a Python
float used against a float32 array.
"""

import numpy as np
from numba import types
from numba.extending import overload


def zero_like(x):
    return type(x)(0)


def one_like(x):
    return type(x)(1)


def cast_like(value, x):
    return type(x)(value)


def _float_type(x):
    if isinstance(x, types.Float):
        return np.float32 if x.bitwidth == 32 else np.float64
    return None


@overload(zero_like, inline="always")
def _ol_zero_like(x):
    ft = _float_type(x)
    if ft is not None:
        return lambda x: ft(0)


@overload(one_like, inline="always")
def _ol_one_like(x):
    ft = _float_type(x)
    if ft is not None:
        return lambda x: ft(1)


@overload(cast_like, inline="always")
def _ol_cast_like(value, x):
    ft = _float_type(x)
    if ft is not None:
        return lambda value, x: ft(value)
