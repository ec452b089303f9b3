"""The step functions of ``deepnet_fast.reference``, running on Numba kernels.

Same names, signatures, conventions (one column per example) and results as the
reference, within floating-point tolerance; arrays keep their dtype. Validation
is shared with the reference, then each function hands contiguous arrays to a
kernel of :mod:`deepnet_fast.kernels` and allocates its outputs.
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
    prepare_slope,
)
from ._validation import check_keep_prob, check_sample_weight
from .initialization import initialize_optimizer_state, initialize_parameters
from .kernels import activations as _act
from .kernels import dropout as _drop
from .kernels import linear as _lin
from .kernels import losses as _loss
from .kernels import updates as _upd
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


def _c(a):
    # Kernels take C-contiguous arrays (BLAS would copy anything else anyway).
    return np.ascontiguousarray(a)


def _scalar(x, dtype):
    return np.dtype(dtype).type(x)


def linear_forward(A_prev, W, b):
    """Z = W A_prev + b. See :func:`deepnet_fast.reference.linear_forward`."""
    A_prev, W, b = prepare_linear_forward(A_prev, W, b)
    Z = np.empty((W.shape[0], A_prev.shape[1]), dtype=W.dtype)
    _lin.linear_forward(_c(W), _c(A_prev), _c(b), Z)
    return Z


def activation_forward(Z, activation, *, negative_slope=0.01):
    """A = g(Z). See :func:`deepnet_fast.reference.activation_forward`."""
    Z, slope = prepare_activation(Z, activation, negative_slope)
    A = np.empty_like(Z, order="C")
    _act.activation_forward(_c(Z), registry.ACTIVATIONS[activation], _scalar(slope, Z.dtype), A)
    return A


def linear_activation_forward(A_prev, W, b, activation, *, negative_slope=0.01):
    """One layer forward with bias and activation fused; returns ``(A, LayerCache)``."""
    A_prev, W, b, slope = prepare_linear_activation_forward(A_prev, W, b, activation,
                                                            negative_slope)
    A_prev, W, b = _c(A_prev), _c(W), _c(b)
    Z = np.empty((W.shape[0], A_prev.shape[1]), dtype=W.dtype)
    A = np.empty_like(Z)
    _lin.linear_activation_forward(W, A_prev, b, registry.ACTIVATIONS[activation],
                                   _scalar(slope, W.dtype), Z, A)
    return A, LayerCache(A_prev, W, b, Z)


def forward(X, parameters, activations, *, negative_slope=0.01):
    """Forward propagation through all L layers; returns ``(AL, caches)``."""
    X, L, activations, slope = prepare_forward(X, parameters, activations, negative_slope)
    A, caches = X, []
    for l in range(1, L + 1):
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], activations[l - 1], negative_slope=slope
        )
        caches.append(cache)
    return A, caches


def compute_cost(AL, Y, activation="sigmoid", *, sample_weight=None):
    """Mean loss implied by the output activation (weighted by ``sample_weight``
    when given). See the reference."""
    AL, Y = prepare_cost(AL, Y, activation)
    w = check_sample_weight(sample_weight, AL.shape[1], AL.dtype)
    loss = _loss.cost_sum(_c(AL), _c(Y), registry.OUTPUT_HEADS[activation].loss_code,
                          _no_weights(AL.dtype) if w is None else w)
    return float(loss / (AL.shape[1] if w is None else np.sum(w, dtype=np.float64)))


def cost_gradient(AL, Y, activation="sigmoid", *, sample_weight=None):
    """dA[L] times m; computed by the reference formula (it is not a hot path:
    the compiled training loop goes straight to dZ[L] = AL - Y)."""
    from . import reference
    return reference.cost_gradient(AL, Y, activation, sample_weight=sample_weight)


def _no_weights(dtype):
    return np.empty(0, dtype=dtype)


def linear_backward(dZ, A_prev, W):
    """Returns ``(dA_prev, dW, db)``. See :func:`deepnet_fast.reference.linear_backward`."""
    dZ, A_prev, W = prepare_linear_backward(dZ, A_prev, W)
    dt = W.dtype
    dA_prev = np.empty(A_prev.shape, dtype=dt)
    dW = np.empty(W.shape, dtype=dt)
    db = np.empty((W.shape[0], 1), dtype=dt)
    _lin.linear_backward(_c(dZ), _c(A_prev), _c(W), _scalar(1 / A_prev.shape[1], dt),
                         dA_prev, dW, db)
    return dA_prev, dW, db


def activation_backward(dA, Z, activation, *, negative_slope=0.01):
    """dZ = dA * g'(Z). See :func:`deepnet_fast.reference.activation_backward`."""
    dA, Z, slope = prepare_activation_backward(dA, Z, activation, negative_slope)
    dZ = np.empty(Z.shape, dtype=Z.dtype)
    _act.activation_backward(_c(dA), _c(Z), registry.ACTIVATIONS[activation],
                             _scalar(slope, Z.dtype), dZ)
    return dZ


