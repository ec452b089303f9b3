"""The NumPy reference: every step of the network, literally as the course writes it.

This module is the oracle the tests compare the compiled backend against and the
baseline the benchmarks measure it against: clear before clever. Data follow the
column convention (``X`` has shape ``(n0, m)``, one column per example).

It leaves out everything that is not the mathematics: no fused kernels, no
preallocated buffers, no threads.
"""

import numpy as np

from . import registry
from ._step_args import (
    decide,
    prepare_activation,
    prepare_activation_backward,
    prepare_backward,
    prepare_cache,
    prepare_cost,
    prepare_dropout,
    prepare_dropout_mask,
    prepare_forward,
    prepare_l2,
    prepare_linear_activation_forward,
    prepare_linear_backward,
    prepare_linear_forward,
    prepare_masks,
    prepare_optimizer_step,
    prepare_update,
)
from ._validation import check_keep_prob, check_sample_weight
from .initialization import initialize_optimizer_state, initialize_parameters
from .layer_cache import LayerCache
from .regularization import l2_gradient

__all__ = [
    "initialize_parameters", "linear_forward", "activation_forward",
    "linear_activation_forward", "forward", "compute_cost", "cost_gradient",
    "linear_backward", "activation_backward", "linear_activation_backward",
    "backward", "update_parameters", "predict",
    "l2_cost", "l2_gradient", "initialize_optimizer_state", "update_parameters_with_optimizer",
    "dropout_mask", "forward_with_dropout", "backward_with_dropout",
]

# ---------------------------------------------------------------- activations
# Each activation g and its derivative side by side. A derivative takes the
# upstream gradient dA and the pre-activation Z and returns dZ = dA * g'(Z).


def sigmoid(Z, negative_slope=None):
    """σ(z) = 1 / (1 + e^-z), in the form that never overflows."""
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dA, Z, negative_slope=None):
    """dZ = dA σ(z) (1 - σ(z))."""
    s = sigmoid(Z)
    return dA * s * (1 - s)


def tanh(Z, negative_slope=None):
    """tanh(z) = (e^z - e^-z) / (e^z + e^-z)."""
    return np.tanh(Z)


def tanh_backward(dA, Z, negative_slope=None):
    """dZ = dA tanh'(z), with tanh'(z) = 1 - tanh²(z) = sech²(z) computed as
    4e / (1 + e)², e = e^-2|z|: 1 - tanh² itself cancels as tanh nears ±1
    (1e-3 relative in float32 at |z| ~ 5 for a tanh a few ulp off)."""
    e = np.exp(-2 * np.abs(Z))
    return dA * (4 * e / ((1 + e) * (1 + e)))


def relu(Z, negative_slope=None):
    """relu(z) = max(z, 0)."""
    return np.maximum(Z, 0)


def relu_backward(dA, Z, negative_slope=None):
    """dZ = dA [z > 0] (the derivative at 0 taken as 0)."""
    return np.where(Z > 0, dA, 0).astype(dA.dtype, copy=False)


def leaky_relu(Z, negative_slope=0.01):
    """leaky_relu(z) = z if z > 0 else negative_slope · z."""
    return np.where(Z > 0, Z, negative_slope * Z).astype(Z.dtype, copy=False)


def leaky_relu_backward(dA, Z, negative_slope=0.01):
    """dZ = dA if z > 0 else negative_slope · dA."""
    return np.where(Z > 0, dA, negative_slope * dA).astype(dA.dtype, copy=False)


def softmax(Z, negative_slope=None):
    """softmax(z)_i = e^z_i / Σ_k e^z_k over each column; subtracting the
    column maximum first prevents overflow."""
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def softmax_backward(dA, Z, negative_slope=None):
    """Jacobian-vector product of the column-wise softmax: dZ = s (dA - Σ_k dA_k s_k)
    with s = softmax(z)."""
    s = softmax(Z)
    return s * (dA - (dA * s).sum(axis=0, keepdims=True))


def identity(Z, negative_slope=None):
    """identity(z) = z (a copy, so the caller never aliases Z)."""
    return Z.copy()


def identity_backward(dA, Z, negative_slope=None):
    """dZ = dA (a copy)."""
    return dA.copy()


