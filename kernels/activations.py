"""Activation kernels: each forward g and its derivative side by side.

Activations are chosen by integer codes (``CODES``) inside the kernels rather than
by passing jitted functions, which would defeat Numba's on-disk cache.

Derivatives are written in terms of the activation's *output* ``a = g(z)``:
``σ' = a(1-a)``, ``tanh' = 1-a²``, ReLU' = ``[a > 0]``, leaky ReLU' =
``1 if a > 0 else slope`` (valid because the slope is non-negative). The training
loop therefore stores only A per layer, never Z.
"""

import numpy as np
from numba import njit

from ._config import INLINE, JIT
from ._scalars import one_like, zero_like
from .simd_math import fast_exp, fast_sigmoid, fast_tanh

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = range(6)
CODES = {
    "identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH,
    "relu": RELU, "leaky_relu": LEAKY_RELU, "softmax": SOFTMAX,
}


@njit(inline="always")
def _g(z, code, slope):
    """Elementwise forward (every code but SOFTMAX)."""
    if code == SIGMOID:
        return fast_sigmoid(z)
    if code == TANH:
        return fast_tanh(z)
    if code == RELU:
        # "<=" rather than ">" so that NaN propagates, as np.maximum does.
        return zero_like(z) if z <= 0 else z
    if code == LEAKY_RELU:
        return z if z > 0 else z * slope
    return z


@njit(inline="always")
def _dtanh(z):
    """tanh'(z) from z: sech²(z) = 4e / (1 + e)² with e = exp(-2|z|).

    For the step function, which has Z: ``1 - a²`` from a = tanh(z) cancels
    as |a| nears 1, so that a 3-ulp difference between two tanh
    implementations came out 1e-3 relative in float32 at |z| ~ 5.
    """
    one = one_like(z)
    two = one + one
    e = fast_exp(-two * abs(z))
    return (two + two) * e / ((one + e) * (one + e))


@njit(inline="always")
def dg(a, code, slope):
    """Elementwise derivative g'(z) written in terms of a = g(z)."""
    one = one_like(a)
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > 0 else zero_like(a)
    if code == LEAKY_RELU:
        return one if a > 0 else one * slope
    return one


@njit(**JIT)
def bias_activation(Z, b, code, slope, A):
    """Z += b (broadcast over columns), then A = g(Z); A may be Z itself.

    Z, A : (n, m) C-contiguous; b : (n, 1). The loops run along rows so the
    inner loop is contiguous and vectorises.
    """
    n, m = Z.shape
    for i in range(n):
        bi = b[i, 0]
        for j in range(m):
            Z[i, j] += bi
    if code == SOFTMAX:
        softmax_columns(Z, A)
    elif Z.ctypes.data == A.ctypes.data:
        # In place, with one array: LLVM vectorises the two-array loop only
        # behind a no-overlap check, which an in-place call fails (tanh ran
        # 6x slower that way).
        for i in range(n):
            for j in range(m):
                A[i, j] = _g(A[i, j], code, slope)
    else:
        for i in range(n):
            for j in range(m):
                A[i, j] = _g(Z[i, j], code, slope)


@njit(**INLINE)
def exp_columns(Z, A, colmax, inv):
    """A[:, j] = exp(Z[:, j] - colmax[j]) and inv[j] = 1 / its sum; A may be Z.

    The shared middle of :func:`softmax_columns` and the training loop's
    fused output layer (``losses.softmax_output``). Arrays, not scalars, so it
    is called once a batch, never per entry (see ``losses``).
    """
    n, m = Z.shape
    inv[:] = 0
    if Z.ctypes.data == A.ctypes.data:
        # In place, with one array: see bias_activation.
        for i in range(n):
            for j in range(m):
                e = fast_exp(A[i, j] - colmax[j])
                A[i, j] = e
                inv[j] += e
    else:
        for i in range(n):
            for j in range(m):
                e = fast_exp(Z[i, j] - colmax[j])
                A[i, j] = e
                inv[j] += e
    for j in range(m):
        inv[j] = one_like(inv[j]) / inv[j]


@njit(**JIT)
def softmax_columns(Z, A):
    """A[:, j] = softmax(Z[:, j]); max-shifted so no column overflows.

    Vectorised across columns: each pass walks a contiguous row and keeps one
    running max and one running sum per column.
    """
    n, m = Z.shape
    work = np.empty((2, m), Z.dtype)
    colmax, inv = work[0], work[1]
    colmax[:] = Z[0]
    for i in range(1, n):
        for j in range(m):
            if Z[i, j] > colmax[j]:
                colmax[j] = Z[i, j]
    exp_columns(Z, A, colmax, inv)
    for i in range(n):
        for j in range(m):
            A[i, j] *= inv[j]


@njit(**JIT)
def activation_forward(Z, code, slope, A):
    """A = g(Z) for any code (softmax column-wise)."""
    if code == SOFTMAX:
        softmax_columns(Z, A)
        return
    n, m = Z.shape
    for i in range(n):
        for j in range(m):
            A[i, j] = _g(Z[i, j], code, slope)


@njit(**JIT)
def derivative_from_output(dA, A, code, slope, a_scale, dZ):
    """dZ = dA * g'(z) given A = g(z) / a_scale (not for SOFTMAX); dZ may be dA or A.

    ``a_scale`` is 1 except under inverted dropout, where A holds g(z)/keep_prob.
    """
    # In-place calls get loops over one array fewer: see scale_by_derivative.
    if dZ.ctypes.data == dA.ctypes.data:
        scale_by_derivative(dZ, A, code, slope, a_scale)
        return
    n, m = A.shape
    if dZ.ctypes.data == A.ctypes.data:
        for i in range(n):
            for j in range(m):
                dZ[i, j] = dA[i, j] * dg(dZ[i, j] * a_scale, code, slope)
        return
    for i in range(n):
        for j in range(m):
            dZ[i, j] = dA[i, j] * dg(A[i, j] * a_scale, code, slope)


@njit(**JIT)
def scale_by_derivative(dA, A, code, slope, a_scale):
    """dA *= g'(z) in place (dA becomes dZ), given A = g(z) / a_scale.

    :func:`derivative_from_output` with ``dZ = dA``, which LLVM vectorises only
    behind a no-overlap check that an in-place call fails: that ran scalar, at
    2.5x the time of this loop.
    """
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            dA[i, j] *= dg(A[i, j] * a_scale, code, slope)


@njit(**JIT)
def softmax_backward_columns(dA, S, dZ):
    """dZ[:, j] = S[:, j] * (dA[:, j] - Σ_i dA[i, j] S[i, j]) for softmax output S."""
    n, m = S.shape
    dot = np.zeros(m, dtype=S.dtype)
    for i in range(n):
        for j in range(m):
            dot[j] += dA[i, j] * S[i, j]
    for i in range(n):
        for j in range(m):
            dZ[i, j] = S[i, j] * (dA[i, j] - dot[j])


@njit(**JIT)
def activation_backward(dA, Z, code, slope, dZ):
    """dZ = dA * g'(Z): recomputes A = g(Z), then applies the derivative
    (tanh's straight from Z: see :func:`_dtanh`)."""
    if code == SOFTMAX:
        S = np.empty_like(dZ)
        softmax_columns(Z, S)
        softmax_backward_columns(dA, S, dZ)
    elif code == TANH:
        n, m = Z.shape
        for i in range(n):
            for j in range(m):
                dZ[i, j] = dA[i, j] * _dtanh(Z[i, j])
    else:
        activation_forward(Z, code, slope, dZ)
        derivative_from_output(dA, dZ, code, slope, one_like(slope), dZ)
