"""Parameter initialisation, shared by both backends (it is not a hot path)."""

import numbers
import warnings

import numpy as np

from ._validation import check_dtype, check_layer_dims, check_not_masked, shown
from .registry import INITIALIZERS

SEED_LIMIT = 2**63
"""Seeds are integers in [0, SEED_LIMIT): the kernels' dropout streams take
them as signed 64-bit integers."""


def check_seed(seed, name="seed"):
    """``seed`` as an int in [0, 2**63), or None."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [0, 2**63) or None; got {shown(seed)}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**63) or None; got {seed}")
    return int(seed)


def _init_array(value, name, shape, dtype, arg="init"):
    """One array of an ``init`` dict (the argument ``arg``): real numbers of
    ``shape``, finite, as ``dtype``."""
    check_not_masked(value, f"{arg}[{name!r}]")
    try:
        arr = np.asarray(value)
    except ValueError:          # ragged nested lists
        raise ValueError(f"{arg}[{name!r}] must be a rectangular array of shape {shape}; got "
                         f"{shown(value)}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{arg}[{name!r}] must hold real numbers; got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{arg}[{name!r}] must have shape {shape}; got {arr.shape}")
    with np.errstate(over="ignore"):     # an overflow is refused just below, by name
        out = np.array(arr, dtype=dtype, order="C")
    if not np.isfinite(out).all():
        raise ValueError(f"{arg}[{name!r}] must hold finite numbers (no NaN or infinity"
                         + (f" after conversion to {np.dtype(dtype).name}" if np.isfinite(arr).all()
                            else "") + ")")
    return out


def initialize_parameters(layer_dims, init="he", seed=None, dtype=np.float64, *,
                          warn_symmetric=True, name="init"):
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
    seed : int in [0, 2**63), numpy.random.Generator or None
        Weights are drawn in float64, layer by layer in the order W1, W2, ...,
        from ``numpy.random.default_rng(seed)``, then cast to ``dtype``; the same
        seed therefore gives the same network in float32 and float64.
    dtype : {"float32", "float64"}
    warn_symmetric : bool, default=True
        Warn when a dict ``init`` makes hidden units identical (see
        :func:`symmetric_units`).
    name : str, default="init"
        What error messages and the symmetric-units warning call a dict
        ``init`` (a caller's own argument, such as ``parameters``).

    Returns
    -------
    dict
        ``{"W1": (n1, n0), "b1": (n1, 1), ..., "WL", "bL"}``.
    """
    dims = check_layer_dims(layer_dims)
    dt = check_dtype(dtype)
    L = len(dims) - 1
    if isinstance(init, dict):
        missing = [f"{p}{l}" for l in range(1, L + 1) for p in "Wb" if f"{p}{l}" not in init]
        if missing:
            raise ValueError(f"{name} is missing {missing} (expected W1..W{L}, b1..b{L} for "
                             f"layer_dims {dims})")
        expected = {f"{p}{l}" for l in range(1, L + 1) for p in "Wb"}
        extra = sorted(map(str, set(init) - expected))
        if extra:
            # A W3 for a two-layer network is a mistake the caller should hear of.
            raise ValueError(f"{name} has entries {extra} beyond W1..W{L}, b1..b{L} of "
                             f"layer_dims {dims}")
        params = {}
        for l in range(1, L + 1):
            params[f"W{l}"] = _init_array(init[f"W{l}"], f"W{l}", (dims[l], dims[l - 1]), dt, name)
            params[f"b{l}"] = _init_array(init[f"b{l}"], f"b{l}", (dims[l], 1), dt, name)
        if warn_symmetric:
            _warn_symmetric_units(params, L, name)
        return params
    if not isinstance(init, str):
        raise TypeError(f"init must be one of {list(INITIALIZERS)} or a dict of arrays; got {shown(init)}")
    if init not in INITIALIZERS:
        raise ValueError(f"init must be one of {list(INITIALIZERS)} or a dict of arrays; got {init!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(check_seed(seed))
    params = {}
    for l in range(1, L + 1):
        W = rng.standard_normal((dims[l], dims[l - 1])) * INITIALIZERS[init](dims[l - 1])
        params[f"W{l}"] = W.astype(dt)
        params[f"b{l}"] = np.zeros((dims[l], 1), dtype=dt)
    return params


def symmetric_units(parameters, layer):
    """Groups of units of hidden layer ``layer`` that start identical: the same
    incoming weights and bias, and the same outgoing weights.

    Such units compute the same activation and receive the same gradient, so
    gradient descent keeps them identical for ever: the layer acts as if it
    had one unit per group. This is why the course draws small *random*
    weights rather than zeros (biases may start at zero).

    Returns
    -------
    list of ndarray
        The unit indices of each group of two or more.
    """
    W, b, W_next = parameters[f"W{layer}"], parameters[f"b{layer}"], parameters[f"W{layer + 1}"]
    rows = np.hstack([W, b, W_next.T])
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    return [np.flatnonzero(inverse.ravel() == g) for g in np.flatnonzero(counts > 1)]


def _warn_symmetric_units(params, L, name="init"):
    """Warn, naming the argument ``name`` that gave ``params``, of each hidden
    layer whose units start identical."""
    for l in range(1, L):
        groups = symmetric_units(params, l)
        if groups:
            units = ", ".join(str(g[:4].tolist()) + ("..." if len(g) > 4 else "")
                              for g in groups[:3])
            remedy = ("Draw random weights (e.g. init='he')" if name == "init"
                      else "Pass random weights (such as init='he' draws)")
            warnings.warn(f"{name}: units {units} of hidden layer {l} start identical (same "
                          "incoming weights, bias and outgoing weights); gradient descent keeps "
                          "them identical, so the layer learns as if it had fewer units. "
                          f"{remedy} to break the symmetry.", UserWarning, stacklevel=3)


def initialize_optimizer_state(parameters):
    """Zero first and second moments ``v``, ``s`` (keys ``dW1, db1, ...``) for
    every parameter array, for momentum, RMSprop and Adam."""
    v = {f"d{k}": np.zeros_like(p) for k, p in parameters.items()}
    s = {f"d{k}": np.zeros_like(p) for k, p in parameters.items()}
    return v, s
