"""Gradient checking for users: backprop against centred finite differences."""

import numpy as np

from . import params as flat
from . import reference as R
from ._validation import check_real
from .architecture import Architecture
from .config import FitConfig
from .engines import ENGINES
from .inputs import check_rows


def gradient_check(net, X, y, epsilon=1e-7, l2=0.0):
    """Relative difference between backprop and numerical gradients, in float64.

    Computes the gradient of the cost of ``(X, y)`` (one batch) with the
    network's own backend, and the centred difference
    ``(J(θ + ε e_i) - J(θ - ε e_i)) / 2ε`` of the reference cost for every
    parameter, then returns ``‖g - g̃‖ / (‖g‖ + ‖g̃‖)`` as the course defines it.
    Below about 1e-7 the backward pass is right.

    Parameters
    ----------
    net : DeepNet
        Its parameters are used (converted to float64); the network is not modified.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    epsilon : float, default=1e-7
        The finite difference's step, a finite number > 0.
    l2 : float, default=0.0
        Include the L2 term of this strength in cost and gradient.

    Returns
    -------
    float
    """
    from .network import DeepNet

    if not isinstance(net, DeepNet):
        raise TypeError(f"net must be a DeepNet; got {type(net).__name__}")
    epsilon = check_real(epsilon, "epsilon", low=0, low_open=True)
    config = FitConfig(l2=l2)
    arch = Architecture(net.architecture.layer_dims, net.architecture.activations,
                        net.architecture.negative_slope, np.dtype(np.float64))
    X = check_rows(X, arch.layer_dims[0], arch.dtype)
    Y = arch.head.encode(y, X.shape[0], arch.layer_dims[-1], arch.dtype)
    theta = flat.pack(net.parameters, arch.layer_dims, arch.dtype)
    engine = ENGINES[net.backend](arch, config, X.shape[0], X.shape[0])
    _, grad = engine.gradient(theta, X, Y)

    def cost(th):
        params = flat.unpack(th, arch.layer_dims)
        AL, _ = R.forward(X.T, params, arch.activations, negative_slope=arch.negative_slope)
        return R.compute_cost(AL, Y.T, arch.activations[-1]) + (
            R.l2_cost(params, config.l2, X.shape[0]) if config.l2 else 0.0)

    numeric = np.empty_like(grad)
    work = theta.copy()
    for i in range(theta.size):
        work[i] = theta[i] + epsilon
        plus = cost(work)
        work[i] = theta[i] - epsilon
        minus = cost(work)
        work[i] = theta[i]
        numeric[i] = (plus - minus) / (2 * epsilon)
    num = np.linalg.norm(grad - numeric)
    den = np.linalg.norm(grad) + np.linalg.norm(numeric)
    return float(num / den) if den > 0 else 0.0
