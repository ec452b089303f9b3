"""Whole-epoch training with every mini-batch split between threads.

The same shares as :func:`.training.train_epoch` (see :mod:`.training`), run by
``parts`` threads at once with single-threaded BLAS: share p takes a block of
each hidden layer's rows or samples forward (:func:`.training.rows_first`), a
block of the samples at the output layer, and blocks of dW, db and dZ backward.
A batch costs ``2L + 3`` barriers (gather, one per layer forward and backward,
L2 and check, update; ``2L + 1`` for plain gradient descent without L2, whose
backward phase l makes layer l+1's update in its products, see
:mod:`.training`) instead of a fork and join inside every BLAS call, every
product keeps the whole batch as its inner or outer dimension, and no share
needs a buffer of its own (see ``deepnet_fast.threads`` for the measured gain).

:func:`predict_output_threaded` splits a prediction's samples instead: each
thread runs the one-thread forward pass on its block of samples, with no
barrier at all. A prediction of a few rows runs on one thread (see
``deepnet_fast.threads.SINGLE_THREAD_BELOW`` for why not its units).

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
from .sparse import input_batch, input_rows, input_T, row_block, strided
from .training import (
    activation,
    all_finite,
    batch_cost,
    batch_weight_rows,
    begin_batch,
    copy_columns,
    delta_share,
    fused_update,
    gather_share,
    hidden_forward_share,
    output_share,
    predict_output,
    regularise_share,
    set_bias_correction,
    share,
    step_target,
    targets_share,
    update_share,
    weight_share,
)

JIT_PARALLEL = dict(JIT, parallel=True)

# The phases of a batch, in order; a barrier (the end of a prange) follows each.
GATHER, FORWARD, OUTPUT, BACKWARD, REGULARISE, UPDATE = range(6)


@njit(**JIT)
def run_phase(phase, l, p, parts, X, Y, w, order, start, mb, denom, theta, v, s, net, buf, fit,
              step):
    """Share p of ``parts`` of one phase of a batch: gathering its rows, layer
    l's forward or backward step, the output layer, L2 and the finiteness
    check, or the update. Writes the share's loss, L2 and metric sums into
    ``buf.part_loss`` and its check into ``buf.part_ok``."""
    # One function for every phase, called from the epoch's one prange: each
    # prange compiles into a function of its own that holds a copy of all the
    # code it calls, so seven loops compiled the kernels seven times over.
    part_loss = buf.part_loss
    if phase == GATHER:
        gather_share(p, parts, mb, X, w, order, start, buf)
        return
    Xk = input_batch(X, order, start, mb, buf)
    if phase == FORWARD:
        if l == 1:
            hidden_forward_share(l, p, parts, input_T(Xk), theta, net, buf.acts, fit.keep_prob,
                                 fit.seed, step)
        else:
            hidden_forward_share(l, p, parts, strided(activation(l - 1, net.dims, buf.acts, mb)),
                                 theta, net, buf.acts, fit.keep_prob, fit.seed, step)
    elif phase == OUTPUT:
        # Each thread copies the target columns of its own share.
        YT = targets_share(p, parts, Y, order, start, mb, buf.Yb)
        wk = batch_weight_rows(w, order, start, mb, buf.wb)
        if l == 1:
            part_loss[p], part_loss[2 * parts + p] = output_share(
                p, parts, input_T(Xk), YT, wk, theta, net, buf.acts, fit.loss_code, denom)
        else:
            part_loss[p], part_loss[2 * parts + p] = output_share(
                p, parts, strided(activation(l - 1, net.dims, buf.acts, mb)), YT, wk, theta, net,
                buf.acts, fit.loss_code, denom)
    elif phase == BACKWARD:
        if l > 1:       # nobody needs dA[0]
            delta_share(l, p, parts, theta, net, buf, mb, fit.keep_prob, fit.seed, step)
        fused = fused_update(fit)
        out, alpha, beta = step_target(fused, theta, buf.grad, fit.hyper)
        first, last = stepped_layers(l, net.dims.shape[0] - 1, fused)
        for j in range(first, last + 1):    # one call site: one inlined copy
            weight_share(j, p, parts, Xk, net, buf, out, alpha, beta)
    elif phase == REGULARISE:
        grad = buf.grad
        c = cast_like(fit.l2 / denom, net.slope)
        part_loss[parts + p] = regularise_share(p, parts, theta, grad, net.dims, net.offW, c)
        lo, hi = share(p, parts, grad.shape[0])
        buf.part_ok[p] = all_finite(grad[lo:hi])
    else:
        update_share(p, parts, theta, buf.grad, v, s, fit.opt_code, fit.hyper)


@njit(**JIT)
def stepped_layers(l, L, fused):
    """The layers (first, last) whose gradient or step backward phase l of an
    L-layer network writes: layer l's gradient beside dZ[l-1]; fused, layer
    l+1's step, whose W dZ[l-1] no longer reads (none at l = L), and at l = 1
    layer 1's too."""
    if not fused:
        return l, l
    if l == 1:
        return 1, min(2, L)
    return l + 1, min(l + 1, L)


