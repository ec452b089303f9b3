"""Argument preparation shared by the step functions of both backends.

Each ``prepare_*`` validates the arguments of one step function and returns
them as ndarrays of one float dtype, so that ``reference`` and ``compiled``
accept and refuse exactly the same inputs.
"""

import numpy as np

from ._validation import (
    OUTPUT_ACTIVATIONS,
    as_float_array,
    check_activation,
    check_activations,
    check_parameters,
    check_real,
    check_shape,
    same_dtype,
)
from .layer_cache import LayerCache


def prepare_slope(negative_slope):
    # The compiled backward pass reads the derivative off A = g(Z); a negative
    # slope would make leaky ReLU non-monotone and A ambiguous.
    return check_real(negative_slope, "negative_slope", low=0.0)


def _weights(W, b, n_prev_name="A_prev"):
    W = as_float_array(W, "W", ndim=2)
    b = as_float_array(b, "b", ndim=2, dtype=W.dtype)
    check_shape(b, "b", (W.shape[0], 1))
    return W, b


def prepare_linear_forward(A_prev, W, b):
    W, b = _weights(W, b)
    A_prev = as_float_array(A_prev, "A_prev", ndim=2, dtype=W.dtype)
    if A_prev.shape[0] != W.shape[1]:
        raise ValueError(
            f"A_prev must have shape ({W.shape[1]}, m) to match W of shape {W.shape}; "
            f"got {A_prev.shape}"
        )
    return A_prev, W, b


def prepare_activation(Z, activation, negative_slope, name="Z"):
    check_activation(activation)
    Z = as_float_array(Z, name, ndim=2)
    return Z, prepare_slope(negative_slope)


def prepare_activation_backward(dA, Z, activation, negative_slope):
    check_activation(activation)
    Z = as_float_array(Z, "Z", ndim=2)
    dA = as_float_array(dA, "dA", ndim=2, dtype=Z.dtype)
    check_shape(dA, "dA", Z.shape)
    return dA, Z, prepare_slope(negative_slope)


def prepare_forward(X, parameters, activations, negative_slope):
    L = check_parameters(parameters)
    activations = check_activations(activations, L)
    W1 = as_float_array(parameters["W1"], "parameters['W1']")
    X = as_float_array(X, "X", ndim=2, dtype=W1.dtype)
    if X.shape[0] != W1.shape[1]:
        raise ValueError(
            f"X must have shape ({W1.shape[1]}, m) (one column per example) for W1 of shape "
            f"{W1.shape}; got {X.shape}"
        )
    same_dtype({f"parameters[{k!r}]": np.asarray(v) for k, v in parameters.items()
                if k[:1] in "Wb" and k[1:].isdigit() and int(k[1:]) <= L})
    return X, L, activations, prepare_slope(negative_slope)


def prepare_cost(AL, Y, activation):
    check_activation(activation, "activation", OUTPUT_ACTIVATIONS)
    AL = as_float_array(AL, "AL", ndim=2)
    Y = as_float_array(Y, "Y", ndim=2, dtype=AL.dtype)
    check_shape(Y, "Y", AL.shape)
    if AL.shape[1] == 0:
        raise ValueError("AL must hold at least one example (column); got shape " f"{AL.shape}")
    return AL, Y


def prepare_linear_backward(dZ, A_prev, W):
    W = as_float_array(W, "W", ndim=2)
    dZ = as_float_array(dZ, "dZ", ndim=2, dtype=W.dtype)
    A_prev = as_float_array(A_prev, "A_prev", ndim=2, dtype=W.dtype)
    m = A_prev.shape[1]
    check_shape(dZ, "dZ", (W.shape[0], m))
    check_shape(A_prev, "A_prev", (W.shape[1], m))
    if m == 0:
        raise ValueError("A_prev must hold at least one example (column); got 0")
    return dZ, A_prev, W


def prepare_cache(cache):
    if not isinstance(cache, tuple) or len(cache) != 4:
        raise TypeError(f"cache must be a LayerCache(A_prev, W, b, Z); got {type(cache).__name__}")
    return LayerCache(*cache)


def prepare_backward(AL, Y, caches, activations):
    if not isinstance(caches, (list, tuple)) or len(caches) == 0:
        raise TypeError("caches must be the non-empty list of LayerCache returned by forward")
    activations = check_activations(activations, len(caches))
    check_activation(activations[-1], f"activations[{len(caches) - 1}] (the output layer)",
                     OUTPUT_ACTIVATIONS)
    AL, Y = prepare_cost(AL, Y, activations[-1])
    return AL, Y, [prepare_cache(c) for c in caches], activations


def prepare_update(parameters, grads, learning_rate):
    L = check_parameters(parameters)
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict with keys 'dW1', 'db1', ...; got {type(grads).__name__}")
    lr = check_real(learning_rate, "learning_rate", low=0.0, low_open=True)
    for l in range(1, L + 1):
        for key in ("W", "b"):
            g = grads.get(f"d{key}{l}")
            if g is None:
                raise ValueError(f"grads is missing 'd{key}{l}'")
            check_shape(np.asarray(g), f"grads['d{key}{l}']", parameters[f"{key}{l}"].shape)
    return L, lr


def decide(AL, output_activation):
    """Turn output activations into predictions (the same for both backends)."""
    if output_activation == "sigmoid":
        return (AL > 0.5).astype(np.int64)
    if output_activation == "softmax":
        return np.argmax(AL, axis=0)
    return AL
