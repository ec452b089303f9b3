"""Inverted dropout with a counter-based random stream.

Whether unit (i, j) of layer l is kept at optimizer step t is a pure function of
(seed, t, l, i·m + j): the SplitMix64 finaliser of a Weyl sequence, turned into a
uniform double in [0, 1). Masks are never stored: the backward pass regenerates
them, each backend gets the same mask for the same seed
(:func:`deepnet_fast.reference.dropout_mask` is the NumPy copy), and the result
does not depend on threads or call order.
"""

import numpy as np
from numba import njit

from ._config import JIT
from ._scalars import zero_like

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**JIT)
def layer_key(seed, step, layer):
    """The stream key of one layer at one optimizer step (all uint64 arithmetic)."""
    k = _mix(np.uint64(seed) + _GOLDEN * np.uint64(step))
    return _mix(k + _GOLDEN * np.uint64(layer))


@njit(inline="always")
def _keep(key, index, keep_prob):
    # np.uint64 casts: Numba promotes int64 op uint64 to float64.
    z = np.uint64(key) + _GOLDEN * (np.uint64(index) + np.uint64(1))
    u = np.float64(_mix(z) >> _S11) * _TO_UNIT
    return u < keep_prob


@njit(**JIT)
def keep_mask(n, m, seed, step, layer, keep_prob):
    """The boolean keep mask of an (n, m) layer (for tests)."""
    key = layer_key(seed, step, layer)
    mask = np.empty((n, m), dtype=np.bool_)
    for i in range(n):
        for j in range(m):
            mask[i, j] = _keep(key, i * m + j, keep_prob)
    return mask


@njit(**JIT)
def apply_mask(A, key, keep_prob, inv_keep, row0, col0, width):
    """A = A · mask / keep_prob, in place.

    ``A`` is the block from row ``row0`` and column ``col0`` of a layer
    ``width`` columns wide, so that a layer split between threads gets the
    masks of the whole layer. The forward pass applies it to the
    activations, the backward pass to dA with the same key, so both see the
    same mask.
    """
    n, m = A.shape
    # Typed 0 (inv_keep - inv_keep would be NaN when 1/keep_prob overflows).
    zero = zero_like(inv_keep)
    for i in range(n):
        row = (row0 + i) * width + col0
        for j in range(m):
            A[i, j] = A[i, j] * inv_keep if _keep(key, row + j, keep_prob) else zero
