"""Prediction and scoring of dask input, block by block where the blocks live."""

import copy

import dask
import dask.array as da
import numpy as np

from .._validation import check_choice


def _predict_block(block, net, method):
    if block.shape[0] == 0:
        nL = net.layer_dims[-1]
        kind = _output_kind(net, method)
        return np.empty((0,) if kind[1] == 1 else (0, nL), kind[0])
    return getattr(net, method)(block)


def _output_kind(net, method):
    """dtype and number of dimensions of ``predict``/``predict_proba``."""
    nL, out = net.layer_dims[-1], net.output_activation
    if method == "predict_proba":
        return net.dtype, 2
    if out == "softmax":
        return np.dtype(np.int64), 1
    dtype = np.dtype(np.int64) if out == "sigmoid" else net.dtype
    return dtype, 1 if nL == 1 else 2


def _frame_to_array(obj):
    if isinstance(obj, da.Array):
        return obj
    if hasattr(obj, "to_dask_array"):
        return obj.to_dask_array()
    raise TypeError(f"dask input must be a dask array, DataFrame or Series; got "
                    f"{type(obj).__name__}")


def predict_dask(net, X, method):
    """``net.predict`` or ``net.predict_proba`` block by block: a lazy dask array.

    The parameters are those of the network when this is called (a snapshot
    travels with the graph once, not once per block).

    Parameters
    ----------
    X : dask array or dask DataFrame of shape (n_samples, n_features)
    method : {"predict", "predict_proba"}

    Returns
    -------
    dask.array.Array
        Row chunks as ``X``'s; one row per sample, as the in-memory method.
    """
    check_choice(method, "method", ("predict", "predict_proba"))
    arr = _frame_to_array(X)
    n0 = net.layer_dims[0]
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D array; got shape {arr.shape}")
    if not np.isnan(arr.shape[1]) and arr.shape[1] != n0:
        raise ValueError(f"X must have {n0} features (columns) to match layer_dims[0]; "
                         f"got shape {arr.shape}")
    if arr.numblocks[1] > 1:
        arr = arr.rechunk({1: -1})
    model = dask.delayed(_inference_copy(net), pure=True)
    dtype, ndim = _output_kind(net, method)
    if ndim == 1:
        return arr.map_blocks(_predict_block, model, method, dtype=dtype, drop_axis=1,
                              meta=np.empty((0,), dtype))
    nL = net.layer_dims[-1]
    return arr.map_blocks(_predict_block, model, method, dtype=dtype,
                          chunks=(arr.chunks[0], (nL,)), meta=np.empty((0, 0), dtype))


def _block_statistics(X, y, net, what):
    """Sums over one block from which the whole data's cost or score follow."""
    from .. import reference as R

    X = net._check_X(X)
    Y = net._encode_y(y, X.shape[0])
    m = X.shape[0]
    if m == 0:
        return None
    A = net._output(X)                                  # (nL, m)
    if what == "cost":
        return m, R.compute_cost(A, np.ascontiguousarray(Y.T), net.output_activation) * m
    P = A.T
    if net.output_activation == "softmax":
        return m, int(np.sum(np.argmax(P, axis=1) == np.argmax(Y, axis=1)))
    if net.output_activation == "sigmoid":
        return m, int(np.sum(np.all((P > 0.5) == (Y > 0.5), axis=1)))
    mean = Y.mean(axis=0, dtype=np.float64)
    return (m, mean, np.sum((Y - mean) ** 2, axis=0, dtype=np.float64),
            np.sum((Y - P) ** 2, axis=0, dtype=np.float64))


def _combine_r2(parts):
    """R² from per-block (n, mean, Σ(y - mean)², Σ(y - p)²), merging the
    blocks' spreads with Chan's update (no cancellation in Σy² - (Σy)²/n)."""
    n, mean, m2, ss_res = parts[0]
    for nb, mean_b, m2_b, res_b in parts[1:]:
        delta = mean_b - mean
        total = n + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2_b + delta ** 2 * (n * nb / total)
        ss_res = ss_res + res_b
        n = total
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(m2 > 0, 1 - ss_res / np.where(m2 > 0, m2, 1), 0.0)
    return float(np.mean(r2))


def _aligned_blocks(X, y, n_features):
    """Delayed row blocks of X and of y, y cut at X's chunk boundaries."""
    arr, yarr = _frame_to_array(X), _frame_to_array(y)
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D array; got shape {arr.shape}")
    if not np.isnan(arr.shape[1]) and arr.shape[1] != n_features:
        raise ValueError(f"X must have {n_features} features (columns) to match "
                         f"layer_dims[0]; got shape {arr.shape}")
    if np.isnan(arr.shape[0]):
        arr = arr.compute_chunk_sizes()
    if np.isnan(yarr.shape[0]):
        yarr = yarr.compute_chunk_sizes()
    if arr.shape[0] != yarr.shape[0]:
        raise ValueError(f"X and y must have the same number of samples; got {arr.shape[0]} "
                         f"and {yarr.shape[0]}")
    arr = arr.rechunk({1: -1})
    yarr = yarr.rechunk({0: arr.chunks[0], **({1: -1} if yarr.ndim == 2 else {})})
    return arr.to_delayed().ravel(), yarr.to_delayed().ravel()


def score_dask(net, X, y, what):
    """``net.cost`` or ``net.score`` of dask data, computed block by block.

    Each block is scored where it lives; only a few sums per block reach the
    client, which combines them into the value the in-memory method would
    give for the same data (up to rounding).

    Parameters
    ----------
    X : dask array or dask DataFrame of shape (n_samples, n_features)
    y : dask array, DataFrame or Series with the same number of rows
    what : {"cost", "score"}

    Returns
    -------
    float
    """
    check_choice(what, "what", ("cost", "score"))
    Xb, yb = _aligned_blocks(X, y, net.layer_dims[0])
    model = dask.delayed(_inference_copy(net), pure=True)
    parts = dask.compute(*[dask.delayed(_block_statistics)(xb, b, model, what)
                           for xb, b in zip(Xb, yb)])
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("X must contain at least one sample")
    if what == "score" and net.output_activation == "identity":
        return _combine_r2(parts)
    return float(sum(p[1] for p in parts) / sum(p[0] for p in parts))


def _inference_copy(net):
    """The network with a copy of its parameters and nothing else of weight."""
    clone = copy.copy(net)
    clone._theta = net._theta.copy()
    clone._v = clone._s = np.zeros(0, net.dtype)
    clone.history_ = None
    if isinstance(clone.init, dict):
        clone.init = "he"
    return clone
