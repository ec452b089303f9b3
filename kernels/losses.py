"""Costs and their output gradients, one per output activation's loss.

sigmoid → binary cross-entropy, softmax → categorical cross-entropy,
identity and ReLU → ½·squared error. Logs are clipped at the smallest normal
number, exactly as the reference does, so a saturated output never gives log(0).

Sample weights ``w`` (one per column; empty for none) multiply each column's
loss and its gradient; the caller divides by their sum, as scikit-learn does.
"""

import numpy as np
from numba import njit

from ._config import INLINE, JIT
from ._scalars import cast_like, one_like
from .activations import IDENTITY, SIGMOID, SOFTMAX, dg, exp_columns
from .simd_math import fast_log


@njit(inline="always")
def _safe_log(x, tiny):
    # fast_log, not np.log: a libm call per entry kept the cost's loop scalar
    # (cost_sum and its logs took 13% of a digits-small float32 epoch). The
    # clip as np.maximum's: a NaN output stays NaN (x > tiny would clip it).
    return fast_log(tiny if x < tiny else x)


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
                d *= dg(a, code, slope)
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

    The training loop's softmax layer counts its hits in :func:`softmax_output`.
    """
    n, m = AL.shape
    total = 0.0
    if loss_code == SOFTMAX:
        top = np.zeros((4, m), AL.dtype)
        top[0], top[1] = AL[0], Y[0]
        for i in range(1, n):
            fi = cast_like(i, top[0, 0])
            for j in range(m):
                top[0, j], top[2, j] = _first_max(AL[i, j], fi, top[0, j], top[2, j])
                top[1, j], top[3, j] = _first_max(Y[i, j], fi, top[1, j], top[3, j])
        return _hits(top, w)
    if loss_code == SIGMOID:
        for j in range(m):
            ok = True
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


# A softmax sample is right when the first index of its largest output
# (NumPy's argmax) is the first index of its largest target. The running
# maxima are kept per column and updated a row at a time, so that the loops
# run along the contiguous rows and vectorise (one pass per column took
# 216 ns of a 10 x 32 float32 batch, the row-wise pass 126 ns).
# ``top`` rows: largest output, largest target, and the row of each (as floats).
# The helpers take scalars only: an array argument costs an atomic reference
# count increment and decrement at every call, even inlined.

@njit(inline="always")
def _first_max(v, i, v_max, at):
    """The running maximum and its first row, after row i's value v."""
    if v > v_max:
        return v, i
    return v_max, at


@njit(inline="always")
def _hit(a_at, y_at, wj):
    return wj if a_at == y_at else 0.0


@njit(**INLINE)
def _hits(top, w):
    total = 0.0
    if w.shape[0] == 0:
        for j in range(top.shape[1]):
            total += _hit(top[2, j], top[3, j], 1.0)
    else:
        for j in range(top.shape[1]):
            total += _hit(top[2, j], top[3, j], float(w[j]))
    return total


@njit(inline="always")
def _softmax_entry(e, inv, y, scale, wj, tiny):
    """An entry of :func:`softmax_output`'s last pass: its output a, its
    dZ and its loss, both weighted by wj."""
    a = e * inv
    return a, (a - y) * scale * wj, -_cross_term(y, a, tiny) * wj


@njit(**INLINE)
def _softmax_row(Z, Y, w, inv, top, i, scale, tiny):
    """Row i of :func:`softmax_output`'s last pass; returns its loss."""
    fi = cast_like(i, scale)
    loss = 0.0
    # Two loops: a weight read behind a branch kept the loop scalar.
    if w.shape[0] == 0:
        one = one_like(scale)
        for j in range(Z.shape[1]):
            a, Z[i, j], term = _softmax_entry(Z[i, j], inv[j], Y[i, j], scale, one, tiny)
            loss += term
            top[0, j], top[2, j] = _first_max(a, fi, top[0, j], top[2, j])
            top[1, j], top[3, j] = _first_max(Y[i, j], fi, top[1, j], top[3, j])
    else:
        for j in range(Z.shape[1]):
            a, Z[i, j], term = _softmax_entry(Z[i, j], inv[j], Y[i, j], scale, w[j], tiny)
            loss += term
            top[0, j], top[2, j] = _first_max(a, fi, top[0, j], top[2, j])
            top[1, j], top[3, j] = _first_max(Y[i, j], fi, top[1, j], top[3, j])
    return loss


@njit(**JIT)
def softmax_output(Z, b, Y, w, scale):
    """The softmax output layer of a training batch in three passes, in place:
    Z (n, m) holds W A_prev on entry and dZ = scale · w_j · (A - Y) on return,
    with A = softmax(Z + b) column-wise; returns the batch's loss sum (as
    :func:`cost_sum`) and metric sum (as :func:`metric_sum`).

    The same arithmetic as ``bias_activation`` (softmax), ``cost_sum``,
    ``metric_sum`` and ``output_delta`` one after the other, with A normalised,
    scored and turned into dZ in one pass. On a digits-small batch (10 x 32,
    float32; AMD EPYC family 26), where a pass over 32 columns costs about as
    much as its arithmetic, the four took 730-1070 ns, this 490-550 ns; in
    ``perf`` profiles of the epoch 12.5% of the samples, this 8.9%.
    """
    n, m = Z.shape
    tiny = np.finfo(Z.dtype).tiny
    # One allocation for the column maxima, the inverse sums and ``top``.
    work = np.empty((6, m), Z.dtype)
    colmax, inv, top = work[0], work[1], work[2:]
    for j in range(m):
        Z[0, j] += b[0, 0]
        colmax[j] = Z[0, j]
    for i in range(1, n):
        bi = b[i, 0]
        for j in range(m):
            z = Z[i, j] + bi
            Z[i, j] = z
            if z > colmax[j]:
                colmax[j] = z
    exp_columns(Z, Z, colmax, inv)
    top[0], top[1], top[2:] = -np.inf, -np.inf, 0
    loss = 0.0
    for i in range(n):
        loss += _softmax_row(Z, Y, w, inv, top, i, scale, tiny)
    return loss, _hits(top, w)