ACTIVATIONS = {
    "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
    "leaky_relu": leaky_relu, "softmax": softmax, "identity": identity,
}
DERIVATIVES = {
    "sigmoid": sigmoid_backward, "tanh": tanh_backward, "relu": relu_backward,
    "leaky_relu": leaky_relu_backward, "softmax": softmax_backward,
    "identity": identity_backward,
}

# ---------------------------------------------------------------- forward


def linear_forward(A_prev, W, b):
    """Z = W A_prev + b.

    Parameters
    ----------
    A_prev : ndarray of shape (n[l-1], m)
    W : ndarray of shape (n[l], n[l-1])
    b : ndarray of shape (n[l], 1)

    Returns
    -------
    Z : ndarray of shape (n[l], m)
    """
    A_prev, W, b = prepare_linear_forward(A_prev, W, b)
    return W @ A_prev + b


def activation_forward(Z, activation, *, negative_slope=0.01):
    """A = g(Z) for the named activation (softmax works column by column).

    Parameters
    ----------
    Z : ndarray of shape (n[l], m), float32 or float64
    activation : {"sigmoid", "tanh", "relu", "leaky_relu", "softmax", "identity"}
    negative_slope : float >= 0, default=0.01
        Slope of leaky ReLU for z <= 0 (other activations ignore it).

    Returns
    -------
    A : ndarray of shape (n[l], m), dtype of Z
    """
    Z, slope = prepare_activation(Z, activation, negative_slope)
    return ACTIVATIONS[activation](Z, slope)


def linear_activation_forward(A_prev, W, b, activation, *, negative_slope=0.01):
    """One layer: ``Z = W A_prev + b``, ``A = g(Z)``.

    Parameters
    ----------
    A_prev : ndarray of shape (n[l-1], m)
    W : ndarray of shape (n[l], n[l-1]), float32 or float64
    b : ndarray of shape (n[l], 1)
    activation : str
        A name of :data:`deepnet_fast.registry.ACTIVATIONS`.
    negative_slope : float >= 0, default=0.01
        Slope of leaky ReLU for z <= 0.

    Returns
    -------
    A : ndarray of shape (n[l], m), dtype of W
    cache : LayerCache
        ``(A_prev, W, b, Z)`` for :func:`linear_activation_backward`, the
        arrays in W's dtype.
    """
    A_prev, W, b, slope = prepare_linear_activation_forward(A_prev, W, b, activation,
                                                            negative_slope)
    Z = W @ A_prev + b
    A = ACTIVATIONS[activation](Z, slope)
    return A, LayerCache(A_prev, W, b, Z)


def forward(X, parameters, activations, *, negative_slope=0.01):
    """Forward propagation through all L layers.

    Parameters
    ----------
    X : ndarray of shape (n0, m)
    parameters : dict
        ``W1, b1, ..., WL, bL``.
    activations : sequence of str
        One activation name per layer.

    Returns
    -------
    AL : ndarray of shape (nL, m)
    caches : list of LayerCache
    """
    X, L, activations, slope = prepare_forward(X, parameters, activations, negative_slope)
    A, caches = X, []
    for l in range(1, L + 1):
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], activations[l - 1], negative_slope=slope
        )
        caches.append(cache)
    return A, caches


# ---------------------------------------------------------------- cost


def _safe_log(x):
    # Clipping at the smallest normal number keeps log finite when an output
    # saturates to exactly 0 or 1; the compiled kernels clip identically.
    return np.log(np.maximum(x, np.finfo(x.dtype).tiny))


def compute_cost(AL, Y, activation="sigmoid", *, sample_weight=None):
    """The loss implied by the output activation, averaged over the m examples.

    sigmoid → binary cross-entropy ``-(1/m) Σ [Y log AL + (1-Y) log(1-AL)]``;
    softmax → categorical cross-entropy ``-(1/m) Σ Y log AL``;
    identity and relu → squared error ``(1/m) Σ ½ (AL - Y)²``.
    With ``sample_weight`` (m,) the mean is weighted: ``Σ_j w_j loss_j / Σ w``.

    Returns
    -------
    float
    """
    AL, Y = prepare_cost(AL, Y, activation)
    w = check_sample_weight(sample_weight, AL.shape[1], AL.dtype)
    m = AL.shape[1]
    if activation == "sigmoid":
        loss = -(Y * _safe_log(AL) + (1 - Y) * _safe_log(1 - AL))
    elif activation == "softmax":
        loss = -(Y * _safe_log(AL))
    else:
        loss = 0.5 * (AL - Y) ** 2
    if w is not None:
        per_example = np.sum(loss, axis=0, dtype=np.float64)
        return float(per_example @ w.astype(np.float64) / np.sum(w, dtype=np.float64))
    return float(np.sum(loss, dtype=np.float64) / m)