def linear_activation_backward(dA, cache, activation, *, negative_slope=0.01):
    """One layer backwards with the derivative fused; returns ``(dA_prev, dW, db)``."""
    A_prev, W, b, Z = prepare_cache(cache)
    dA, Z, slope = prepare_activation_backward(dA, Z, activation, negative_slope)
    dZ, A_prev, W = prepare_linear_backward(dA, A_prev, W)
    dt = W.dtype
    dA_prev = np.empty(A_prev.shape, dtype=dt)
    dW = np.empty(W.shape, dtype=dt)
    db = np.empty((W.shape[0], 1), dtype=dt)
    _lin.linear_activation_backward(
        _c(dA), _c(Z), _c(A_prev), _c(W), registry.ACTIVATIONS[activation], _scalar(slope, dt),
        _scalar(1 / A_prev.shape[1], dt), np.empty(Z.shape, dtype=dt), dA_prev, dW, db)
    return dA_prev, dW, db


def backward(AL, Y, caches, activations, *, negative_slope=0.01, sample_weight=None):
    """Backward propagation through all layers.

    The output layer goes straight to ``dZ[L] = AL - Y``, the exact gradient of
    each canonical loss through its output activation (times the output's
    derivative for squared error through ReLU, and ``m w_j / Σ w`` per column
    with ``sample_weight``), instead of dividing by AL and multiplying by its
    derivative as the reference does. The two agree within rounding, except
    where an output has saturated to exactly 0 or 1: there the reference's
    clipped division times σ'(z) = 0 gives 0, and ``AL - Y`` the true gradient.

    Returns
    -------
    dict
        ``dW1, db1, ..., dWL, dbL`` and ``dA0, ..., dA{L-1}``.
    """
    AL, Y, caches, activations = prepare_backward(AL, Y, caches, activations)
    slope = prepare_slope(negative_slope)
    L = len(caches)
    dt = AL.dtype
    w = check_sample_weight(sample_weight, AL.shape[1], dt)
    head = registry.OUTPUT_HEADS[activations[-1]]
    dZ = np.empty(AL.shape, dtype=dt)
    scale = 1 if w is None else AL.shape[1] / np.sum(w, dtype=np.float64)
    _loss.output_delta(_c(AL), _c(Y), _scalar(scale, dt), dZ,
                       _no_weights(dt) if w is None else w, head.code, _scalar(slope, dt),
                       head.loss_code)
    grads = {}
    for l in range(L, 0, -1):
        A_prev, W, _, _ = caches[l - 1]
        dA_prev, dW, db = linear_backward(dZ, A_prev, W)
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA_prev, dW, db
        if l > 1:
            dZ = activation_backward(dA_prev, caches[l - 2].Z, activations[l - 2],
                                     negative_slope=slope)
    return grads


def update_parameters(parameters, grads, learning_rate):
    """Gradient descent ``W -= α dW``, ``b -= α db``; returns a new dict."""
    return update_parameters_with_optimizer(parameters, grads, None, None, 1, learning_rate)[0]


def l2_cost(parameters, l2, m):
    """The L2 penalty ``λ/(2m) Σ_l ‖W[l]‖²``."""
    L = prepare_l2(parameters, l2, m)
    # Σ W² in float64, as the reference and the training kernels sum it: a
    # float32 product overflows for weights that float64 squares finitely.
    total = 0.0
    for l in range(1, L + 1):
        W = parameters[f"W{l}"].ravel().astype(np.float64, copy=False)
        total += float(W @ W)
    return float(l2 / (2 * m) * total)


