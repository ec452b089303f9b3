"""Costs and their output gradients, one per output activation's canonical loss.

sigmoid → binary cross-entropy, softmax → categorical cross-entropy,
identity → ½·squared error. Logs are clipped at the smallest normal number,
exactly as the reference does, so a saturated output never gives log(0).
"""

import numpy as np
from numba import njit

from ._config import JIT
from ._scalars import one_like
from .activations import SIGMOID, SOFTMAX


@njit(inline="always")
def _safe_log(x, tiny):
    return np.log(x if x > tiny else tiny)


@njit(**JIT)
def cost_sum(AL, Y, loss_code):
    """Σ over all entries of the per-entry loss, accumulated in float64.

    Y may be a transposed view (the training loop keeps targets row-per-sample).
    """
    n, m = AL.shape
    tiny = np.finfo(AL.dtype).tiny
    total = 0.0
    for i in range(n):
        for j in range(m):
            a = AL[i, j]
            y = Y[i, j]
            if loss_code == SIGMOID:
                one = one_like(a)
                loss = -(y * _safe_log(a, tiny) + (one - y) * _safe_log(one - a, tiny))
            elif loss_code == SOFTMAX:
                loss = -(y * _safe_log(a, tiny))
            else:
                d = a - y
                loss = d * d * 0.5
            total += loss
    return total


@njit(**JIT)
def output_delta(AL, Y, scale, dZ):
    """dZ[L] = scale * (AL - Y): the gradient of each canonical loss through
    its output activation (dZ may be AL itself)."""
    n, m = AL.shape
    for i in range(n):
        for j in range(m):
            dZ[i, j] = (AL[i, j] - Y[i, j]) * scale