def cost_gradient(AL, Y, activation="sigmoid", *, sample_weight=None):
    """dA[L] = ∂cost/∂AL times m (the 1/m is applied in ``linear_backward``).

    sigmoid → ``-(Y / AL - (1-Y) / (1-AL))``; softmax → ``-Y / AL`` (AL and
    1 - AL clipped at the smallest normal number); identity and relu →
    ``AL - Y``. With ``sample_weight``, column j is scaled by ``m w_j / Σ w``.

    Parameters
    ----------
    AL : ndarray of shape (nL, m), float32 or float64
        Output activations.
    Y : ndarray of shape (nL, m)
        Targets (finite), converted to AL's dtype.
    activation : {"sigmoid", "softmax", "identity", "relu"}, default="sigmoid"
        The output activation, which implies the loss.
    sample_weight : ndarray of shape (m,), optional
        Non-negative weights, not all zero.

    Returns
    -------
    dA : ndarray of shape (nL, m), dtype of AL
    """
    AL, Y = prepare_cost(AL, Y, activation)
    w = check_sample_weight(sample_weight, AL.shape[1], AL.dtype)
    tiny = np.finfo(AL.dtype).tiny
    if activation == "sigmoid":
        dA = -(Y / np.maximum(AL, tiny) - (1 - Y) / np.maximum(1 - AL, tiny))
    elif activation == "softmax":
        dA = -(Y / np.maximum(AL, tiny))
    else:
        dA = AL - Y
    if w is not None:
        dA = dA * (w * (AL.shape[1] / np.sum(w)))
    return dA


# ---------------------------------------------------------------- backward


def linear_backward(dZ, A_prev, W):
    """Gradients of the linear step, given dZ of the layer.

    Returns
    -------
    dA_prev : ndarray of shape (n[l-1], m)
        ``W.T @ dZ``
    dW : ndarray of shape (n[l], n[l-1])
        ``(1/m) dZ @ A_prev.T``
    db : ndarray of shape (n[l], 1)
        ``(1/m) Σ_columns dZ``
    """
    dZ, A_prev, W = prepare_linear_backward(dZ, A_prev, W)
    m = A_prev.shape[1]
    dW = (1 / m) * (dZ @ A_prev.T)
    db = (1 / m) * np.sum(dZ, axis=1, keepdims=True)
    dA_prev = W.T @ dZ
    return dA_prev, dW, db


def activation_backward(dA, Z, activation, *, negative_slope=0.01):
    """dZ = dA * g'(Z) (for softmax, the Jacobian-vector product per column).

    Parameters
    ----------
    dA : ndarray of shape (n[l], m)
        Gradient of the cost with respect to A = g(Z), converted to Z's dtype.
    Z : ndarray of shape (n[l], m), float32 or float64
    activation : {"sigmoid", "tanh", "relu", "leaky_relu", "softmax", "identity"}
    negative_slope : float >= 0, default=0.01

    Returns
    -------
    dZ : ndarray of shape (n[l], m), dtype of Z
    """
    dA, Z, slope = prepare_activation_backward(dA, Z, activation, negative_slope)
    return DERIVATIVES[activation](dA, Z, slope)


def linear_activation_backward(dA, cache, activation, *, negative_slope=0.01):
    """One layer backwards: ``dZ = dA * g'(Z)``, then :func:`linear_backward`.

    Parameters
    ----------
    dA : ndarray of shape (n[l], m)
    cache : LayerCache
        ``(A_prev, W, b, Z)`` of the layer, from :func:`linear_activation_forward`.
    activation : str
        The layer's activation (a name of :data:`deepnet_fast.registry.ACTIVATIONS`).
    negative_slope : float >= 0, default=0.01

    Returns
    -------
    dA_prev : ndarray of shape (n[l-1], m)
    dW : ndarray of shape (n[l], n[l-1])
    db : ndarray of shape (n[l], 1)
        All in the dtype of the cache's W.
    """
    A_prev, W, b, Z = prepare_cache(cache)
    dZ = activation_backward(dA, Z, activation, negative_slope=negative_slope)
    return linear_backward(dZ, A_prev, W)


