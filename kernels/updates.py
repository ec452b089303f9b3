"""Parameter updates on flat parameter vectors: one fused loop per optimizer.

All parameters of a network live in one contiguous vector (W1, b1, W2, b2, ...),
and so do their gradients and optimizer moments, so every update is a single
vectorised loop with no temporaries.

Hyperparameters arrive in a small array ``h`` of the parameters' dtype, filled
from float64 values (see ``make_hyper``); that rounds each constant such as
``1 - β`` exactly as NumPy rounds a Python float against a float32 array, so
both backends use the same constants.
"""

import numpy as np
from numba import njit

from ._config import JIT

# Optimizer codes; deepnet_fast.registry.OPTIMIZERS maps the public names to them.
GD, MOMENTUM, RMSPROP, ADAM = range(4)

# Slots of the hyperparameter array.
LR, BETA, ONE_MINUS_BETA, BETA1, ONE_MINUS_BETA1, BETA2, ONE_MINUS_BETA2, EPS, BC1, BC2 = range(10)
N_HYPER = 10


@njit(**JIT)
def make_hyper(h, lr, beta, beta1, beta2, epsilon, t):
    """Fill ``h`` (dtype of the parameters) for step ``t`` (1-based)."""
    h[LR] = lr
    h[BETA] = beta
    h[ONE_MINUS_BETA] = 1.0 - beta
    h[BETA1] = beta1
    h[ONE_MINUS_BETA1] = 1.0 - beta1
    h[BETA2] = beta2
    h[ONE_MINUS_BETA2] = 1.0 - beta2
    h[EPS] = epsilon
    h[BC1] = 1.0 - beta1 ** t
    h[BC2] = 1.0 - beta2 ** t


@njit(**JIT)
def apply_update(P, dP, v, s, code, h):
    """One optimizer step on flat arrays.

    gd:       P -= α dP
    momentum: v = β v + (1-β) dP;  P -= α v
    rmsprop:  s = β2 s + (1-β2) dP²;  P -= α dP / (√s + ε)
    adam:     v = β1 v + (1-β1) dP;  s = β2 s + (1-β2) dP²;
              P -= α (v / (1-β1ᵗ)) / (√(s / (1-β2ᵗ)) + ε)
    """
    n = P.shape[0]
    lr = h[LR]
    if code == GD:
        for i in range(n):
            P[i] -= lr * dP[i]
    elif code == MOMENTUM:
        beta, c = h[BETA], h[ONE_MINUS_BETA]
        for i in range(n):
            v[i] = beta * v[i] + c * dP[i]
            P[i] -= lr * v[i]
    elif code == RMSPROP:
        beta2, c2, eps = h[BETA2], h[ONE_MINUS_BETA2], h[EPS]
        for i in range(n):
            g = dP[i]
            s[i] = beta2 * s[i] + c2 * g * g
            P[i] -= lr * g / (np.sqrt(s[i]) + eps)
    else:
        beta1, c1, beta2, c2 = h[BETA1], h[ONE_MINUS_BETA1], h[BETA2], h[ONE_MINUS_BETA2]
        eps, bc1, bc2 = h[EPS], h[BC1], h[BC2]
        for i in range(n):
            g = dP[i]
            v[i] = beta1 * v[i] + c1 * g
            s[i] = beta2 * s[i] + c2 * g * g
            P[i] -= lr * (v[i] / bc1) / (np.sqrt(s[i] / bc2) + eps)
