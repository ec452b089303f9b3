"""Whole-epoch training and lean prediction on flat parameter vectors.

One call runs a whole epoch: for every mini-batch it gathers the rows, runs the
forward pass, the cost, the backward pass and the optimizer update, with all
buffers preallocated by the caller once per ``fit``. Nothing returns to Python
between mini-batches.

The work of a batch is written as *shares*, so that the threaded epoch
(:mod:`.training_threaded`) and this single-threaded one run the same code.
Share p of ``parts`` owns a block of each hidden layer's rows or samples in
the forward pass (:func:`rows_first`), a block of the samples in the output
layer (softmax needs whole columns), a block of each layer's dW and db (one
product over the whole batch) and a block of each dZ[l-1]. No share writes what
another reads in the same phase, so the phases need no locks, only a barrier
between them. Here one thread takes everything: the functions that only split
(``hidden_forward_share``, ``output_share``, ``delta_share``) have a whole-batch
twin (``hidden_layer``, ``output_layer``, ``layer_delta``) that computes the
same operands and calls the same block function. A ``parts is None`` branch
would do it with one function, but Numba inlines every branch before it
prunes the dead ones: the split branches then cost the one-thread kernels
~0.6 s of compile (and the prediction kernel ~0.4 s) for code they never run.

Arguments
---------
The kernels take their many arrays in three named tuples, built once per
``fit`` by the caller. Numba types a named tuple by its fields' types (and
caches the kernels compiled for it on disk like any other signature); inside
compiled code a field is a plain value, so the tuples cost nothing per batch,
and the dispatch of an epoch measured the same as with the arrays one by one:

- :data:`Network`: what the network computes (``dims``, ``codes``, ``offW``,
  ``offb``, ``slope``);
- :data:`Buffers`: the gradient and the work arrays of a batch;
- :data:`Settings`: the fit's loss, regularisation, dropout and optimizer.

The parameters ``theta`` and the moments ``v``, ``s`` travel on their own: a
fit may swap them for a snapshot between epochs.

Reference counts
----------------
:func:`train_epoch` borrows its arguments (:mod:`._borrow`): the views of a
batch then skip Numba's atomic reference counts, 37% of a digits-small epoch.

Layouts
-------
- ``X`` (m, n0) and ``Y`` (m, nL): row per sample, as users hold their data;
  a batch ``Xk`` (mb, n0) enters the first layer as ``Xk.T``, which BLAS reads
  transposed at no cost. ``X`` may also be sparse rows (:data:`.sparse.CSR`):
  the same kernels then compile with the first layer's products over its
  nonzeros (:mod:`.sparse` holds the operations that differ). A batch's
  targets are copied a column per sample (YT (nL, mb) in ``buf.Yb``, as
  A[L]), so that the output layer's loops run along contiguous rows.
- ``theta``: W1, b1, W2, b2, ... flattened into one vector (``offW``/``offb``
  give where each starts); ``grad``, ``v``, ``s`` share that layout.
- ``acts``: the activations A[l] (n[l], mb) of the batch, every layer back to
  back; dZ[L] overwrites A[L]. ``deltas``: three buffers of the widest hidden
  layer, dZ[l] in buffer ``l % 3``, so that dZ[l-1] is written while other
  shares still read dZ[l] (for it) and dZ[l+1] (for layer l+1's update, see
  below). :func:`activation_sizes` gives both sizes.
- The 1/mb of the linear backward step is folded into dZ[L]; the chain rule
  carries it down to every layer. With sample weights ``w`` (m,) (empty: none)
  it is w_j/Σw over the batch instead, as scikit-learn weighs its MLP's loss;
  a batch whose weights sum to 0 is skipped.

Plain gradient descent
----------------------
With the ``gd`` optimizer and no L2, a batch makes no gradient: the products
that would write dW[l] = dZ[l] A[l-1]ᵀ into ``buf.grad`` write W[l] - α dW[l]
into ``theta`` (``?gemm`` with alpha -α, beta 1; db likewise), once dZ[l-1]
has read W[l] (:func:`fused_update`). That saves the gradient's write and its
reads by the finiteness check and the update, OpenBLAS's zeroing pass over C
for beta 0, and in the threaded epoch two of its ``2L + 3`` barriers. Such a
batch is refused on its cost alone, checked before its backward pass makes
the update; a gradient that overflows with a finite cost leaves parameters that
are not finite, which the next batch's cost or the caller's check of the
parameters finds (``TrainingSession`` then restores its last good epoch).
"""

