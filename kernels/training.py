"""Whole-epoch training and lean prediction on flat parameter vectors.

One call runs a whole epoch: for every mini-batch it gathers the rows, runs the
forward pass, the cost, the backward pass and the optimizer update, with all
buffers preallocated by the caller once per ``fit``. Nothing returns to Python
between mini-batches.

The work of a batch is written as *shares*, so that the threaded epoch
(:mod:`.training_threaded`) and this single-threaded one run the same code:
share p of ``parts`` owns a contiguous block of the batch's samples for the
forward pass and for dZ, and a block of each layer's rows for dW and db, which
it sums over all the samples of the batch. No share writes what another reads
in the same phase, so the phases need no locks, only a barrier between them.
Here ``parts`` is 1 and the shares are whole.

Layouts
-------
- ``X`` (m, n0) and ``Y`` (m, nL): row per sample, as users hold their data;
  a share of a batch ``Xk`` (w, n0) enters the first layer as ``Xk.T``, which
  BLAS reads transposed at no cost.
- ``theta``: W1, b1, W2, b2, ... flattened into one vector (``offW``/``offb``
  give where each starts); ``grad``, ``v``, ``s`` share that layout.
- ``acts[p]``: the activations A[l] (n[l], w) of share p, every layer back to
  back; dZ[L] overwrites A[L]. ``deltas[p]``: two buffers of the widest hidden
  layer, dZ[l] in buffer ``l % 2``, so that dZ[l-1] is written while other
  shares still read dZ[l].
- The 1/mb of the linear backward step is folded into dZ[L]; the chain rule
  carries it down to every layer.
"""

import numpy as np
from numba import njit

from ._config import JIT
from ._scalars import cast_like, one_like, zero_like
from .activations import bias_activation, scale_by_derivative
from .blas import gemm
from .dropout import apply_mask, layer_key
from .linear import row_sums
from .losses import cost_sum, output_delta
from .updates import BC1, BC2, apply_update


@njit(**JIT)
def _matrix(flat, offset, rows, cols):
    return flat[offset:offset + rows * cols].reshape((rows, cols))


@njit(**JIT)
def _column(flat, offset, rows):
    return flat[offset:offset + rows].reshape((rows, 1))


@njit(**JIT)
def share(p, parts, n):
    """[lo, hi) of share p when n items are split into ``parts`` near-equal blocks."""
    return p * n // parts, (p + 1) * n // parts


@njit(**JIT)
def activation_offset(dims, l, width):
    """Where A[l] (l ≥ 1) starts in ``acts`` for a batch of ``width`` columns."""
    off = 0
    for k in range(1, l):
        off += dims[k] * width
    return off


@njit(**JIT)
def forward_into(Xk, dims, codes, slope, theta, offW, offb, acts, keep_prob, seed, step,
                 col0, width):
    """Forward pass of a batch ``Xk`` (mb, n0); returns A[L] (a view into acts).

    With ``keep_prob < 1`` the hidden activations get inverted dropout with the
    masks of optimizer step ``step``; ``Xk`` is then columns ``col0...`` of a
    batch ``width`` samples wide (see :func:`.dropout.apply_mask`).
    """
    mb = Xk.shape[0]
    L = dims.shape[0] - 1
    one = one_like(slope)
    zero = one - one
    W = _matrix(theta, offW[0], dims[1], dims[0])
    off = 0
    A = _matrix(acts, off, dims[1], mb)
    dropout = keep_prob < 1.0
    inv_keep = cast_like(1.0 / keep_prob, slope)
    gemm(one, W, Xk.T, zero, A)
    bias_activation(A, _column(theta, offb[0], dims[1]), codes[0], slope, A)
    for l in range(1, L):
        if dropout:
            apply_mask(A, layer_key(seed, step, l), keep_prob, inv_keep, col0, width)
        A_prev = A
        W = _matrix(theta, offW[l], dims[l + 1], dims[l])
        off += dims[l] * mb
        A = _matrix(acts, off, dims[l + 1], mb)
        gemm(one, W, A_prev, zero, A)
        bias_activation(A, _column(theta, offb[l], dims[l + 1]), codes[l], slope, A)
    return A


@njit(**JIT)
def share_input(X, order, start, Xb, lo, hi):
    """The input rows of samples lo..hi of the batch starting at ``start``
    (gathered into ``Xb`` when the epoch has an ``order``)."""
    if order.shape[0] > 0:
        return Xb[lo:hi]
    return X[start + lo:start + hi]