@njit(**JIT)
def batch_done(k, parts, denom, squares, fit, buf):
    """Records batch k's cost and metric from the shares' sums (``squares``:
    Σ‖W‖² for L2); returns whether the cost is finite."""
    part_loss = buf.part_loss
    cost = batch_cost(part_loss[:parts].sum(), squares, denom, fit.l2)
    buf.batch_costs[k] = cost
    buf.batch_metrics[k] = part_loss[2 * parts:3 * parts].sum()
    return np.isfinite(cost)


@njit(**JIT)
def phase_of(i, L):
    """Phase i of a batch of an L-layer network, and its layer: gather, the
    hidden layers forward, the output layer, every layer backward, L2 and the
    check, the update (``2L + 3`` phases; the first ``2L + 1`` for a fused
    update)."""
    if i == 0:
        return GATHER, 0
    if i < L:
        return FORWARD, i
    if i == L:
        return OUTPUT, L
    if i <= 2 * L:
        return BACKWARD, 2 * L + 1 - i
    if i == 2 * L + 1:
        return REGULARISE, 0
    return UPDATE, 0


@njit(**JIT_PARALLEL)
def train_epoch_threaded(X, Y, w, order, batch_size, theta, v, s, t, net, buf, fit):
    """:func:`.training.train_epoch` on ``parts = buf.part_ok.shape[0]`` threads,
    with the same arguments and return value (``buf.part_loss`` holds three
    elements per share: loss, L2 and metric sums; ``buf.part_ok`` one)."""
    m = input_rows(X)
    L = net.dims.shape[0] - 1
    n_batches = (m + batch_size - 1) // batch_size
    part_loss, part_ok = buf.part_loss, buf.part_ok
    fused = fused_update(fit)
    n_phases = 2 * L + 1 if fused else 2 * L + 3
    for k in range(n_batches):
        start = k * batch_size
        mb = min(batch_size, m - start)
        parts = min(part_ok.shape[0], mb)
        step = t + k + 1
        denom = 1.0
        for i in range(n_phases):
            phase, l = phase_of(i, L)
            if phase == GATHER and order.shape[0] == 0:
                continue      # the batch is a block of X, read in place
            if i == 1:
                denom = begin_batch(k, w, order, start, mb, buf)[1]
                if denom == 0:
                    break     # weights summing to 0: no update
            elif phase == UPDATE:
                if not batch_done(k, parts, denom, part_loss[parts:2 * parts].sum(), fit, buf) \
                        or not part_ok[:parts].all():
                    return k
                set_bias_correction(fit, step)
            elif fused and i == L + 1:
                # The first backward phase: the cost is known, the update not made.
                if not batch_done(k, parts, denom, 0.0, fit, buf):
                    return k
            for p in prange(parts):
                run_phase(phase, l, np.int64(p), parts, X, Y, w, order, start, mb, denom, theta,
                          v, s, net, buf, fit, step)
    return -1


@njit(**JIT_PARALLEL)
def predict_output_threaded(X, theta, net, chunk, parts):
    """:func:`.training.predict_output` with the samples split between ``parts``
    threads (each calling BLAS single-threaded, in chunks of ``chunk`` rows)."""
    m = input_rows(X)
    out = np.empty((net.dims[net.dims.shape[0] - 1], m), dtype=theta.dtype)
    for p in prange(parts):
        lo, hi = share(p, parts, m)
        copy_columns(predict_output(row_block(X, lo, hi), theta, net, chunk), out, lo)
    return out
