"""Whole-epoch training with every mini-batch split between threads.

The same shares as :func:`.training.train_epoch` (see :mod:`.training`), run by
``parts`` threads at once with single-threaded BLAS: share p takes a block of
the batch's samples through the forward pass and dZ, and a block of each
layer's rows of dW and db. A batch costs ``L + 3`` barriers (forward, one per
layer, L2 and check, update) instead of a fork and join inside every BLAS call,
its products keep their full inner dimension, and no share needs a gradient
buffer of its own (see ``deepnet_fast.threads`` for the measured gain).

:func:`predict_output_threaded` splits a prediction's samples the same way.

Kept apart from :mod:`.training` so that a process that only ever trains
small networks on one thread never loads a ``parallel=True`` kernel or starts
Numba's threading layer.
"""

import numpy as np
from numba import njit, prange

from ._config import JIT
from ._scalars import cast_like
from .training import (
    all_finite,
    backward_share,
    batch_cost,
    forward_share,
    predict_output,
    regularise_share,
    set_bias_correction,
    share,
    update_share,
)

JIT_PARALLEL = dict(JIT, parallel=True)


@njit(**JIT_PARALLEL)
def train_epoch_threaded(X, Y, order, batch_size, dims, codes, slope, loss_code, l2, keep_prob,
                         seed, theta, grad, v, s, opt_code, hyper, beta1, beta2, t,
                         offW, offb, acts, deltas, Xb, Yb, batch_costs, part_loss, part_ok):
    """:func:`.training.train_epoch` on ``acts.shape[0]`` threads.

    ``acts`` and ``deltas`` hold one row per share, each sized for
    ``ceil(batch_size / parts)`` samples; ``part_loss`` (float64) and
    ``part_ok`` (bool) one element per share. Same return value as
    :func:`.training.train_epoch`.
    """
    m = X.shape[0]
    L = dims.shape[0] - 1
    n_batches = (m + batch_size - 1) // batch_size
    for k in range(n_batches):
        start = k * batch_size
        mb = min(batch_size, m - start)
        parts = min(acts.shape[0], mb)
        step = t + k + 1
        for p in prange(parts):
            part_loss[p] = forward_share(p, parts, mb, X, Y, order, start, Xb, Yb, dims, codes,
                                         slope, loss_code, theta, offW, offb, acts, keep_prob,
                                         seed, step)
        for l in range(L, 0, -1):
            for p in prange(parts):
                backward_share(l, p, parts, mb, X, order, start, Xb, dims, codes, slope, theta,
                               grad, offW, offb, acts, deltas, keep_prob, seed, step)
        c = cast_like(l2 / mb, slope)
        for p in prange(parts):
            part_loss[parts + p] = regularise_share(p, parts, theta, grad, dims, offW, c)
            lo, hi = share(p, parts, grad.shape[0])
            part_ok[p] = all_finite(grad[lo:hi])
        cost = batch_cost(part_loss[:parts].sum(), part_loss[parts:2 * parts].sum(), mb, l2)
        batch_costs[k] = cost
        if not np.isfinite(cost) or not part_ok[:parts].all():
            return k
        set_bias_correction(hyper, beta1, beta2, step)
        for p in prange(parts):
            update_share(p, parts, theta, grad, v, s, opt_code, hyper)
    return -1


@njit(**JIT_PARALLEL)
def predict_output_threaded(X, dims, codes, slope, theta, offW, offb, chunk, parts):
    """:func:`.training.predict_output` with the samples split between ``parts``
    threads (each calling BLAS single-threaded, in chunks of ``chunk`` rows)."""
    m = X.shape[0]
    out = np.empty((dims[dims.shape[0] - 1], m), dtype=X.dtype)
    for p in prange(parts):
        lo, hi = share(p, parts, m)
        out[:, lo:hi] = predict_output(X[lo:hi], dims, codes, slope, theta, offW, offb, chunk)
    return out
