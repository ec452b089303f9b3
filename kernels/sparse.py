"""Sparse input: the first layer's products with the rows of X held as CSR.

A data set of many features and few nonzeros per sample (text counts, one-hot
categories) is held in compressed sparse rows: ``data`` and ``indices`` (the
value and column of every stored entry, row after row) and ``indptr``
(row i's entries are ``indptr[i]:indptr[i+1]``). The kernels take it as the
named tuple :data:`CSR` and never densify it: only the first layer reads X,
and it needs

- forward, ``Z1 = W1 Xkᵀ`` (:func:`csr_product`): per unit i and sample j,
  a dot product of W1's row i with the sample's nonzeros;
- backward, ``dW1 = dZ1 Xk`` (:func:`csr_weight_gradient`): dZ1[i, j] times
  the sample's nonzeros, added into row i of dW1 (``dA[0]`` is never needed).

Both run over rows of W1 outermost: a block of units is a share that no other
thread writes (forward and backward), each W1 row is read contiguously, and
the batch's nonzeros, read once per unit, stay in cache. Every stored entry
counts, explicit zeros and repeated columns (which add up, as in
``toarray()``) included; the columns of a row need not be sorted.

Work arrays stay bounded by the nonzeros: a shuffled batch is gathered into
CSR buffers of the most nonzeros a batch can hold (:func:`gather_input`;
``Buffers.Xb``, ``Xb_indices`` and ``Xb_indptr`` as three fields, not one
nested tuple, which ``prange`` cannot pass to its threads), an unshuffled
batch or a prediction chunk is a slice of ``indptr`` (:func:`input_batch`,
:func:`row_block`) and copies nothing.

The epoch and prediction kernels of :mod:`.training` are written once for
both kinds of X: the operations that differ are the functions below, each
with a dense and a CSR implementation chosen by Numba at compile time from
the argument's type (``numba.extending.overload``, as :mod:`._scalars` does).
In them the batch's A[0] = Xkᵀ is, for CSR input, the CSR rows of Xk
themselves (:func:`input_T`): its columns are their rows.
"""

from collections import namedtuple

from numba import njit, types
from numba.extending import overload

from ._config import JIT
from ._scalars import zero_like
from .blas import gemm
from .pair import product as pair_product

CSR = namedtuple("CSR", "data indices indptr")
CSR.__doc__ = """Rows of a sparse matrix in compressed sparse row form.

data : float32 or float64 (≥ nnz,)
    The stored values (the network's dtype).
indices : int32 or int64 (≥ nnz,)
    Their columns, in [0, n_columns).
indptr : same integer type as ``indices``, (n_rows + 1,)
    Row i's entries are ``data[indptr[i]:indptr[i+1]]``; non-decreasing. It
    need not start at 0: a block of rows is a slice of ``indptr``.
"""


# ---------------------------------------------------------------- CSR kernels

@njit(**JIT)
def csr_product(W, X, A):
    """A = W Xᵀ: W (n, n0), X CSR rows (mb, n0), A (n, mb)."""
    n = W.shape[0]
    mb = X.indptr.shape[0] - 1
    data, indices, indptr = X.data, X.indices, X.indptr
    for i in range(n):
        Wi = W[i]
        for j in range(mb):
            acc = zero_like(Wi[0])
            for k in range(indptr[j], indptr[j + 1]):
                acc += data[k] * Wi[indices[k]]
            A[i, j] = acc


@njit(**JIT)
def csr_weight_gradient(alpha, beta, dZ, X, dW):
    """dW = alpha dZ X + beta dW: dZ (n, mb), X CSR rows (mb, n0), dW (n, n0)
    (``beta == 0``: dW is overwritten, not read)."""
    n, mb = dZ.shape
    data, indices, indptr = X.data, X.indices, X.indptr
    for i in range(n):
        dWi = dW[i]
        if beta == 0:
            dWi[:] = 0
        elif beta != 1:
            for k in range(dWi.shape[0]):
                dWi[k] *= beta
        for j in range(mb):
            d = alpha * dZ[i, j]
            # ReLU units leave many zeros in dZ; skipping them changes nothing.
            if d == 0:
                continue
            for k in range(indptr[j], indptr[j + 1]):
                dWi[indices[k]] += d * data[k]


@njit(**JIT)
def csr_gather(lo, hi, X, order, start, Xb):
    """Rows ``order[start + lo:start + hi]`` of X into rows lo..hi of ``Xb``
    (rows before lo are another share's: their sizes fix where row lo starts)."""
    indptr = X.indptr
    at = 0
    for j in range(lo):
        r = order[start + j]
        at += indptr[r + 1] - indptr[r]
    if lo == 0:
        Xb.indptr[0] = 0
    for j in range(lo, hi):
        r = order[start + j]
        for k in range(indptr[r], indptr[r + 1]):
            Xb.data[at] = X.data[k]
            Xb.indices[at] = X.indices[k]
            at += 1
        Xb.indptr[j + 1] = at


@njit(**JIT)
def csr_rows(X, lo, hi):
    """Rows lo..hi of X, without a copy."""
    return CSR(X.data, X.indices, X.indptr[lo:hi + 1])


# ------------------------------------------- operations on dense or CSR input

def _is_csr(X):
    return isinstance(X, types.BaseNamedTuple) and X.instance_class is CSR


def is_sparse(X):
    """Whether X is :data:`CSR` rows (a compile-time constant)."""


@overload(is_sparse, inline="always")
def _ol_is_sparse(X):
    sparse = _is_csr(X)
    return lambda X: sparse


def input_rows(X):
    """Number of samples of X: a dense (m, n0) array or CSR rows."""