from collections import namedtuple

import numpy as np
from numba import njit

from ._borrow import borrow, matrix_view, returns_its_argument
from ._config import INLINE, JIT
from ._scalars import cast_like, one_like, zero_like
from .activations import SOFTMAX, bias_activation, scale_by_derivative
from .blas import gemm
from .dropout import apply_mask, layer_key
from .linear import row_sums
from .losses import cost_sum, metric_sum, output_delta, softmax_output
from .sparse import (
    column_block,
    gather_input,
    input_batch,
    input_rows,
    input_T,
    input_weight_gradient,
    is_sparse,
    n_columns,
    predict_product,
    product,
    row_block,
    strided,
)
from .updates import BC1, BC2, GD, LR, apply_update

Network = namedtuple("Network", "dims codes offW offb slope")
Network.__doc__ = """The network as the kernels see it.

dims : int64 array (L+1,)
    Layer sizes n0, n1, ..., nL.
codes : int64 array (L,)
    Activation code of each layer (:data:`.activations.CODES`).
offW, offb : int64 arrays (L,)
    Where W[l] and b[l] start in ``theta``.
slope : float32 or float64
    Leaky ReLU's negative slope, in the parameters' dtype.
"""

Buffers = namedtuple("Buffers", "grad acts deltas Xb Xb_indices Xb_indptr Yb wb batch_costs "
                                 "batch_weights batch_metrics part_loss part_ok")
Buffers.__doc__ = """The work arrays of one fit, allocated once by the caller.

grad : like ``theta``
    The batch's gradient.
acts, deltas : 1-d, the parameters' dtype
    Activations and dZ buffers of a batch (:func:`activation_sizes`).
Xb, wb : (batch_size, n0), (batch_size,)
    The gathered rows and sample weights of a batch (unused when the epoch
    has no ``order``; ``wb`` also when it has no weights).
Yb : (nL · batch_size,)
    The batch's targets, a column per sample as A[L] has them (an (nL, mb)
    C-contiguous matrix in its first nL·mb entries, :func:`targets_share`),
    so that the output layer's loops run along contiguous rows of both.
Xb_indices, Xb_indptr : int, (nnz_max,), (batch_size + 1,)
    For sparse ``X`` (:data:`.sparse.CSR`): with ``Xb`` holding the values,
    the gathered batch as CSR, sized for the most nonzeros a batch can hold.
    Empty for dense ``X``.
batch_costs, batch_weights : float64 (n_batches,)
    Receive each batch's cost and what its loss was divided by (its number of
    samples, or the sum of its sample weights): the epoch's cost is their
    weighted mean.
batch_metrics : float64 (n_batches,)
    Receives each batch's :func:`.losses.metric_sum` (before its update), from
    which the caller makes the epoch's training accuracy or R².
part_loss, part_ok : float64 (3·parts,), bool (parts,)
    Each thread's partial sums and finiteness check (threaded epoch only).
"""

Settings = namedtuple("Settings", "loss_code l2 keep_prob seed opt_code hyper beta1 beta2")
Settings.__doc__ = """The fit's hyperparameters.

loss_code : int
    The output activation's code, which picks its canonical loss (:mod:`.losses`).
l2, keep_prob : float
    L2 strength λ and dropout's keep probability (1: no dropout).
seed : int
    Dropout's stream seed.
opt_code : int
    Optimizer code (``deepnet_fast.registry.OPTIMIZERS[name].code``).
hyper : array of the parameters' dtype
    The optimizer's constants (:func:`.updates.make_hyper`), refilled by the
    caller before an epoch (the learning rate may change); the kernels set
    the bias corrections of every step.
beta1, beta2 : float
    Adam's decay rates, in float64 for the bias corrections.
"""


@returns_its_argument
@njit(**JIT)
def borrowed_network(net):
    """``net`` with its arrays borrowed (:func:`._borrow.borrow`)."""
    return Network(borrow(net.dims), borrow(net.codes), borrow(net.offW), borrow(net.offb),
                   net.slope)


@returns_its_argument
@njit(**JIT)
def borrowed_buffers(buf):
    """``buf`` with its arrays borrowed (:func:`._borrow.borrow`)."""
    return Buffers(borrow(buf.grad), borrow(buf.acts), borrow(buf.deltas), borrow(buf.Xb),
                   borrow(buf.Xb_indices), borrow(buf.Xb_indptr), borrow(buf.Yb), borrow(buf.wb),
                   borrow(buf.batch_costs), borrow(buf.batch_weights), borrow(buf.batch_metrics),
                   borrow(buf.part_loss), borrow(buf.part_ok))