def backward(AL, Y, caches, activations, *, negative_slope=0.01, sample_weight=None):
    """Backward propagation through all layers.

    dA[L] comes from the cost (``cost_gradient``, weighted by ``sample_weight``
    when given), then each layer applies its activation's derivative and the
    linear backward step.

    Returns
    -------
    dict
        ``dW1, db1, ..., dWL, dbL`` and ``dA0, ..., dA{L-1}``.
    """
    AL, Y, caches, activations = prepare_backward(AL, Y, caches, activations)
    L = len(caches)
    grads = {}
    dA = cost_gradient(AL, Y, activations[-1], sample_weight=sample_weight)
    for l in range(L, 0, -1):
        dA, dW, db = linear_activation_backward(
            dA, caches[l - 1], activations[l - 1], negative_slope=negative_slope
        )
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA, dW, db
    return grads


# ---------------------------------------------------------------- update


def update_parameters(parameters, grads, learning_rate):
    """Gradient descent ``W -= α dW``, ``b -= α db``.

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``: float32 or float64 arrays.
    grads : dict
        ``dW1, db1, ..., dWL, dbL`` shaped like the parameters (other keys,
        such as ``dA0``, are ignored).
    learning_rate : float > 0

    Returns
    -------
    dict
        New parameters, each in its input's dtype; the inputs are not modified.
    """
    L, lr, grads = prepare_update(parameters, grads, learning_rate)
    new = dict(parameters)
    for l in range(1, L + 1):
        for key in ("W", "b"):
            P = parameters[f"{key}{l}"]
            new[f"{key}{l}"] = P - P.dtype.type(lr) * grads[f"d{key}{l}"]
    return new


def l2_cost(parameters, l2, m):
    """The L2 penalty ``λ/(2m) Σ_l ‖W[l]‖²`` added to the cost.

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL`` (the biases are not penalised).
    l2 : float >= 0
        λ.
    m : int >= 1
        The number of examples the cost averages over.

    Returns
    -------
    float
        Summed in float64, whatever the parameters' dtype.
    """
    L = prepare_l2(parameters, l2, m)
    return float(l2 / (2 * m) * sum(np.sum(np.square(parameters[f"W{l}"], dtype=np.float64))
                                    for l in range(1, L + 1)))


