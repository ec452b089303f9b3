"""Whole-epoch training with every mini-batch split between threads.

The same shares as :func:`.training.train_epoch` (see :mod:`.training`), run by
``parts`` threads at once with single-threaded BLAS: share p takes a block of
each hidden layer's rows or samples forward (:func:`.training.rows_first`), a
block of the samples at the output layer, and blocks of dW, db and dZ backward.
A batch costs ``2L + 3`` barriers (gather, one per layer forward and backward,
L2 and check, update) instead of a fork and join inside every BLAS call, every
product keeps the whole batch as its inner or outer dimension, and no share
needs a buffer of its own (see ``deepnet_fast.threads`` for the measured gain).

:func:`predict_output_threaded` splits a prediction's samples instead: each
thread runs the one-thread forward pass on its block of samples, with no
barrier at all.

Sparse X (:data:`.sparse.CSR`) takes the same path: the first layer's
products over the nonzeros are split as the dense ones forward (rows or
samples, both race-free) and by rows of dW1 backward.

Kept apart from :mod:`.training` so that a process that only ever trains
small networks on one thread never loads a ``parallel=True`` kernel or starts
Numba's threading layer.
"""

import numpy as np
from numba import njit, prange

from ._config import JIT
from ._scalars import cast_like
from .sparse import input_batch, input_rows, input_T, row_block
from .training import (
    activation,
    all_finite,
    backward_share,
    batch_cost,
    batch_rows,
    begin_batch,
    gather_share,
    hidden_forward_share,
    output_share,
    predict_output,
    regularise_share,
    set_bias_correction,
    share,
    update_share,
)

JIT_PARALLEL = dict(JIT, parallel=True)


@njit(**JIT_PARALLEL)
def train_epoch_threaded(X, Y, w, order, batch_size, theta, v, s, t, net, buf, fit):
    """:func:`.training.train_epoch` on ``parts = buf.part_ok.shape[0]`` threads,
    with the same arguments and return value (``buf.part_loss`` holds three
    elements per share: loss, L2 and metric sums; ``buf.part_ok`` one)."""
    m = input_rows(X)
    L = net.dims.shape[0] - 1
    n_batches = (m + batch_size - 1) // batch_size
    part_loss, part_ok, grad = buf.part_loss, buf.part_ok, buf.grad
    for k in range(n_batches):
        start = k * batch_size
        mb = min(batch_size, m - start)
        parts = min(part_ok.shape[0], mb)
        step = t + k + 1
        for p in prange(parts):
            gather_share(p, parts, mb, X, Y, w, order, start, buf)
        wk, denom = begin_batch(k, w, order, start, mb, buf)
        if denom == 0:
            continue
        Yk = batch_rows(Y, order, start, mb, buf.Yb)
        # Layer 1 apart: its input Xkᵀ may be sparse, of another type than A[l].
        # Each share takes the batch Xk itself: prange cannot hand a named
        # tuple made here (sparse Xk) to its threads, only the arguments.
        if L == 1:
            for p in prange(parts):
                part_loss[p], part_loss[2 * parts + p] = output_share(
                    p, parts, input_T(input_batch(X, order, start, mb, buf)), Yk, wk, theta,
                    net, buf.acts, fit.loss_code, denom)
        else:
            for p in prange(parts):
                hidden_forward_share(1, p, parts, input_T(input_batch(X, order, start, mb, buf)),
                                     theta, net, buf.acts, fit.keep_prob, fit.seed, step)
            for l in range(2, L):
                for p in prange(parts):
                    hidden_forward_share(l, p, parts, activation(l - 1, net.dims, buf.acts, mb),
                                         theta, net, buf.acts, fit.keep_prob, fit.seed, step)
            for p in prange(parts):
                part_loss[p], part_loss[2 * parts + p] = output_share(
                    p, parts, activation(L - 1, net.dims, buf.acts, mb), Yk, wk, theta, net,
                    buf.acts, fit.loss_code, denom)
        for l in range(L, 0, -1):
            for p in prange(parts):
                backward_share(l, p, parts, input_batch(X, order, start, mb, buf), theta, net, buf,
                               fit.keep_prob, fit.seed, step)
        c = cast_like(fit.l2 / denom, net.slope)
        for p in prange(parts):
            part_loss[parts + p] = regularise_share(p, parts, theta, grad, net.dims, net.offW, c)
            lo, hi = share(p, parts, grad.shape[0])
            part_ok[p] = all_finite(grad[lo:hi])
        cost = batch_cost(part_loss[:parts].sum(), part_loss[parts:2 * parts].sum(), denom,
                          fit.l2)
        buf.batch_costs[k] = cost
        buf.batch_metrics[k] = part_loss[2 * parts:3 * parts].sum()
        if not np.isfinite(cost) or not part_ok[:parts].all():
            return k
        set_bias_correction(fit, step)
        for p in prange(parts):
            update_share(p, parts, theta, grad, v, s, fit.opt_code, fit.hyper)
    return -1


@njit(**JIT_PARALLEL)
def predict_output_threaded(X, theta, net, chunk, parts):
    """:func:`.training.predict_output` with the samples split between ``parts``
    threads (each calling BLAS single-threaded, in chunks of ``chunk`` rows)."""
    m = input_rows(X)
    out = np.empty((net.dims[net.dims.shape[0] - 1], m), dtype=theta.dtype)
    for p in prange(parts):
        lo, hi = share(p, parts, m)
        part = predict_output(row_block(X, lo, hi), theta, net, chunk)
        for i in range(part.shape[0]):
            for j in range(hi - lo):
                out[i, lo + j] = part[i, j]
    return out
