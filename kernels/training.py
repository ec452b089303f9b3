"""Whole-epoch training and lean prediction on flat parameter vectors.

One call runs a whole epoch: for every mini-batch it gathers the rows, runs the
forward pass, the cost, the backward pass and the optimizer update, with all
buffers preallocated by the caller once per ``fit``. Nothing returns to Python
between mini-batches.

Layouts
-------
- ``X`` (m, n0) and ``Y`` (m, nL): row per sample, as users hold their data;
  a mini-batch ``Xk`` (mb, n0) enters the first layer as ``Xk.T``, which BLAS
  reads transposed at no cost.
- ``theta``: W1, b1, W2, b2, ... flattened into one vector (``offW``/``offb``
  give where each starts); ``grad``, ``v``, ``s`` share that layout.
- ``acts``: the activations A[l] (n[l], mb) of every layer, back to back. During
  the backward pass A[l] is overwritten by dZ[l] once dW[l+1] no longer needs it,
  so the whole pass needs just one extra buffer (``scratch``) for dA.
- The 1/mb of the linear backward step is folded into dZ[L]; the chain rule
  carries it down to every layer.
"""

import numpy as np
from numba import njit

from ._config import JIT
from ._scalars import cast_like, one_like
from .activations import bias_activation, derivative_from_output
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
def activation_offsets(dims, batch):
    """Where A[l] starts in ``acts`` for a batch of ``batch`` columns."""
    L = dims.shape[0] - 1
    off = np.empty(L + 1, np.int64)
    off[0] = 0
    for l in range(L):
        off[l + 1] = off[l] + dims[l + 1] * batch
    return off


@njit(**JIT)
def sum_squares_weights(theta, dims, offW):
    total = 0.0
    for l in range(dims.shape[0] - 1):
        o = offW[l]
        for i in range(o, o + dims[l + 1] * dims[l]):
            total += theta[i] * theta[i]
    return total


@njit(**JIT)
def forward_into(Xk, dims, codes, slope, theta, offW, offb, acts, aoff, keep_prob, seed, step):
    """Forward pass of a batch ``Xk`` (mb, n0); returns A[L] (a view into acts).

    With ``keep_prob < 1`` the hidden activations get inverted dropout with the
    masks of optimizer step ``step``.
    """
    mb = Xk.shape[0]
    L = dims.shape[0] - 1
    W = _matrix(theta, offW[0], dims[1], dims[0])
    A = _matrix(acts, aoff[0], dims[1], mb)
    dropout = keep_prob < 1.0
    inv_keep = cast_like(1.0 / keep_prob, slope)
    np.dot(W, Xk.T, A)
    bias_activation(A, _column(theta, offb[0], dims[1]), codes[0], slope, A)
    for l in range(1, L):
        if dropout:
            apply_mask(A, layer_key(seed, step, l), keep_prob, inv_keep)
        A_prev = A
        W = _matrix(theta, offW[l], dims[l + 1], dims[l])
        A = _matrix(acts, aoff[l], dims[l + 1], mb)
        np.dot(W, A_prev, A)
        bias_activation(A, _column(theta, offb[l], dims[l + 1]), codes[l], slope, A)
    return A


@njit(**JIT)
def loss_and_gradient(Xk, Yk, dims, codes, slope, loss_code, l2, theta, grad,
                      offW, offb, acts, scratch, keep_prob, seed, step):
    """Cost of the batch and its gradient (written into ``grad``).

    Xk (mb, n0), Yk (mb, nL). The cost is the mean loss over the batch plus
    λ/(2 mb) Σ‖W‖²; the gradient includes (λ/mb) W.
    """
    mb = Xk.shape[0]
    L = dims.shape[0] - 1
    aoff = activation_offsets(dims, mb)
    AL = forward_into(Xk, dims, codes, slope, theta, offW, offb, acts, aoff, keep_prob, seed, step)
    cost = cost_sum(AL, Yk.T, loss_code) / mb
    if l2 > 0:
        cost += l2 / (2.0 * mb) * sum_squares_weights(theta, dims, offW)

    inv = cast_like(1.0 / mb, AL[0, 0])
    one = one_like(inv)
    output_delta(AL, Yk.T, inv, AL)          # acts[L] now holds dZ[L] / mb
    dZ = AL
    for l in range(L - 1, 0, -1):
        A_prev = _matrix(acts, aoff[l - 1], dims[l], mb)
        W = _matrix(theta, offW[l], dims[l + 1], dims[l])
        np.dot(dZ, A_prev.T, _matrix(grad, offW[l], dims[l + 1], dims[l]))
        row_sums(dZ, one, _column(grad, offb[l], dims[l + 1]))
        dA = _matrix(scratch, 0, dims[l], mb)
        np.dot(W.T, dZ, dA)
        a_scale = one
        if keep_prob < 1.0:
            # A_prev holds g(Z)·mask/keep_prob: mask dA the same way, and read
            # g(Z) back as A_prev·keep_prob (dropped units have dA = 0 anyway).
            a_scale = cast_like(keep_prob, one)
            apply_mask(dA, layer_key(seed, step, l), keep_prob, cast_like(1.0 / keep_prob, one))
        derivative_from_output(dA, A_prev, codes[l - 1], slope, a_scale, A_prev)
        dZ = A_prev
    np.dot(dZ, Xk, _matrix(grad, offW[0], dims[1], dims[0]))
    row_sums(dZ, one, _column(grad, offb[0], dims[1]))
    if l2 > 0:
        c = cast_like(l2 / mb, inv)
        for l in range(L):
            for i in range(offW[l], offW[l] + dims[l + 1] * dims[l]):
                grad[i] += c * theta[i]
    return cost


@njit(**JIT)
def _all_finite(x):
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    return True


@njit(**JIT)
def train_epoch(X, Y, order, batch_size, dims, codes, slope, loss_code, l2, keep_prob, seed,
                theta, grad, v, s, opt_code, hyper, beta1, beta2, t,
                offW, offb, acts, scratch, Xb, Yb, batch_costs):
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
    gather = order.shape[0] > 0
    for k in range(n_batches):
        start = k * batch_size
        mb = min(batch_size, m - start)
        if gather:
            for j in range(mb):
                Xb[j, :] = X[order[start + j], :]
                Yb[j, :] = Y[order[start + j], :]
            Xk = Xb[:mb]
            Yk = Yb[:mb]
        else:
            Xk = X[start:start + mb]
            Yk = Y[start:start + mb]
        step = t + k + 1
        cost = loss_and_gradient(Xk, Yk, dims, codes, slope, loss_code, l2, theta, grad,
                                 offW, offb, acts, scratch, keep_prob, seed, step)
        batch_costs[k] = cost
        if not np.isfinite(cost) or not _all_finite(grad):
            return k
        hyper[BC1] = 1.0 - beta1 ** step
        hyper[BC2] = 1.0 - beta2 ** step
        apply_update(theta, grad, v, s, opt_code, hyper)
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
        aoff = activation_offsets(dims, mb)
        AL = forward_into(X[start:start + mb], dims, codes, slope, theta, offW, offb, acts, aoff,
                          1.0, 0, 0)
        out[:, start:start + mb] = AL
    return out
