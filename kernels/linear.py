"""Linear-layer kernels: the matrix products, with bias and activation fused around them.

Products go to BLAS through Numba's ``np.dot`` (SciPy's OpenBLAS), which
matched NumPy's matmul on these machines; operands must be C- or F-contiguous
(a transpose view is fine) and ``out`` C-contiguous.
"""

import numpy as np
from numba import njit

from ._config import JIT
from .activations import (
    activation_backward,
    bias_activation,
)


@njit(**JIT)
def add_bias(Z, b):
    """Z += b, b (n, 1) broadcast over the columns, in place."""
    n, m = Z.shape
    for i in range(n):
        bi = b[i, 0]
        for j in range(m):
            Z[i, j] += bi


@njit(**JIT)
def linear_forward(W, A_prev, b, Z):
    """Z = W @ A_prev + b."""
    np.dot(W, A_prev, Z)
    add_bias(Z, b)


@njit(**JIT)
def linear_activation_forward(W, A_prev, b, code, slope, Z, A):
    """Z = W @ A_prev + b and A = g(Z), bias and activation in one pass."""
    np.dot(W, A_prev, Z)
    bias_activation(Z, b, code, slope, A)


@njit(**JIT)
def row_sums(dZ, alpha, beta, db):
    """db[i, 0] = alpha * Σ_j dZ[i, j] + beta * db[i, 0] (``beta == 0``: db is
    not read, as BLAS's ``?gemm`` treats C)."""
    n, m = dZ.shape
    for i in range(n):
        acc = dZ[i, 0] * 0
        for j in range(m):
            acc += dZ[i, j]
        if beta == 0:
            db[i, 0] = acc * alpha
        else:
            db[i, 0] = acc * alpha + beta * db[i, 0]


@njit(**JIT)
def scale_inplace(X, scale):
    """X *= scale, in place (no temporary, unlike NumPy's ``X * scale``)."""
    n, m = X.shape
    for i in range(n):
        for j in range(m):
            X[i, j] *= scale


@njit(**JIT)
def linear_backward(dZ, A_prev, W, inv_m, dA_prev, dW, db):
    """dW = (1/m) dZ A_prevᵀ, db = (1/m) Σ_j dZ, dA_prev = Wᵀ dZ."""
    np.dot(dZ, A_prev.T, dW)
    scale_inplace(dW, inv_m)
    row_sums(dZ, inv_m, inv_m - inv_m, db)
    np.dot(W.T, dZ, dA_prev)


@njit(**JIT)
def linear_activation_backward(dA, Z, A_prev, W, code, slope, inv_m, dZ, dA_prev, dW, db):
    """dZ = dA * g'(Z), then the linear backward step."""
    activation_backward(dA, Z, code, slope, dZ)
    linear_backward(dZ, A_prev, W, inv_m, dA_prev, dW, db)