def update_parameters_with_optimizer(parameters, grads, v, s, t, learning_rate, optimizer="gd",
                                     beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One optimizer step, fused into one kernel call per parameter array.

    See :func:`deepnet_fast.reference.update_parameters_with_optimizer`.
    """
    # Validation guarantees that every array the kernel indexes (gradient and,
    # when the optimizer uses them, moments) has its parameter's size and dtype.
    step = prepare_optimizer_step(parameters, grads, v, s, t, learning_rate, optimizer,
                                  beta, beta1, beta2, epsilon)
    rule = registry.OPTIMIZERS[optimizer]
    code = rule.code
    uses_v, uses_s = "v" in rule.moments, "s" in rule.moments
    new_p = dict(parameters)
    new_v = dict(step.v) if uses_v else v
    new_s = dict(step.s) if uses_s else s
    for l in range(1, step.L + 1):
        for key in ("W", "b"):
            P = parameters[f"{key}{l}"]
            g = f"d{key}{l}"
            h = np.empty(_upd.N_HYPER, dtype=P.dtype)
            _upd.make_hyper(h, step.lr, step.beta, step.beta1, step.beta2, step.epsilon, step.t)
            out = np.array(P, order="C")
            dP = _c(step.grads[g]).ravel()
            vv = np.array(step.v[g], order="C") if uses_v else np.empty(0, P.dtype)
            ss = np.array(step.s[g], order="C") if uses_s else np.empty(0, P.dtype)
            _upd.apply_update(out.ravel(), dP, vv.ravel(), ss.ravel(), code, h)
            new_p[f"{key}{l}"] = out
            if uses_v:
                new_v[g] = vv
            if uses_s:
                new_s[g] = ss
    return new_p, new_v, new_s


def predict(X, parameters, activations, *, negative_slope=0.01):
    """Predictions of one forward pass. See :func:`deepnet_fast.reference.predict`."""
    AL, _ = forward(X, parameters, activations, negative_slope=negative_slope)
    return decide(AL, activations[-1])


# ---------------------------------------------------------------- dropout


def dropout_mask(shape, keep_prob, seed, step, layer):
    """Boolean keep mask of a layer's activations (shape (n[l], m)), from the
    counter-based stream the training kernels draw. See
    :func:`deepnet_fast.reference.dropout_mask`."""
    (n, m), keep_prob, seed, step, layer = prepare_dropout_mask(shape, keep_prob, seed, step,
                                                                layer)
    return _drop.keep_mask(n, m, seed, step, layer, float(keep_prob))


def forward_with_dropout(X, parameters, activations, keep_prob, seed, step, *, negative_slope=0.01):
    """Forward propagation with inverted dropout on the hidden layers; returns
    ``(AL, caches, masks)``. See :func:`deepnet_fast.reference.forward_with_dropout`."""
    X, L, activations, slope = prepare_forward(X, parameters, activations, negative_slope)
    keep_prob, seed, step = prepare_dropout(keep_prob, seed, step)
    A, caches, masks = X, [], []
    for l in range(1, L + 1):
        A, cache = linear_activation_forward(
            A, parameters[f"W{l}"], parameters[f"b{l}"], activations[l - 1], negative_slope=slope
        )
        caches.append(cache)
        if l < L:
            n, m = A.shape
            # The kernel draws the mask again from its key rather than reading
            # the returned one, as the training kernels do.
            _drop.apply_mask(A, np.uint64(_drop.layer_key(seed, step, l)), float(keep_prob),
                             _scalar(1 / keep_prob, A.dtype), 0, 0, m)
            masks.append(_drop.keep_mask(n, m, seed, step, l, float(keep_prob)))
    return A, caches, masks


def backward_with_dropout(AL, Y, caches, activations, masks, keep_prob, *, negative_slope=0.01,
                          sample_weight=None):
    """Backward propagation through the masks of :func:`forward_with_dropout`,
    from ``dZ[L] = AL - Y`` as :func:`backward`. See
    :func:`deepnet_fast.reference.backward_with_dropout`."""
    AL, Y, caches, activations = prepare_backward(AL, Y, caches, activations)
    keep_prob = check_keep_prob(keep_prob)
    masks = prepare_masks(masks, caches, AL.dtype)
    grads = backward(AL, Y, caches[-1:], activations[-1:], negative_slope=negative_slope,
                     sample_weight=sample_weight)
    L = len(caches)
    if L == 1:
        return grads
    out = {f"dW{L}": grads["dW1"], f"db{L}": grads["db1"], f"dA{L - 1}": grads["dA0"]}
    dA = grads["dA0"]
    for l in range(L - 1, 0, -1):
        dA = dA * masks[l - 1] * _scalar(1 / keep_prob, dA.dtype)
        dA, dW, db = linear_activation_backward(dA, caches[l - 1], activations[l - 1],
                                                negative_slope=negative_slope)
        out[f"dA{l - 1}"], out[f"dW{l}"], out[f"db{l}"] = dA, dW, db
    return out