def update_parameters_with_optimizer(parameters, grads, v, s, t, learning_rate, optimizer="gd",
                                     beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One step of gradient descent, momentum, RMSprop or Adam.

    momentum: ``v = β v + (1-β) dP; P -= α v``;
    rmsprop:  ``s = β2 s + (1-β2) dP²; P -= α dP / (√s + ε)``;
    adam:     ``v = β1 v + (1-β1) dP; s = β2 s + (1-β2) dP²;
    P -= α v̂ / (√ŝ + ε)`` with ``v̂ = v/(1-β1ᵗ)``, ``ŝ = s/(1-β2ᵗ)``.

    Returns
    -------
    (parameters, v, s) : new dicts; the inputs are not modified. ``v`` and ``s``
    are dicts of arrays shaped like the parameters (``initialize_optimizer_state``)
    where the optimizer uses them; otherwise they are returned as given.
    """
    step = prepare_optimizer_step(parameters, grads, v, s, t, learning_rate, optimizer,
                                  beta, beta1, beta2, epsilon)
    if optimizer == "gd":
        return update_parameters(parameters, grads, learning_rate), v, s
    L, lr, t, grads, v, s = step.L, step.lr, step.t, step.grads, step.v, step.s
    beta, beta1, beta2, epsilon = step.beta, step.beta1, step.beta2, step.epsilon
    new_p = dict(parameters)
    moments = registry.OPTIMIZERS[optimizer].moments
    new_v = dict(v) if "v" in moments else v
    new_s = dict(s) if "s" in moments else s
    for l in range(1, L + 1):
        for key in ("W", "b"):
            P, dP, g = parameters[f"{key}{l}"], grads[f"d{key}{l}"], f"d{key}{l}"
            if optimizer == "momentum":
                new_v[g] = beta * v[g] + (1 - beta) * dP
                new_p[f"{key}{l}"] = P - lr * new_v[g]
            elif optimizer == "rmsprop":
                new_s[g] = beta2 * s[g] + (1 - beta2) * dP * dP
                new_p[f"{key}{l}"] = P - lr * dP / (np.sqrt(new_s[g]) + epsilon)
            elif optimizer == "adam":
                new_v[g] = beta1 * v[g] + (1 - beta1) * dP
                new_s[g] = beta2 * s[g] + (1 - beta2) * dP * dP
                v_hat = new_v[g] / (1 - beta1 ** t)
                s_hat = new_s[g] / (1 - beta2 ** t)
                new_p[f"{key}{l}"] = P - lr * v_hat / (np.sqrt(s_hat) + epsilon)
    return new_p, new_v, new_s


# ---------------------------------------------------------------- dropout
# Masks come from a counter-based stream: unit (i, j) of layer l at optimizer
# step t is kept when u(seed, t, l, i·m + j) < keep_prob, u being the SplitMix64
# finaliser of a Weyl sequence mapped to [0, 1). This is the NumPy copy of
# deepnet_fast.kernels.dropout, so both backends drop the same units.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask(shape, keep_prob, seed, step, layer):
    """Boolean keep mask of a layer's activations (shape (n[l], m)).

    Parameters
    ----------
    shape : tuple (n, m)
    keep_prob : float
        Probability of keeping each unit.
    seed, step, layer : int
        The dropout seed, the optimizer step (1-based) and the layer (1-based),
        integers in [0, 2**63).
    """
    shape, keep_prob, seed, step, layer = prepare_dropout_mask(shape, keep_prob, seed, step,
                                                               layer)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        key = _mix64(np.array([seed], np.uint64) + _GOLDEN * np.uint64(step))
        key = _mix64(key + _GOLDEN * np.uint64(layer))
        index = np.arange(1, shape[0] * shape[1] + 1, dtype=np.uint64)
        bits = _mix64(key + _GOLDEN * index) >> np.uint64(11)
    return (bits.astype(np.float64) * 2.0 ** -53 < keep_prob).reshape(shape)


def forward_with_dropout(X, parameters, activations, keep_prob, seed, step, *, negative_slope=0.01):
    """Forward propagation with inverted dropout on the hidden layers.

    ``A[l] = g(Z[l]) * D[l] / keep_prob`` for l < L.

    Returns
    -------
    AL, caches, masks : masks[l-1] is D[l] for the hidden layers l = 1..L-1.
    """
    X, L, activations, slope = prepare_forward(X, parameters, activations, negative_slope)
    keep_prob, seed, step = prepare_dropout(keep_prob, seed, step)
    A, caches, masks = X, [], []
    for l in range(1, L + 1):
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], activations[l - 1], negative_slope=slope
        )
        caches.append(cache)
        if l < L:
            D = dropout_mask(A.shape, keep_prob, seed, step, l)
            A = A * D / keep_prob
            masks.append(D)
    return A, caches, masks


def backward_with_dropout(AL, Y, caches, activations, masks, keep_prob, *, negative_slope=0.01,
                          sample_weight=None):
    """Backward propagation through the masks of :func:`forward_with_dropout`."""
    AL, Y, caches, activations = prepare_backward(AL, Y, caches, activations)
    keep_prob = check_keep_prob(keep_prob)
    masks = prepare_masks(masks, caches, AL.dtype)
    L = len(caches)
    grads = {}
    dA = cost_gradient(AL, Y, activations[-1], sample_weight=sample_weight)
    for l in range(L, 0, -1):
        if l < L:
            dA = dA * masks[l - 1] / keep_prob
        dA, dW, db = linear_activation_backward(
            dA, caches[l - 1], activations[l - 1], negative_slope=negative_slope
        )
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA, dW, db
    return grads


# ---------------------------------------------------------------- predict


def predict(X, parameters, activations, *, negative_slope=0.01):
    """Predictions of one forward pass.

    Returns
    -------
    ndarray
        sigmoid output: int64 array of shape (nL, m), ``AL > 0.5``;
        softmax output: int64 array of shape (m,), the argmax of each column;
        identity or relu output: AL itself, shape (nL, m).
    """
    AL, _ = forward(X, parameters, activations, negative_slope=negative_slope)
    return decide(AL, activations[-1])

