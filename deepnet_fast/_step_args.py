"""Argument preparation shared by the step functions of both backends.

Each ``prepare_*`` validates the arguments of one step function and returns
them as ndarrays of one float dtype, so that ``reference`` and ``compiled``
accept and refuse exactly the same inputs. Everything a compiled kernel indexes
is checked here first (shapes, sizes, dtypes), so no kernel ever reads or writes
out of bounds, whatever the caller passes.

Finiteness: ``X`` (forward, predict) and ``Y`` (costs, backward) must be finite,
as for ``DeepNet.fit``. Intermediate values (``A_prev``, ``Z``, ``AL``, ``dA``,
gradients, parameters) may be NaN or inf: that is how a diverging run shows,
and ``fit`` reports it as ``DivergenceError``.
"""

from typing import NamedTuple

import numpy as np

from ._validation import (
    FLOAT_DTYPES,
    MAX_ARRAY_ITEMS,
    as_float_array,
    check_activations,
    check_choice,
    check_keep_prob,
    check_parameters,
    check_positive_int,
    check_real,
    check_shape,
    check_step,
    parameter_layer,
    same_dtype,
    shown,
)
from .initialization import SEED_LIMIT
from .layer_cache import LayerCache
from .registry import ACTIVATIONS, OPTIMIZERS, OUTPUT_HEADS


def prepare_slope(negative_slope):
    # The compiled backward pass reads the derivative off A = g(Z); a negative
    # slope would make leaky ReLU non-monotone and A ambiguous.
    return check_real(negative_slope, "negative_slope", low=0.0)


def _nonempty(W, name):
    if W.size == 0:
        raise ValueError(f"{name} must have at least one row and one column; got shape {W.shape}")
    return W


def _weights(W, b, W_name="W", b_name="b"):
    W = _nonempty(as_float_array(W, W_name, ndim=2), W_name)
    b = as_float_array(b, b_name, ndim=2, dtype=W.dtype)
    check_shape(b, b_name, (W.shape[0], 1))
    return W, b


def _units(Z, name):
    # A layer has at least one unit; softmax over zero of them is undefined.
    if Z.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row (one per unit); got shape {Z.shape}")
    return Z


def _parameter_dict(parameters, name="parameters", floats_only=False):
    """``check_parameters``, after checking that every ``W{l}``/``b{l}`` is an ndarray
    (of float32/float64 when ``floats_only``) and before it reads their shapes;
    every weight matrix must be non-empty. Returns L."""
    if isinstance(parameters, dict):
        for key, a in parameters.items():
            if parameter_layer(key) is None:
                continue  # check_parameters refuses the key
            entry = f"{name}[{key!r}]"
            if not isinstance(a, np.ndarray) or isinstance(a, np.ma.MaskedArray):
                raise TypeError(f"{entry} must be a numpy array; got {shown(a)}")
            if floats_only and a.dtype not in FLOAT_DTYPES:
                raise TypeError(
                    f"{entry} must be a float32 or float64 array (the update keeps its dtype); "
                    f"got dtype {a.dtype}"
                )
            if a.dtype.kind not in "fiub":
                raise TypeError(f"{entry} must be a numeric array; got dtype {a.dtype}")
    L = check_parameters(parameters, name=name)
    for l in range(1, L + 1):
        _nonempty(parameters[f"W{l}"], f"{name}['W{l}']")
    return L


def prepare_linear_forward(A_prev, W, b):
    W, b = _weights(W, b)
    A_prev = as_float_array(A_prev, "A_prev", ndim=2, dtype=W.dtype)
    if A_prev.shape[0] != W.shape[1]:
        raise ValueError(
            f"A_prev must have shape ({W.shape[1]}, m) to match W of shape {W.shape}; "
            f"got {A_prev.shape}"
        )
    return A_prev, W, b


def prepare_linear_activation_forward(A_prev, W, b, activation, negative_slope):
    """Returns ``(A_prev, W, b, slope)``, the arrays in W's dtype."""
    check_choice(activation, "activation", ACTIVATIONS)
    slope = prepare_slope(negative_slope)
    return (*prepare_linear_forward(A_prev, W, b), slope)


def prepare_activation(Z, activation, negative_slope, name="Z"):
    check_choice(activation, "activation", ACTIVATIONS)
    Z = _units(as_float_array(Z, name, ndim=2), name)
    return Z, prepare_slope(negative_slope)


def prepare_activation_backward(dA, Z, activation, negative_slope):
    check_choice(activation, "activation", ACTIVATIONS)
    Z = _units(as_float_array(Z, "Z", ndim=2), "Z")
    dA = as_float_array(dA, "dA", ndim=2, dtype=Z.dtype)
    check_shape(dA, "dA", Z.shape)
    return dA, Z, prepare_slope(negative_slope)


