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


@njit(inline="always")
def _safe_log(x, tiny):
    return np.log(x if x > tiny else tiny)


@njit(inline="always")
def _loss(a, y, loss_code, tiny):
    if loss_code == SIGMOID:
        one = one_like(a)
        return -(y * _safe_log(a, tiny) + (one - y) * _safe_log(one - a, tiny))
    if loss_code == SOFTMAX:
        return -(y * _safe_log(a, tiny))
    d = a - y
    return d * d * 0.5


@njit(**JIT)
def cost_sum(AL, Y, loss_code, w):
    """Σ over all entries of the per-entry loss (column j weighted by ``w[j]``
    when ``w`` is not empty), accumulated in float64.

    Y may be a transposed view (the training loop keeps targets row-per-sample).
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

    AL is read along its rows (contiguous), Y along its columns (a transposed
    view of row-per-sample targets): a column-wise argmax over AL ran 20% of a
    digits-small epoch.
    """
    n, m = AL.shape
    total = 0.0
    if loss_code == SOFTMAX or loss_code == SIGMOID:
        right = np.empty(m, dtype=np.float64)
        if loss_code == SOFTMAX:
            best = np.empty(m, dtype=AL.dtype)
            for j in range(m):
                best[j] = AL[0, j]
            for i in range(1, n):
                for j in range(m):
                    best[j] = max(best[j], AL[i, j])
            for j in range(m):
                label = 0
                for i in range(1, n):
                    if Y[i, j] > Y[label, j]:
                        label = i
                # Right when the label is the first index of the largest
                # output, as NumPy's argmax decides ties.
                ok = AL[label, j] >= best[j]
                for i in range(label):
                    if AL[i, j] >= best[j]:
                        ok = False
                right[j] = 1.0 if ok else 0.0
        else:
            for j in range(m):
                right[j] = 1.0
            for i in range(n):
                for j in range(m):
                    if (AL[i, j] > 0.5) != (Y[i, j] > 0.5):
                        right[j] = 0.0
        if w.shape[0] == 0:
            for j in range(m):
                total += right[j]
        else:
            for j in range(m):
                total += right[j] * w[j]
        return total
    for i in range(n):
        for j in range(m):
            d = float(Y[i, j]) - float(AL[i, j])
            total += d * d * (1.0 if w.shape[0] == 0 else float(w[j]))
    return total
