"""Parameter initialisation, shared by both backends (it is not a hot path)."""

import numpy as np

from ._validation import _shown, check_dtype, check_layer_dims, check_parameters

INIT_SCALES = {
    "he": lambda n_prev: np.sqrt(2.0 / n_prev),
    "xavier": lambda n_prev: np.sqrt(1.0 / n_prev),
    "small": lambda n_prev: 0.01,
}


def initialize_parameters(layer_dims, init="he", seed=None, dtype=np.float64):
    """Draw the weights and zero the biases of an L-layer network.

    Parameters
    ----------
    layer_dims : sequence of int
        ``[n0, n1, ..., nL]``: input size then the units of each layer.
    init : {"he", "xavier", "small"} or dict
        ``"he"`` draws ``randn * sqrt(2 / n[l-1])``, ``"xavier"``
        ``randn * sqrt(1 / n[l-1])`` and ``"small"`` ``randn * 0.01``. A dict
        ``{"W1": ..., "b1": ..., ...}`` is copied (and cast to ``dtype``) so a run
        can start from published initial weights.
    seed : int, numpy.random.Generator or None
        Weights are drawn in float64, layer by layer in the order W1, W2, ...,
        from ``numpy.random.default_rng(seed)``, then cast to ``dtype``; the same
        seed therefore gives the same network in float32 and float64.
    dtype : {"float32", "float64"}

    Returns
    -------
    dict
        ``{"W1": (n1, n0), "b1": (n1, 1), ..., "WL", "bL"}``.
    """
    dims = check_layer_dims(layer_dims)
    dt = check_dtype(dtype)
    L = len(dims) - 1
    if isinstance(init, dict):
        check_parameters(init, L, name="init")
        params = {}
        for l in range(1, L + 1):
            W = np.asarray(init[f"W{l}"])
            if W.shape != (dims[l], dims[l - 1]):
                raise ValueError(
                    f"init['W{l}'] must have shape {(dims[l], dims[l - 1])} for layer_dims "
                    f"{dims}; got {W.shape}"
                )
            params[f"W{l}"] = np.array(W, dtype=dt, order="C")
            params[f"b{l}"] = np.array(init[f"b{l}"], dtype=dt, order="C")
        return params
    if not isinstance(init, str):
        raise TypeError(f"init must be one of {list(INIT_SCALES)} or a dict of arrays; got {_shown(init)}")
    if init not in INIT_SCALES:
        raise ValueError(f"init must be one of {list(INIT_SCALES)} or a dict of arrays; got {init!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    params = {}
    for l in range(1, L + 1):
        W = rng.standard_normal((dims[l], dims[l - 1])) * INIT_SCALES[init](dims[l - 1])
        params[f"W{l}"] = W.astype(dt)
        params[f"b{l}"] = np.zeros((dims[l], 1), dtype=dt)
    return params


def initialize_optimizer_state(parameters):
    """Zero first and second moments ``v``, ``s`` (keys ``dW1, db1, ...``) for
    every parameter array, for momentum, RMSprop and Adam."""
    v = {f"d{k}": np.zeros_like(p) for k, p in parameters.items()}
    s = {f"d{k}": np.zeros_like(p) for k, p in parameters.items()}
    return v, s
