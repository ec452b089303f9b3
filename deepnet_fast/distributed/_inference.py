"""Prediction and scoring of dask input, block by block where the blocks live."""

from collections import namedtuple

import dask
import dask.array as da
import numpy as np
import scipy.sparse

from .._validation import check_choice
from ..engines import predict_output
from ..inputs import check_rows, is_dask

_Model = namedtuple("_Model", "arch backend theta")
"""What a block needs to be predicted: travels with the graph once."""


def _outputs(model, block):
    """The outputs (n_samples, nL) of one block of rows."""
    arch = model.arch
    X = check_rows(block, arch.layer_dims[0], arch.dtype)
    return np.ascontiguousarray(predict_output(arch, model.backend, model.theta, X).T)


def _predict_block(block, model, method):
    if block.shape[0] == 0:
        dtype, ndim = _output_kind(model.arch, method)
        return np.empty((0,) if ndim == 1 else (0, model.arch.layer_dims[-1]), dtype)
    P = _outputs(model, block)
    return P if method == "predict_proba" else model.arch.head.decide(P)


def _output_kind(arch, method):
    """dtype and number of dimensions of ``predict``/``predict_proba``."""
    if method == "predict_proba":
        return arch.dtype, 2
    return arch.head.prediction_kind(arch.layer_dims[-1], arch.dtype)


def frame_to_array(obj, name):
    """``obj`` (argument ``name``) as a dask array: a dask DataFrame or Series
    through ``to_dask_array``."""
    if isinstance(obj, da.Array):
        return obj
    if hasattr(obj, "to_dask_array"):
        return obj.to_dask_array()
    raise TypeError(f"{name} must be a dask array, DataFrame or Series; got "
                    f"{type(obj).__name__}")


def predict_dask(arch, backend, theta, X, method):
    """``net.predict`` or ``net.predict_proba`` block by block: a lazy dask array.

    The parameters are those of the network when this is called (a snapshot
    travels with the graph once, not once per block).

    Parameters
    ----------
    arch : Architecture
    backend : str
    theta : ndarray
        The flat parameters (copied).
    X : dask array or dask DataFrame of shape (n_samples, n_features)
    method : {"predict", "predict_proba"}

    Returns
    -------
    dask.array.Array
        Row chunks as ``X``'s; one row per sample, as the in-memory method.
    """
    check_choice(method, "method", ("predict", "predict_proba"))
    arr = frame_to_array(X, "X")
    n0 = arch.layer_dims[0]
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D array; got shape {arr.shape}")
    if not np.isnan(arr.shape[1]) and arr.shape[1] != n0:
        raise ValueError(f"X must have {n0} features (columns) to match layer_dims[0]; "
                         f"got shape {arr.shape}")
    if arr.numblocks[1] > 1:
        arr = arr.rechunk({1: -1})
    model = dask.delayed(_Model(arch, backend, theta.copy()), pure=True)
    dtype, ndim = _output_kind(arch, method)
    if ndim == 1:
        return arr.map_blocks(_predict_block, model, method, dtype=dtype, drop_axis=1,
                              meta=np.empty((0,), dtype))
    nL = arch.layer_dims[-1]
    return arr.map_blocks(_predict_block, model, method, dtype=dtype,
                          chunks=(arr.chunks[0], (nL,)), meta=np.empty((0, 0), dtype))


def _block_statistics(X, y, model, what):
    """Sums over one block from which the whole data's cost or score follow."""
    from .. import reference as R

    arch = model.arch
    if np.shape(X)[0] == 0:
        return None
    P = _outputs(model, X)
    Y = arch.head.encode(y, P.shape[0], arch.layer_dims[-1], arch.dtype)
    if what == "cost":
        return P.shape[0], R.compute_cost(np.ascontiguousarray(P.T), np.ascontiguousarray(Y.T),
                                          arch.head.name) * P.shape[0]
    return arch.head.parts(P, Y)


def _aligned_blocks(X, y, n_features):
    """Delayed row blocks of X and of y, y cut at X's chunk boundaries (one of
    the two may be in memory, as ``fit`` takes them: it is cut like the other)."""
    if not is_dask(X):
        if scipy.sparse.issparse(X):
            raise TypeError("X must be dense with a dask y (sparse input is scored in memory, "
                            "with y in memory too); got a scipy.sparse matrix")
        yarr = frame_to_array(y, "y")
        X = np.asarray(X)
        if np.isnan(yarr.shape[0]):
            yarr = yarr.compute_chunk_sizes()
        if X.ndim != 2 or X.shape[0] != yarr.shape[0]:
            raise ValueError(f"X must be a 2-D array of {yarr.shape[0]} rows, one per sample "
                             f"of y; got shape {X.shape}")
        X = da.from_array(X, chunks=(yarr.chunks[0], -1))
    elif not is_dask(y):
        y = np.asarray(y)
        arr = frame_to_array(X, "X")
        if np.isnan(arr.shape[0]):
            arr = arr.compute_chunk_sizes()
        if y.ndim not in (1, 2) or y.shape[0] != arr.shape[0]:
            raise ValueError(f"y must be a 1-D or 2-D array of {arr.shape[0]} rows, one per "
                             f"sample of X; got shape {y.shape}")
        y = da.from_array(y, chunks=(arr.chunks[0],) + (-1,) * (y.ndim - 1))
        X = arr
    arr, yarr = frame_to_array(X, "X"), frame_to_array(y, "y")
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


def score_dask(arch, backend, theta, X, y, what):
    """``DeepNet.cost`` or ``DeepNet.score`` of dask data, computed block by block.

    Each block is scored where it lives; only a few sums per block reach the
    client, which combines them (the output head's ``merge``) into the value
    the in-memory method would give for the same data (up to rounding).

    Parameters
    ----------
    arch : Architecture
    backend : str
    theta : ndarray
        The flat parameters (copied).
    X : dask array or dask DataFrame of shape (n_samples, n_features)
    y : dask array, DataFrame or Series with the same number of rows
        (or either one in memory, as ``fit`` takes them)
    what : {"cost", "score"}

    Returns
    -------
    float
    """
    check_choice(what, "what", ("cost", "score"))
    Xb, yb = _aligned_blocks(X, y, arch.layer_dims[0])
    model = dask.delayed(_Model(arch, backend, theta.copy()), pure=True)
    parts = dask.compute(*[dask.delayed(_block_statistics)(xb, b, model, what)
                           for xb, b in zip(Xb, yb)])
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("X must contain at least one sample")
    if what == "score":
        return arch.head.merge(parts)
    return float(sum(p[1] for p in parts) / sum(p[0] for p in parts))
