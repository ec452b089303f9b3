"""Costs and their output gradients, one per output activation's loss.

sigmoid → binary cross-entropy, softmax → categorical cross-entropy,
identity and ReLU → ½·squared error. Logs are clipped at the smallest normal
number, exactly as the reference does, so a saturated output never gives log(0).

Sample weights ``w`` (one per column; empty for none) multiply each column's
loss and its gradient; the caller divides by their sum, as scikit-learn does.
"""

import numpy as np
from numba import njit

from ._config import JIT
from ._scalars import one_like
from .activations import IDENTITY, SIGMOID, SOFTMAX, _dg
from .simd_math import fast_log


@njit(inline="always")
def _safe_log(x, tiny):
    # fast_log, not np.log: a libm call per entry kept the cost's loop scalar
    # (cost_sum and its logs took 13% of a digits-small float32 epoch).
    return fast_log(x if x > tiny else tiny)


@njit(inline="always")
def _cross_term(y, x, tiny):
    """y · log(x), clipped; where y is 0, x · y: 0, or NaN for a NaN or
    infinite x, as the reference's 0 · log(x) gives. Both sides are plain
    arithmetic, so a loop of them vectorises with a select."""
    if y == 0:
        return x * y
    return y * _safe_log(x, tiny)


@njit(inline="always")
def _loss(a, y, loss_code, tiny):
    if loss_code == SIGMOID:
        one = one_like(a)
        return -(_cross_term(y, a, tiny) + _cross_term(one - y, one - a, tiny))
    if loss_code == SOFTMAX:
        return -_cross_term(y, a, tiny)
    d = a - y
    return d * d * 0.5


@njit(**JIT)
def cost_sum(AL, Y, loss_code, w):
    """Σ over all entries of the per-entry loss (column j weighted by ``w[j]``
    when ``w`` is not empty), accumulated in float64.

    Any layout of Y works; the training loop passes its targets a column per
    sample, C-contiguous as AL, so that the loop vectorises (a strided Y keeps
    it scalar).
    """
    n, m = AL.shape
    tiny = np.finfo(AL.dtype).tiny
    total = 0.0
    if w.shape[0] == 0:
        for i in range(n):
            for j in range(m):
                total += _loss(AL[i, j], Y[i, j], loss_code, tiny)
    else:
        for i in range(n):
            for j in range(m):
                total += _loss(AL[i, j], Y[i, j], loss_code, tiny) * w[j]
    return total


@njit(**JIT)
def output_delta(AL, Y, scale, dZ, w, code, slope, loss_code):
    """dZ[L] = scale · w_j · (AL - Y) · g'(Z[L]), in place of AL allowed.

    For the canonical pairs (sigmoid with binary cross-entropy, softmax with
    categorical cross-entropy, identity with squared error) g' cancels and
    dZ is AL - Y. Squared error through another output activation (ReLU, for
    non-negative targets) keeps its derivative, read off AL as in the hidden
    layers. ``w`` empty: weights 1.
    """
    n, m = AL.shape
    gated = loss_code == IDENTITY and code != IDENTITY
    weighted = w.shape[0] > 0
    if not (gated or weighted):
        if dZ.ctypes.data == AL.ctypes.data:
            # In place (the training loop's case), with one array: LLVM
            # vectorises the two-array loop only behind a no-overlap check,
            # which an in-place call fails (see activations.bias_activation).
            for i in range(n):
                for j in range(m):
                    AL[i, j] = (AL[i, j] - Y[i, j]) * scale
            return
        for i in range(n):
            for j in range(m):
                dZ[i, j] = (AL[i, j] - Y[i, j]) * scale
        return
    for i in range(n):
        for j in range(m):
            a = AL[i, j]
            d = (a - Y[i, j]) * scale
            if gated:
                d *= _dg(a, code, slope)
            if weighted:
                d *= w[j]
            dZ[i, j] = d


@njit(**JIT)
def metric_sum(AL, Y, w, loss_code):
    """What the epoch's training score is summed from, over the columns (samples)
    of a batch, each weighted by ``w[j]`` (``w`` empty: weights 1), in float64:

    - sigmoid: the samples whose every unit is on the right side of 0.5;
    - softmax: the samples whose largest output is their class (Y one-hot or
      probabilities: the class is Y's largest entry);
    - squared error: Σ (Y - AL)², the residual sum of squares.

    One pass per sample, with no work array.
    """
    n, m = AL.shape
    total = 0.0
    if loss_code == SOFTMAX or loss_code == SIGMOID:
        for j in range(m):
            ok = True
            if loss_code == SOFTMAX:
                # Right when the first index of the largest output (NumPy's
                # argmax) is the first of the largest target: both found in
                # one pass (two passes took 720 ns of a digits-small batch).
                label, best = 0, 0
                y_max, a_max = Y[0, j], AL[0, j]
                for i in range(1, n):
                    if Y[i, j] > y_max:
                        label, y_max = i, Y[i, j]
                    if AL[i, j] > a_max:
                        best, a_max = i, AL[i, j]
                ok = best == label
            else:
                for i in range(n):
                    if (AL[i, j] > 0.5) != (Y[i, j] > 0.5):
                        ok = False
            if ok:
                total += 1.0 if w.shape[0] == 0 else float(w[j])
        return total
    for i in range(n):
        for j in range(m):
            d = float(Y[i, j]) - float(AL[i, j])
            total += d * d * (1.0 if w.shape[0] == 0 else float(w[j]))
    return total