def prepare_forward(X, parameters, activations, negative_slope):
    L = _parameter_dict(parameters)
    activations = check_activations(activations, L, ACTIVATIONS)
    W1 = as_float_array(parameters["W1"], "parameters['W1']")
    X = as_float_array(X, "X", ndim=2, dtype=W1.dtype, finite=True)
    if X.shape[0] != W1.shape[1]:
        raise ValueError(
            f"X must have shape ({W1.shape[1]}, m) (one column per example) for W1 of shape "
            f"{W1.shape}; got {X.shape}"
        )
    same_dtype({f"parameters[{k!r}]": np.asarray(v) for k, v in parameters.items()
                if parameter_layer(k) <= L})
    return X, L, activations, prepare_slope(negative_slope)


def prepare_cost(AL, Y, activation):
    check_choice(activation, "activation", OUTPUT_HEADS)
    AL = _units(as_float_array(AL, "AL", ndim=2), "AL")
    Y = as_float_array(Y, "Y", ndim=2, dtype=AL.dtype, finite=True)
    check_shape(Y, "Y", AL.shape)
    if AL.shape[1] == 0:
        raise ValueError("AL must hold at least one example (column); got shape " f"{AL.shape}")
    return AL, Y


def prepare_linear_backward(dZ, A_prev, W):
    W = _nonempty(as_float_array(W, "W", ndim=2), "W")
    dZ = as_float_array(dZ, "dZ", ndim=2, dtype=W.dtype)
    A_prev = as_float_array(A_prev, "A_prev", ndim=2, dtype=W.dtype)
    m = A_prev.shape[1]
    check_shape(dZ, "dZ", (W.shape[0], m))
    check_shape(A_prev, "A_prev", (W.shape[1], m))
    if m == 0:
        raise ValueError("A_prev must hold at least one example (column); got 0")
    return dZ, A_prev, W


def prepare_cache(cache, name="cache"):
    """A ``LayerCache`` of consistent shapes, its arrays in the dtype of its W."""
    if not isinstance(cache, tuple) or len(cache) != 4:
        raise TypeError(f"{name} must be a LayerCache(A_prev, W, b, Z); got {type(cache).__name__}")
    A_prev, W, b, Z = cache
    W, b = _weights(W, b, f"{name}.W", f"{name}.b")
    Z = as_float_array(Z, f"{name}.Z", ndim=2, dtype=W.dtype)
    check_shape(Z, f"{name}.Z", (W.shape[0], None))
    A_prev = as_float_array(A_prev, f"{name}.A_prev", ndim=2, dtype=W.dtype)
    check_shape(A_prev, f"{name}.A_prev", (W.shape[1], Z.shape[1]))
    return LayerCache(A_prev, W, b, Z)


def prepare_backward(AL, Y, caches, activations):
    if not isinstance(caches, (list, tuple)) or len(caches) == 0:
        raise TypeError("caches must be the non-empty list of LayerCache returned by forward")
    activations = check_activations(activations, len(caches), ACTIVATIONS)
    check_choice(activations[-1], f"activations[{len(caches) - 1}] (the output layer)",
                     OUTPUT_HEADS)
    caches = [prepare_cache(c, f"caches[{i}]") for i, c in enumerate(caches)]
    for i in range(1, len(caches)):
        if caches[i].A_prev.shape != caches[i - 1].Z.shape:
            raise ValueError(
                f"caches[{i}].A_prev must have the shape of caches[{i - 1}].Z "
                f"{caches[i - 1].Z.shape} (one layer's output is the next one's input); "
                f"got {caches[i].A_prev.shape}"
            )
    AL = as_float_array(AL, "AL", ndim=2, dtype=caches[-1].W.dtype)
    if AL.shape != caches[-1].Z.shape:
        raise ValueError(
            f"AL must have the shape of the output layer's caches[{len(caches) - 1}].Z "
            f"{caches[-1].Z.shape}; got {AL.shape}"
        )
    AL, Y = prepare_cost(AL, Y, activations[-1])
    return AL, Y, caches, activations


def _stream_index(value, name):
    """A dropout stream's seed, step or layer: an int in [0, 2**63) (the
    kernels take it as a signed 64-bit integer)."""
    value = check_positive_int(value, name, minimum=0)
    if value >= SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**63); got {value}")
    return value


def prepare_dropout(keep_prob, seed, step):
    """``(keep_prob, seed, step)`` of a dropout stream, checked."""
    return check_keep_prob(keep_prob), _stream_index(seed, "seed"), _stream_index(step, "step")