@overload(input_rows, inline="always")
def _ol_input_rows(X):
    if _is_csr(X):
        return lambda X: X.indptr.shape[0] - 1
    return lambda X: X.shape[0]


def input_T(Xk):
    """A[0] = Xkᵀ (n0, mb) of a batch: ``Xk.T``, or the CSR rows themselves."""


@overload(input_T, inline="always")
def _ol_input_T(Xk):
    if _is_csr(Xk):
        return lambda Xk: Xk
    return lambda Xk: strided(Xk.T)


def strided(A):
    """A dense layer input typed as any-strided ('A' layout), the one type every
    layer's input A[l-1] is compiled for (CSR rows unchanged)."""


@overload(strided, inline="always")
def _ol_strided(A):
    # Xkᵀ is F-ordered and A[l] C-ordered: two types, each compiling its own
    # copy of every function the input passes through (seconds each), while
    # BLAS, their only reader, takes either through its strides at run time.
    if _is_csr(A):
        return lambda A: A
    return lambda A: A[:, 0:A.shape[1]]


def n_columns(A):
    """Columns (samples) of a layer's input A[l-1]."""


@overload(n_columns, inline="always")
def _ol_n_columns(A):
    if _is_csr(A):
        return lambda A: A.indptr.shape[0] - 1
    return lambda A: A.shape[1]


def column_block(A, lo, hi):
    """Columns lo..hi (a block of samples) of a layer's input A[l-1]."""


@overload(column_block, inline="always")
def _ol_column_block(A, lo, hi):
    if _is_csr(A):
        return lambda A, lo, hi: csr_rows(A, lo, hi)
    return lambda A, lo, hi: A[:, lo:hi]


def product(one, W, A_prev, A):
    """A = W A_prev (``one``: 1 in the dtype): BLAS, or :func:`csr_product`."""


@overload(product, inline="always")
def _ol_product(one, W, A_prev, A):
    if _is_csr(A_prev):
        return lambda one, W, A_prev, A: csr_product(W, A_prev, A)
    return lambda one, W, A_prev, A: gemm(one, W, A_prev, one - one, A)


def predict_product(one, W, A_prev, A):
    """:func:`product` for a prediction's first layer: a dense one-row product
    goes through :func:`.pair.product` (shared with the pair worker while it
    spins and W is large)."""


@overload(predict_product, inline="always")
def _ol_predict_product(one, W, A_prev, A):
    if _is_csr(A_prev):
        return lambda one, W, A_prev, A: csr_product(W, A_prev, A)

    def dense(one, W, A_prev, A):
        if A_prev.shape[1] == 1:
            # Typed any-strided, as gemm's operands: one compile per dtype.
            pair_product(W[:, 0:W.shape[1]], A_prev[:, 0:1], A[:, 0:1])
        else:
            gemm(one, W, A_prev, one - one, A)
    return dense


def input_weight_gradient(alpha, beta, dZ, Xk, c0, c1, dW):
    """dW = alpha dZ Xk[:, c0:c1] + beta dW for the first layer (dW the
    matching block; ``beta == 0``: overwritten).

    CSR input is only ever split by rows of dW (``c0, c1 = 0, n0``): see
    :func:`.training.weight_share`.
    """


@overload(input_weight_gradient, inline="always")
def _ol_input_weight_gradient(alpha, beta, dZ, Xk, c0, c1, dW):
    if _is_csr(Xk):
        return lambda alpha, beta, dZ, Xk, c0, c1, dW: csr_weight_gradient(alpha, beta, dZ, Xk,
                                                                           dW)
    return lambda alpha, beta, dZ, Xk, c0, c1, dW: gemm(alpha, dZ, Xk[:, c0:c1], beta, dW)


def gather_input(lo, hi, X, order, start, buf):
    """Rows ``order[start + lo:start + hi]`` of X into rows lo..hi of the
    batch buffer: ``buf.Xb`` (batch_size, n0), or for CSR rows the CSR
    ``buf.Xb``, ``buf.Xb_indices``, ``buf.Xb_indptr``."""


@overload(gather_input, inline="always")
def _ol_gather_input(lo, hi, X, order, start, buf):
    if _is_csr(X):
        def sparse(lo, hi, X, order, start, buf):
            csr_gather(lo, hi, X, order, start, CSR(buf.Xb, buf.Xb_indices, buf.Xb_indptr))
        return sparse

    def dense(lo, hi, X, order, start, buf):
        # Loops, not a row slice assignment: that compiles Numba's broadcasting
        # and its error formatting, seconds for nothing.
        for j in range(lo, hi):
            row = order[start + j]
            for i in range(X.shape[1]):
                buf.Xb[j, i] = X[row, i]
    return dense


def input_batch(X, order, start, mb, buf):
    """The batch's rows of X: gathered into ``buf`` (when the epoch has an
    ``order``: :func:`gather_input`), else rows start..start+mb of X, read in
    place."""


@overload(input_batch, inline="always")
def _ol_input_batch(X, order, start, mb, buf):
    if _is_csr(X):
        def sparse(X, order, start, mb, buf):
            if order.shape[0] > 0:
                return csr_rows(CSR(buf.Xb, buf.Xb_indices, buf.Xb_indptr), 0, mb)
            return csr_rows(X, start, start + mb)
        return sparse

    def dense(X, order, start, mb, buf):
        if order.shape[0] > 0:
            return buf.Xb[:mb]
        return X[start:start + mb]
    return dense


def row_block(X, lo, hi):
    """Rows lo..hi of X, without a copy."""


@overload(row_block, inline="always")
def _ol_row_block(X, lo, hi):
    if _is_csr(X):
        return lambda X, lo, hi: csr_rows(X, lo, hi)
    return lambda X, lo, hi: X[lo:hi]