@returns_its_argument
@njit(**JIT)
def borrowed_settings(fit):
    """``fit`` with its array borrowed (:func:`._borrow.borrow`)."""
    return Settings(fit.loss_code, fit.l2, fit.keep_prob, fit.seed, fit.opt_code,
                    borrow(fit.hyper), fit.beta1, fit.beta2)


@njit(**JIT)
def _matrix(flat, offset, rows, cols):
    """flat[offset:offset + rows·cols] as a (rows, cols) C-contiguous view;
    IndexError when that does not lie inside ``flat``."""
    if offset < 0 or rows < 0 or cols < 0 or offset + rows * cols > flat.shape[0]:
        raise IndexError("a matrix view does not fit in its buffer")
    return matrix_view(flat, offset, rows, cols)


@njit(**JIT)
def _column(flat, offset, rows):
    """flat[offset:offset + rows] as a (rows, 1) view (see :func:`_matrix`)."""
    return _matrix(flat, offset, rows, np.int64(1))


@njit(**JIT)
def share(p, parts, n):
    """[lo, hi) of share p when n items are split into ``parts`` near-equal blocks
    (``parts=None``: the one-thread epoch, one share of everything)."""
    if parts is None:
        return np.int64(0), np.int64(n)
    return p * n // parts, (p + 1) * n // parts


def activation_sizes(dims, mb):
    """Lengths of the ``acts`` and ``deltas`` buffers for batches of ``mb``
    samples (plain Python, for the callers that allocate them)."""
    return sum(dims[1:]) * mb, 3 * max(dims[1:-1], default=1) * mb


@njit(**JIT)
def activation(l, dims, acts, mb):
    """A[l] (n[l], mb) of the batch, l ≥ 1: the layers lie back to back in ``acts``."""
    off = 0
    for k in range(1, l):
        off += dims[k] * mb
    return _matrix(acts, off, dims[l], mb)


