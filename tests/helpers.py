"""Shared constants and comparisons of the test suite."""

import numpy as np

ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "softmax", "identity"]
DTYPES = [np.float64, np.float32]
# Tolerances of the project: compiled vs reference.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


def rtol(dtype):
    return RTOL[np.dtype(dtype)]


def assert_close(actual, desired, dtype, scale=None):
    """Relative comparison; ``scale`` guards entries that are ~0 by cancellation."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.dtype == desired.dtype == np.dtype(dtype), (actual.dtype, desired.dtype)
    assert actual.shape == desired.shape
    tol = rtol(dtype)
    if scale is None:
        scale = np.max(np.abs(desired)) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol * scale * 1e-2)