@njit(**JIT)
def forward_share(p, parts, mb, X, Y, order, start, Xb, Yb, dims, codes, slope, loss_code,
                  theta, offW, offb, acts, keep_prob, seed, step):
    """Forward pass of share p of a batch of ``mb`` samples starting at ``start``.

    Gathers the share's rows (when ``order`` is given), leaves its A[l] in
    ``acts[p]`` and dZ[L]/mb in place of A[L]; returns the share's loss sum.
    """
    lo, hi = share(p, parts, mb)
    if order.shape[0] > 0:
        for j in range(lo, hi):
            Xb[j, :] = X[order[start + j], :]
            Yb[j, :] = Y[order[start + j], :]
        Yk = Yb[lo:hi]
    else:
        Yk = Y[start + lo:start + hi]
    Xk = share_input(X, order, start, Xb, lo, hi)
    AL = forward_into(Xk, dims, codes, slope, theta, offW, offb, acts[p], keep_prob, seed,
                      step, lo, mb)
    loss = cost_sum(AL, Yk.T, loss_code)
    output_delta(AL, Yk.T, cast_like(1.0 / mb, AL[0, 0]), AL)
    return loss


@njit(**JIT)
def _activation(l, q, parts, mb, dims, acts):
    """A[l] (l ≥ 1) of share q."""
    lo, hi = share(q, parts, mb)
    return _matrix(acts[q], activation_offset(dims, l, hi - lo), dims[l], hi - lo)