@njit(**JIT)
def delta(l, dims, acts, deltas, mb):
    """dZ[l] (n[l], mb) of the batch: in place of A[L] for the output layer, else
    in delta buffer ``l % 3``."""
    if l == dims.shape[0] - 1:
        return activation(l, dims, acts, mb)
    return _matrix(deltas, (l % 3) * (deltas.shape[0] // 3), dims[l], mb)


@njit(**JIT)
def rows_first(n_rows, mb, parts):
    """Whether the threads split a layer of ``n_rows`` units by rows (else by
    samples); one share is the whole layer either way.

    A thread reads its part of the split operand and all of the other: by
    rows, 1/parts of W and all of A[l-1]; by samples, all of W and 1/parts of
    A[l-1] (likewise W and dZ for dA). Rows win when the layer has more units
    than the batch has samples. Measured on these machines (two threads, MKL)
    against splitting the samples: the forward products of the benchmark
    networks 0–11% faster, dA 1–8%; but course-cat's epoch 15–20% slower with
    its first layer (20 units, 209 samples of 12,288 inputs) split by rows. A
    block of rows is also contiguous, which lets the activation loops
    vectorise; a block of samples is not.
    """
    return parts == 1 or n_rows >= mb


@njit(**INLINE)
def layer_forward(A, W, A_prev, b, code, slope, key, keep_prob, row0, col0, width):
    """A = g(W A_prev + b), then inverted dropout with ``keep_prob < 1`` (A is
    the block from row ``row0``, column ``col0`` of a layer ``width`` wide)."""
    product(one_like(slope), W, A_prev, A)
    bias_activation(A, b, code, slope, A)
    if keep_prob < 1.0:
        apply_mask(A, key, keep_prob, cast_like(1.0 / keep_prob, slope), row0, col0, width)


@njit(**INLINE)
def hidden_layer(l, A_prev, theta, net, acts, keep_prob, seed, step):
    """Hidden layer l's A[l] = g(W[l] A[l-1] + b[l]) whole, on one thread, with
    the dropout masks of optimizer step ``step`` when ``keep_prob < 1``."""
    dims = net.dims
    n, mb = dims[l], n_columns(A_prev)
    zero = np.int64(0)
    layer_forward(activation(l, dims, acts, mb), _matrix(theta, net.offW[l - 1], n, dims[l - 1]),
                  A_prev, _column(theta, net.offb[l - 1], n), net.codes[l - 1], net.slope,
                  layer_key(seed, step, l), keep_prob, zero, zero, mb)


@njit(**INLINE)
def hidden_forward_share(l, p, parts, A_prev, theta, net, acts, keep_prob, seed, step):
    """Share p of ``parts`` (threads) of :func:`hidden_layer`: a block of rows
    or of samples (:func:`rows_first`)."""
    dims = net.dims
    n, mb = dims[l], n_columns(A_prev)
    A = activation(l, dims, acts, mb)
    W = _matrix(theta, net.offW[l - 1], n, dims[l - 1])
    b = _column(theta, net.offb[l - 1], n)
    code = net.codes[l - 1]
    key = layer_key(seed, step, l)
    # Two calls, not one on a block picked by the branch: a block of rows
    # keeps the C-contiguous type the vectorised loops need.
    if rows_first(n, mb, parts):
        r0, r1 = share(p, parts, n)
        layer_forward(A[r0:r1], W[r0:r1], A_prev, b[r0:r1], code, net.slope, key, keep_prob,
                      r0, np.int64(0), mb)
    else:
        lo, hi = share(p, parts, mb)
        layer_forward(A[:, lo:hi], W, column_block(A_prev, lo, hi), b, code, net.slope, key,
                      keep_prob, np.int64(0), lo, mb)


@njit(**INLINE)
def hidden_forward(Xk, theta, net, acts, keep_prob, seed, step):
    """Every hidden layer of a batch ``Xk`` (mb, n0) on one thread, for a
    network with at least one; returns A[L-1]."""
    mb = input_rows(Xk)
    # Layer 1 apart: its input Xkᵀ may be sparse, of another type than A[l].
    # Indices as int64 values, not literals: a literal argument compiles a
    # specialisation of its own (132 compiles for a first fit instead of ~80).
    hidden_layer(np.int64(1), input_T(Xk), theta, net, acts, keep_prob, seed, step)
    return later_hidden_layers(mb, theta, net, acts, keep_prob, seed, step)


@njit(**INLINE)
def later_hidden_layers(mb, theta, net, acts, keep_prob, seed, step):
    """Hidden layers 2 to L-1 of a batch of ``mb`` samples on one thread, after
    layer 1; returns A[L-1]."""
    for l in range(2, net.dims.shape[0] - 1):
        A_prev = strided(activation(l - 1, net.dims, acts, mb))
        hidden_layer(l, A_prev, theta, net, acts, keep_prob, seed, step)
    return strided(activation(net.dims.shape[0] - 2, net.dims, acts, mb))


@njit(**INLINE)
def output_forward(A_prev, theta, net, acts):
    """Output layer's A[L] = g(W[L] A[L-1] + b[L]) on one thread, no dropout;
    returns it (a view into ``acts``)."""
    dims = net.dims
    L = dims.shape[0] - 1
    AL = activation(L, dims, acts, n_columns(A_prev))
    layer_forward(AL, _matrix(theta, net.offW[L - 1], dims[L], dims[L - 1]), A_prev,
                  _column(theta, net.offb[L - 1], dims[L]), net.codes[L - 1], net.slope,
                  np.uint64(0), 1.0, np.int64(0), np.int64(0), np.int64(0))
    return AL


@njit(**INLINE)
def forward_into(Xk, theta, net, acts):
    """Forward pass of a batch ``Xk`` (mb, n0) on one thread, no dropout;
    returns A[L] (a view into ``acts``).

    A prediction's, so hidden layer 1 is computed here rather than by
    :func:`hidden_forward`: a one-row product goes through
    :func:`.sparse.predict_product`, which the training kernels do not compile.
    """
    dims = net.dims
    if dims.shape[0] == 2:
        return output_forward(input_T(Xk), theta, net, acts)
    mb = input_rows(Xk)
    A = activation(1, dims, acts, mb)
    predict_product(one_like(net.slope), _matrix(theta, net.offW[0], dims[1], dims[0]),
                    input_T(Xk), A)
    bias_activation(A, _column(theta, net.offb[0], dims[1]), net.codes[0], net.slope, A)
    return output_forward(later_hidden_layers(mb, theta, net, acts, 1.0, np.int64(0),
                                              np.int64(0)), theta, net, acts)


@njit(**INLINE)
def gather_share(p, parts, mb, X, w, order, start, buf):
    """Copies share p of the batch's rows (and weights) into ``buf.Xb``/``wb``
    (when the epoch has an ``order``; without one the batch is a block of X's
    rows, read in place)."""
    if order.shape[0] > 0:
        lo, hi = share(p, parts, mb)
        gather_input(lo, hi, X, order, start, buf)
        if w.shape[0] > 0:
            for j in range(lo, hi):
                buf.wb[j] = w[order[start + j]]


@njit(**INLINE)
def targets_share(p, parts, Y, order, start, mb, Yb):
    """The batch's targets YT (nL, mb), a column per sample, in ``Yb``; share p
    of its columns copied there from the rows of Y (in ``order`` when the
    epoch has one). Every batch is copied: Y's rows as they are would give
    the output layer a transposed view, whose strided loops do not vectorise
    (the cost took 12% of a digits-small epoch that way)."""
    nL = Y.shape[1]
    YT = _matrix(Yb, 0, nL, mb)
    lo, hi = share(p, parts, mb)
    shuffled = order.shape[0] > 0
    for j in range(lo, hi):
        row = order[start + j] if shuffled else start + j
        for i in range(nL):
            YT[i, j] = Y[row, i]
    return YT


@njit(**JIT)
def batch_rows(X, order, start, mb, Xb):
    """The batch's rows of dense X (or its weights): gathered into ``Xb``, or a block of X."""
    if order.shape[0] > 0:
        return Xb[:mb]
    return X[start:start + mb]


@njit(**JIT)
def batch_weight_rows(w, order, start, mb, wb):
    """The batch's sample weights: gathered into ``wb``, a block of ``w``, or
    ``w`` itself when it is empty (no weights)."""
    if w.shape[0] == 0:
        return w
    return batch_rows(w, order, start, mb, wb)


@njit(**JIT)
def batch_denominator(wk, mb):
    """What a batch's loss is divided by: its number of samples, or the sum of
    its sample weights."""
    if wk.shape[0] == 0:
        return float(mb)
    total = 0.0
    for j in range(wk.shape[0]):
        total += wk[j]
    return total


@njit(**INLINE)
def output_block(A, W, A_prev, b, Y, w, code, slope, loss_code, scale):
    """Output layer A = g(W A_prev + b) on a block of samples, its (weighted)
    loss sum and metric sum (returned) and dZ = scale · w · (A - Y) in place of
    A (see :func:`.losses.output_delta`)."""
    if loss_code == SOFTMAX:
        product(one_like(slope), W, A_prev, A)
        return softmax_output(A, b, Y, w, scale)
    zero = np.int64(0)
    layer_forward(A, W, A_prev, b, code, slope, np.uint64(0), 1.0, zero, zero, zero)
    loss = cost_sum(A, Y, loss_code, w)
    metric = metric_sum(A, Y, w, loss_code)
    output_delta(A, Y, scale, A, w, code, slope, loss_code)
    return loss, metric


@njit(**INLINE)
def output_layer(A_prev, YT, wk, theta, net, acts, loss_code, denom):
    """The output layer of a whole batch on one thread, targets YT (nL, mb):
    returns its loss and metric sums and leaves dZ[L]/denom in place of A[L]."""
    dims = net.dims
    L = dims.shape[0] - 1
    slope = net.slope
    return output_block(activation(L, dims, acts, YT.shape[1]),
                        _matrix(theta, net.offW[L - 1], dims[L], dims[L - 1]), A_prev,
                        _column(theta, net.offb[L - 1], dims[L]), YT, wk, net.codes[L - 1],
                        slope, loss_code, cast_like(1.0 / denom, slope))


@njit(**INLINE)
def output_share(p, parts, A_prev, YT, wk, theta, net, acts, loss_code, denom):
    """Share p of ``parts`` (threads) of :func:`output_layer`: a block of the
    samples (softmax needs whole columns)."""
    dims = net.dims
    L = dims.shape[0] - 1
    mb = YT.shape[1]
    A = activation(L, dims, acts, mb)
    W = _matrix(theta, net.offW[L - 1], dims[L], dims[L - 1])
    b = _column(theta, net.offb[L - 1], dims[L])
    code, slope = net.codes[L - 1], net.slope
    scale = cast_like(1.0 / denom, slope)
    lo, hi = share(p, parts, mb)
    w_share = wk[lo:hi] if wk.shape[0] > 0 else wk
    return output_block(A[:, lo:hi], W, column_block(A_prev, lo, hi), b, YT[:, lo:hi], w_share,
                        code, slope, loss_code, scale)


@njit(**INLINE)
def delta_block(dA, Wt, dZ, A_prev, code, slope, key, keep_prob, row0, col0, width):
    """dA = Wᵀ dZ · g'(Z[l-1]) on a block (see :func:`layer_forward` for the
    dropout arguments); A_prev is the same block of A[l-1]."""
    one = one_like(slope)
    gemm(one, Wt, dZ, one - one, dA)
    a_scale = one
    if keep_prob < 1.0:
        # A_prev holds g(Z)·mask/keep_prob: mask dA the same way, and read g(Z)
        # back as A_prev·keep_prob (dropped units have dA = 0 anyway).
        a_scale = cast_like(keep_prob, one)
        apply_mask(dA, key, keep_prob, cast_like(1.0 / keep_prob, one), row0, col0, width)
    scale_by_derivative(dA, A_prev, code, slope, a_scale)


@njit(**INLINE)
def weight_share(l, p, parts, Xk, net, buf, out, alpha, beta):
    """Share p of layer l's (1-based) dW[l] = dZ[l] A[l-1]ᵀ and db[l] = Σ_j dZ[l]
    for the batch ``Xk``, written as ``alpha · d + beta · out`` into the flat
    vector ``out`` at W[l]'s and b[l]'s place (``parts`` None: all of them, on
    one thread): the gradient (``buf.grad``, 1, 0), or plain gradient
    descent's step on the parameters (``theta``, -α, 1; see the module
    docstring).

    A block of W[l]'s rows, or of its columns where the layer has more
    inputs than units (the thread then reads 1/parts of the larger operand;
    rows always for sparse X, whose columns are not contiguous), and rows
    ``share(p, parts, n[l])`` of b[l]. Every product spans the whole batch as
    its inner dimension.
    """
    dims, acts = net.dims, buf.acts
    mb = input_rows(Xk)
    n, n_prev = dims[l], dims[l - 1]
    dZ = delta(l, dims, acts, buf.deltas, mb)
    W = _matrix(out, net.offW[l - 1], n, n_prev)
    r0, r1, c0, c1 = 0, n, 0, n_prev
    if n >= n_prev or (l == 1 and is_sparse(Xk)):
        r0, r1 = share(p, parts, n)
    else:
        c0, c1 = share(p, parts, n_prev)
    if l == 1:
        input_weight_gradient(alpha, beta, dZ[r0:r1], Xk, c0, c1, W[r0:r1, c0:c1])
    else:
        gemm(alpha, dZ[r0:r1], activation(l - 1, dims, acts, mb)[c0:c1].T, beta,
             W[r0:r1, c0:c1])
    b0, b1 = share(p, parts, n)
    row_sums(dZ[b0:b1], alpha, beta, _column(out, net.offb[l - 1], n)[b0:b1])


@njit(**INLINE)
def fused_update(fit):
    """Whether the fit's batches update W and b in their products (plain
    gradient descent without L2: see the module docstring)."""
    return fit.opt_code == GD and fit.l2 == 0


@njit(**INLINE)
def step_target(fused, theta, grad, hyper):
    """Where and how the backward pass writes layer steps (:func:`weight_share`):
    ``(theta, -α, 1)`` when ``fused``, else ``(grad, 1, 0)``."""
    # Inlined: a compiled call returning ``theta`` would hide from Numba's
    # dead-code elimination that writes through it reach an argument (see
    # ._borrow).
    one = one_like(hyper[0])
    if fused:
        return theta, -hyper[LR], one
    return grad, one, one - one


@njit(**INLINE)
def layer_delta(l, theta, net, buf, mb, keep_prob, seed, step):
    """dZ[l-1] = W[l]ᵀ dZ[l] · g'(Z[l-1]) of a whole batch on one thread (l > 1)."""
    dims, acts = net.dims, buf.acts
    delta_block(delta(l - 1, dims, acts, buf.deltas, mb),
                _matrix(theta, net.offW[l - 1], dims[l], dims[l - 1]).T,
                delta(l, dims, acts, buf.deltas, mb), activation(l - 1, dims, acts, mb),
                net.codes[l - 2], net.slope, layer_key(seed, step, l - 1), keep_prob,
                np.int64(0), np.int64(0), mb)


@njit(**INLINE)
def delta_share(l, p, parts, theta, net, buf, mb, keep_prob, seed, step):
    """Share p of ``parts`` (threads) of :func:`layer_delta`: a block of rows
    or of samples (see :func:`rows_first`)."""
    dims, acts, slope = net.dims, buf.acts, net.slope
    n, n_prev = dims[l], dims[l - 1]
    dZ = delta(l, dims, acts, buf.deltas, mb)
    W = _matrix(theta, net.offW[l - 1], n, n_prev)
    dA = delta(l - 1, dims, acts, buf.deltas, mb)
    A_prev = activation(l - 1, dims, acts, mb)
    code = net.codes[l - 2]
    key = layer_key(seed, step, l - 1)
    if rows_first(n_prev, mb, parts):
        s0, s1 = share(p, parts, n_prev)
        delta_block(dA[s0:s1], W[:, s0:s1].T, dZ, A_prev[s0:s1], code, slope, key, keep_prob,
                    s0, np.int64(0), mb)
    else:
        lo, hi = share(p, parts, mb)
        delta_block(dA[:, lo:hi], W.T, dZ[:, lo:hi], A_prev[:, lo:hi], code, slope, key,
                    keep_prob, np.int64(0), lo, mb)


@njit(**INLINE)
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
            # Squared in float64, as the reference: a float32 square overflows
            # from |W| ~ 1.8e19.
            w = float(theta[i])
            total += w * w
    return total


@njit(**JIT)
def all_within(index, n):
    """Whether every element of the 1-D integer ``index`` lies in [0, n)."""
    # One pass of min and max, no early exit: it vectorises.
    if index.shape[0] == 0:
        return True
    lo = hi = index[0]
    for i in range(index.shape[0]):
        lo = min(lo, index[i])
        hi = max(hi, index[i])
    return lo >= 0 and hi < n


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


@njit(**INLINE)
def update_share(p, parts, theta, grad, v, s, opt_code, hyper):
    """The optimizer update of share p of the parameter vector (v, s may be empty)."""
    lo, hi = share(p, parts, theta.shape[0])
    apply_update(theta[lo:hi], grad[lo:hi], v[lo:hi], s[lo:hi], opt_code, hyper)


@njit(**JIT)
def batch_cost(loss, sum_squares, denom, l2):
    """Mean loss of a batch plus λ/(2 denom) Σ‖W‖² (denom: its number of
    samples, or the sum of its sample weights)."""
    cost = loss / denom
    if l2 > 0:
        cost += l2 / (2.0 * denom) * sum_squares
    return cost


@njit(**JIT)
def set_bias_correction(fit, step):
    """Adam's 1 - β1ᵗ and 1 - β2ᵗ of optimizer step ``step`` into ``fit.hyper``."""
    fit.hyper[BC1] = 1.0 - fit.beta1 ** step
    fit.hyper[BC2] = 1.0 - fit.beta2 ** step


@njit(**INLINE)
def begin_batch(k, w, order, start, mb, buf):
    """Batch k's sample weights and what its loss is divided by (recorded in
    ``buf.batch_weights``), its cost and metric zeroed: a batch whose weights
    sum to 0 stays so, skipped."""
    wk = batch_weight_rows(w, order, start, mb, buf.wb)
    denom = batch_denominator(wk, mb)
    buf.batch_weights[k] = denom
    buf.batch_costs[k] = 0.0
    buf.batch_metrics[k] = 0.0
    return wk, denom


@njit(**INLINE)
def batch_step(Xk, YT, wk, denom, theta, net, buf, fit, step, fused):
    """Cost and metric sum of one batch ``Xk`` (rows), ``YT`` (a column per
    sample) with sample weights ``wk``
    (empty: none), on one thread; its gradient into ``buf.grad``, or with
    ``fused`` (:func:`fused_update`) its plain gradient-descent step into
    ``theta``."""
    if net.dims.shape[0] == 2:
        loss, metric = output_layer(input_T(Xk), YT, wk, theta, net, buf.acts, fit.loss_code,
                                    denom)
    else:
        A_prev = hidden_forward(Xk, theta, net, buf.acts, fit.keep_prob, fit.seed, step)
        loss, metric = output_layer(A_prev, YT, wk, theta, net, buf.acts, fit.loss_code, denom)
    if fused and not np.isfinite(loss):
        return batch_cost(loss, 0.0, denom, fit.l2), metric     # refused before its update
    mb = input_rows(Xk)
    out, alpha, beta = step_target(fused, theta, buf.grad, fit.hyper)
    first = np.int64(0)
    for l in range(net.dims.shape[0] - 1, 0, -1):
        # dZ[l-1] first: it reads W[l], which a fused step then overwrites.
        if l > 1:       # nobody needs dA[0]
            layer_delta(l, theta, net, buf, mb, fit.keep_prob, fit.seed, step)
        weight_share(l, first, None, Xk, net, buf, out, alpha, beta)
    c = cast_like(fit.l2 / denom, net.slope)
    squares = regularise_share(first, None, theta, buf.grad, net.dims, net.offW, c)
    cost = batch_cost(loss, squares, denom, fit.l2)
    return cost, metric


@njit(**JIT)
def loss_and_gradient(Xk, YT, w, theta, net, buf, fit, step):
    """Cost of the batch ``(Xk, YT)`` and its gradient (written into ``buf.grad``).

    Xk (mb, n0), YT (nL, mb) C-contiguous, sample weights ``w`` (mb,) or empty;
    ``buf.acts`` and ``buf.deltas`` are buffers of ``activation_sizes(dims, mb)``
    (the other buffers are not used). The cost is the (weighted) mean loss
    over the batch plus λ/(2 denom) Σ‖W‖²; the gradient includes (λ/denom) W.
    """
    return batch_step(Xk, YT, w, batch_denominator(w, input_rows(Xk)), theta, net, buf, fit,
                      step, False)[0]


@njit(**JIT)
def train_epoch(X, Y, w, order, batch_size, theta, v, s, t, net, buf, fit):
    """One epoch of mini-batch training; updates theta, v, s in place.

    ``w`` holds a weight per sample (empty: none). ``order`` is the sample
    order for this epoch (empty: take the rows as they are, with no gather
    copy). ``t`` is the optimizer step before the epoch. ``buf.batch_costs[k]``
    receives the cost of batch k and ``buf.batch_weights[k]`` what it was
    divided by. Batch k is optimizer step ``t + k + 1``, which also selects its
    dropout masks; a batch whose weights sum to 0 makes no update.

    Returns
    -------
    int
        -1 when every batch finished with a finite cost and gradient, else the
        index of the batch that did not (its update is not applied). Plain
        gradient descent without L2 checks the cost only (see the module
        docstring).
    """
    # The arguments borrowed (see ._borrow), one per line: a tuple unpacking
    # would hide from Numba which argument each one aliases. X may be sparse
    # rows, read only by the gather: left as it is.
    Y = borrow(Y)
    w = borrow(w)
    order = borrow(order)
    theta = borrow(theta)
    v = borrow(v)
    s = borrow(s)
    net = borrowed_network(net)
    buf = borrowed_buffers(buf)
    fit = borrowed_settings(fit)
    m = input_rows(X)
    n_batches = (m + batch_size - 1) // batch_size
    fused = fused_update(fit)
    for k in range(n_batches):
        start = k * batch_size
        mb = min(batch_size, m - start)
        step = t + k + 1
        gather_share(np.int64(0), None, mb, X, w, order, start, buf)
        wk, denom = begin_batch(k, w, order, start, mb, buf)
        if denom == 0:
            continue
        cost, metric = batch_step(input_batch(X, order, start, mb, buf),
                                  targets_share(np.int64(0), None, Y, order, start, mb, buf.Yb),
                                  wk, denom, theta, net, buf, fit, step, fused)
        buf.batch_costs[k] = cost
        buf.batch_metrics[k] = metric
        if not np.isfinite(cost):
            return k
        if fused:
            continue
        if not all_finite(buf.grad):
            return k
        set_bias_correction(fit, step)
        update_share(np.int64(0), None, theta, buf.grad, v, s, fit.opt_code, fit.hyper)
    return -1


@njit(**JIT)
def predict_output(X, theta, net, chunk):
    """A[L] (nL, m) for X (m, n0), dense or sparse rows, in chunks of ``chunk``
    rows to bound memory."""
    # The parameters borrowed (see ._borrow), not the work arrays allocated
    # here: a borrowed view would not keep them alive.
    theta = borrow(theta)
    net = borrowed_network(net)
    m = input_rows(X)
    dims = net.dims
    L = dims.shape[0] - 1
    out = np.empty((dims[L], m), dtype=theta.dtype)
    width = 0
    for l in range(1, L + 1):
        width += dims[l]
    acts = np.empty(width * min(chunk, max(m, 1)), dtype=theta.dtype)
    for start in range(0, m, chunk):
        mb = min(chunk, m - start)
        AL = forward_into(row_block(X, start, start + mb), theta, net, acts)
        copy_columns(AL, out, start)
    return out


@njit(**INLINE)
def copy_columns(A, out, start):
    """out[:, start:start + n] = A for A (rows, n)."""
    # A loop, not a slice assignment: that pulls in Numba's broadcasting and
    # error formatting, seconds of compile for nothing.
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            out[i, start + j] = A[i, j]
