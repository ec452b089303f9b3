"""Flat parameter vectors: all W[l], b[l] of a network back to back in one array.

The compiled kernels update one contiguous vector (one fused loop per optimizer,
one finiteness check, one snapshot copy); the dict ``W1, b1, ...`` of the step
functions is a set of views into it.
"""

import numpy as np


def layout(dims):
    """Offsets of each W[l] and b[l] in the flat vector, and its total size.

    Returns
    -------
    offW, offb : ndarray of int64, shape (L,)
    size : int
    """
    L = len(dims) - 1
    offW = np.empty(L, np.int64)
    offb = np.empty(L, np.int64)
    o = 0
    for l in range(L):
        offW[l] = o
        o += dims[l + 1] * dims[l]
        offb[l] = o
        o += dims[l + 1]
    return offW, offb, o


def unpack(theta, dims):
    """The dict ``W1, b1, ...`` as views into ``theta`` (writes go through)."""
    offW, offb, _ = layout(dims)
    params = {}
    for l in range(len(dims) - 1):
        n, k = dims[l + 1], dims[l]
        params[f"W{l + 1}"] = theta[offW[l]:offW[l] + n * k].reshape(n, k)
        params[f"b{l + 1}"] = theta[offb[l]:offb[l] + n].reshape(n, 1)
    return params


def pack(parameters, dims, dtype, out=None):
    """Copy the dict ``W1, b1, ...`` into a flat vector (``out`` if given)."""
    _, _, size = layout(dims)
    theta = np.empty(size, dtype=dtype) if out is None else out
    views = unpack(theta, dims)
    for key, view in views.items():
        view[...] = parameters[key]
    return theta