@njit(**JIT)
def _delta(l, q, parts, mb, dims, acts, deltas):
    """dZ[l] of share q: in place of A[L] for the output layer, else in the
    share's delta buffer ``l % 2``."""
    if l == dims.shape[0] - 1:
        return _activation(l, q, parts, mb, dims, acts)
    lo, hi = share(q, parts, mb)
    return _matrix(deltas[q], (l % 2) * (deltas.shape[1] // 2), dims[l], hi - lo)


@njit(**JIT)
def backward_share(l, p, parts, mb, X, order, start, Xb, dims, codes, slope, theta, grad,
                   offW, offb, acts, deltas, keep_prob, seed, step):
    """Layer l's (1-based) backward step for share p.

    Writes rows ``share(p, parts, n[l])`` of dW[l] and db[l], summed over every
    share of the batch, and (for l > 1) dZ[l-1] of share p's samples.
    """
    one = one_like(slope)
    zero = one - one
    r0, r1 = share(p, parts, dims[l])
    dW = _matrix(grad, offW[l - 1], dims[l], dims[l - 1])[r0:r1]
    db = _column(grad, offb[l - 1], dims[l])[r0:r1]
    for q in range(parts):
        dZ = _delta(l, q, parts, mb, dims, acts, deltas)[r0:r1]
        beta = one if q > 0 else zero
        if l == 1:
            lo, hi = share(q, parts, mb)
            gemm(one, dZ, share_input(X, order, start, Xb, lo, hi), beta, dW)
        else:
            gemm(one, dZ, _activation(l - 1, q, parts, mb, dims, acts).T, beta, dW)
        row_sums(dZ, one, db, q > 0)
    if l == 1:
        return       # nobody needs dA[0]
    dZ = _delta(l, p, parts, mb, dims, acts, deltas)
    W = _matrix(theta, offW[l - 1], dims[l], dims[l - 1])
    dA = _delta(l - 1, p, parts, mb, dims, acts, deltas)
    gemm(one, W.T, dZ, zero, dA)
    A_prev = _activation(l - 1, p, parts, mb, dims, acts)
    a_scale = one
    if keep_prob < 1.0:
        # A_prev holds g(Z)·mask/keep_prob: mask dA the same way, and read g(Z)
        # back as A_prev·keep_prob (dropped units have dA = 0 anyway).
        a_scale = cast_like(keep_prob, one)
        lo, _ = share(p, parts, mb)
        apply_mask(dA, layer_key(seed, step, l - 1), keep_prob, cast_like(1.0 / keep_prob, one),
                   lo, mb)
    scale_by_derivative(dA, A_prev, codes[l - 2], slope, a_scale)


@njit(**JIT)
def regularise_share(p, parts, theta, grad, dims, offW, c):
    """Adds ``c`` W to dW over share p of the parameter vector; returns Σ W² there."""
    if c == 0:
        return 0.0
    lo, hi = share(p, parts, theta.shape[0])
    total = 0.0
    for l in range(dims.shape[0] - 1):
        w0 = max(lo, offW[l])
        w1 = min(hi, offW[l] + dims[l + 1] * dims[l])
        for i in range(w0, w1):
            grad[i] += c * theta[i]
            total += theta[i] * theta[i]
    return total


@njit(**JIT)
def all_finite(x):
    """Whether no element is NaN or ±inf."""
    # x·0 is 0 for finite x and NaN otherwise: a sum without an early exit,
    # which vectorises (an early-exit loop ran scalar, 5% of an mnist epoch).
    if x.shape[0] == 0:
        return True
    zero = zero_like(x[0])
    acc = zero
    for i in range(x.shape[0]):
        acc += x[i] * zero
    return acc == zero


@njit(**JIT)
def update_share(p, parts, theta, grad, v, s, opt_code, hyper):
    """The optimizer update of share p of the parameter vector (v, s may be empty)."""
    lo, hi = share(p, parts, theta.shape[0])
    apply_update(theta[lo:hi], grad[lo:hi], v[lo:hi], s[lo:hi], opt_code, hyper)


@njit(**JIT)
def batch_cost(loss, sum_squares, mb, l2):
    """Mean loss of a batch plus λ/(2 mb) Σ‖W‖²."""
    cost = loss / mb
    if l2 > 0:
        cost += l2 / (2.0 * mb) * sum_squares
    return cost


@njit(**JIT)
def set_bias_correction(hyper, beta1, beta2, step):
    hyper[BC1] = 1.0 - beta1 ** step
    hyper[BC2] = 1.0 - beta2 ** step


@njit(**JIT)
def batch_gradient(X, Y, order, start, mb, Xb, Yb, dims, codes, slope, loss_code, l2, theta,
                   grad, offW, offb, acts, deltas, keep_prob, seed, step):
    """Cost of one batch and its gradient (into ``grad``), on one thread."""
    L = dims.shape[0] - 1
    loss = forward_share(0, 1, mb, X, Y, order, start, Xb, Yb, dims, codes, slope, loss_code,
                         theta, offW, offb, acts, keep_prob, seed, step)
    for l in range(L, 0, -1):
        backward_share(l, 0, 1, mb, X, order, start, Xb, dims, codes, slope, theta, grad,
                       offW, offb, acts, deltas, keep_prob, seed, step)
    c = cast_like(l2 / mb, slope)
    return batch_cost(loss, regularise_share(0, 1, theta, grad, dims, offW, c), mb, l2)


@njit(**JIT)
def loss_and_gradient(Xk, Yk, dims, codes, slope, loss_code, l2, theta, grad,
                      offW, offb, acts, deltas, keep_prob, seed, step):
    """Cost of the batch ``(Xk, Yk)`` and its gradient (written into ``grad``).

    Xk (mb, n0), Yk (mb, nL); ``acts`` and ``deltas`` are one share's buffers
    (shape (1, ...)). The cost is the mean loss over the batch plus
    λ/(2 mb) Σ‖W‖²; the gradient includes (λ/mb) W.
    """
    no_order = np.empty(0, np.int64)
    return batch_gradient(Xk, Yk, no_order, 0, Xk.shape[0], Xk, Yk, dims, codes, slope,
                          loss_code, l2, theta, grad, offW, offb, acts, deltas, keep_prob,
                          seed, step)


@njit(**JIT)
def train_epoch(X, Y, order, batch_size, dims, codes, slope, loss_code, l2, keep_prob, seed,
                theta, grad, v, s, opt_code, hyper, beta1, beta2, t,
                offW, offb, acts, deltas, Xb, Yb, batch_costs):
    """One epoch of mini-batch training; updates theta, v, s in place.

    ``order`` is the sample order for this epoch (empty: take the rows as they
    are, with no gather copy). ``t`` is the optimizer step before the epoch.
    ``batch_costs[k]`` receives the cost of batch k. Batch k is optimizer step
    ``t + k + 1``, which also selects its dropout masks.

    Returns
    -------
    int
        -1 when every batch finished with a finite cost and gradient, else the
        index of the batch that did not (its update is not applied).
    """
    m = X.shape[0]
    n_batches = (m + batch_size - 1) // batch_size
    for k in range(n_batches):
        start = k * batch_size
        mb = min(batch_size, m - start)
        step = t + k + 1
        cost = batch_gradient(X, Y, order, start, mb, Xb, Yb, dims, codes, slope, loss_code, l2,
                              theta, grad, offW, offb, acts, deltas, keep_prob, seed, step)
        batch_costs[k] = cost
        if not np.isfinite(cost) or not all_finite(grad):
            return k
        set_bias_correction(hyper, beta1, beta2, step)
        update_share(0, 1, theta, grad, v, s, opt_code, hyper)
    return -1


@njit(**JIT)
def predict_output(X, dims, codes, slope, theta, offW, offb, chunk):
    """A[L] (nL, m) for X (m, n0), in chunks of ``chunk`` rows to bound memory."""
    m = X.shape[0]
    L = dims.shape[0] - 1
    out = np.empty((dims[L], m), dtype=X.dtype)
    width = 0
    for l in range(1, L + 1):
        width += dims[l]
    acts = np.empty(width * min(chunk, max(m, 1)), dtype=X.dtype)
    for start in range(0, m, chunk):
        mb = min(chunk, m - start)
        AL = forward_into(X[start:start + mb], dims, codes, slope, theta, offW, offb, acts,
                          1.0, 0, 0, 0, mb)
        out[:, start:start + mb] = AL
    return out