def prepare_dropout_mask(shape, keep_prob, seed, step, layer):
    """``((n, m), keep_prob, seed, step, layer)`` of one layer's mask, checked."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise TypeError(f"shape must be a tuple (n, m); got {shown(shape)}")
    shape = tuple(check_positive_int(v, f"shape[{i}]", minimum=0) for i, v in enumerate(shape))
    if max(shape) > MAX_ARRAY_ITEMS or shape[0] * shape[1] > MAX_ARRAY_ITEMS:
        raise ValueError(f"shape {shape} is beyond any array (at most {MAX_ARRAY_ITEMS:,} "
                         "entries, in each dimension and in all)")
    keep_prob, seed, step = prepare_dropout(keep_prob, seed, step)
    return shape, keep_prob, seed, step, _stream_index(layer, "layer")


def prepare_masks(masks, caches, dtype):
    """The keep masks of the hidden layers as arrays of ``dtype``, one per
    hidden layer, each of the shape of its layer's ``Z``."""
    hidden = len(caches) - 1
    if not isinstance(masks, (list, tuple)) or len(masks) != hidden:
        raise TypeError(f"masks must be the list of {hidden} hidden-layer masks returned by "
                        f"forward_with_dropout; got {shown(masks)}")
    return [check_shape(as_float_array(D, f"masks[{i}]", ndim=2, dtype=dtype), f"masks[{i}]",
                        caches[i].Z.shape) for i, D in enumerate(masks)]


def _per_parameter(arrays, name, parameters, L, what):
    """A copy of the dict ``arrays`` whose ``dW{l}``/``db{l}`` are arrays of the
    shape and dtype of the matching parameter."""
    if not isinstance(arrays, dict):
        raise TypeError(
            f"{name} must be a dict of {what} with keys 'dW1', 'db1', ...; got {shown(arrays)}"
        )
    out = dict(arrays)
    for l in range(1, L + 1):
        for key in ("W", "b"):
            P, g = parameters[f"{key}{l}"], f"d{key}{l}"
            if arrays.get(g) is None:
                raise ValueError(f"{name} is missing {g!r}")
            a = as_float_array(arrays[g], f"{name}[{g!r}]", ndim=2, dtype=P.dtype)
            out[g] = check_shape(a, f"{name}[{g!r}]", P.shape)
    return out


def prepare_update(parameters, grads, learning_rate):
    """Returns ``(L, lr, grads)``, each gradient in its parameter's dtype."""
    L = _parameter_dict(parameters, floats_only=True)
    lr = check_real(learning_rate, "learning_rate", low=0.0, low_open=True)
    grads = _per_parameter(grads, "grads", parameters, L, "gradients")
    return L, lr, grads


class OptimizerStep(NamedTuple):
    """Validated arguments of ``update_parameters_with_optimizer``."""

    L: int
    lr: float
    t: int
    beta: float
    beta1: float
    beta2: float
    epsilon: float
    grads: dict
    v: object  # dict of moments, or what was given when the optimizer does not use them
    s: object


def prepare_optimizer_step(parameters, grads, v, s, t, learning_rate, optimizer,
                           beta, beta1, beta2, epsilon):
    """Validate one optimizer step; the moments the optimizer uses must be dicts
    (``initialize_optimizer_state``) of arrays shaped like the parameters, and
    are returned in the parameters' dtypes."""
    check_choice(optimizer, "optimizer", OPTIMIZERS)
    L, lr, grads = prepare_update(parameters, grads, learning_rate)
    t = check_step(t)
    hyper = [check_real(value, name, low=0.0, high=1.0, high_open=True)
             for value, name in ((beta, "beta"), (beta1, "beta1"), (beta2, "beta2"))]
    epsilon = check_real(epsilon, "epsilon", low=0.0, low_open=True)
    moments = OPTIMIZERS[optimizer].moments
    if "v" in moments:
        v = _per_parameter(v, "v", parameters, L, f"{optimizer} first moments")
    if "s" in moments:
        s = _per_parameter(s, "s", parameters, L, f"{optimizer} second moments")
    return OptimizerStep(L, lr, t, *hyper, epsilon, grads, v, s)


def prepare_l2(parameters, l2, m, floats_only=False):
    """Validate the arguments of ``l2_cost``; returns L."""
    L = _parameter_dict(parameters, floats_only=floats_only)
    check_real(l2, "l2", low=0.0)
    check_positive_int(m, "m")
    return L


def prepare_l2_gradient(grads, parameters, l2, m):
    """Validate the arguments of ``l2_gradient``; returns ``(L, grads)``, each
    gradient in its parameter's dtype."""
    L = prepare_l2(parameters, l2, m, floats_only=True)
    return L, _per_parameter(grads, "grads", parameters, L, "gradients")


def decide(AL, output_activation):
    """Turn output activations into predictions (the same for both backends):
    the output head's rule (:meth:`~deepnet_fast.heads.OutputHead.decide`) in
    the course's orientation, (nL, m) as AL, or (m,) class indices for softmax."""
    P = OUTPUT_HEADS[output_activation].decide(AL.T)     # rows are samples
    if output_activation == "softmax":
        return P
    return P.reshape(AL.shape[1], AL.shape[0]).T
