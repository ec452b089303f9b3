"""Input checks of the training API: sample rows of the network's width and
dtype, and which inputs are dask collections."""

import numpy as np

from ._validation import as_float_array


def is_dask(obj):
    """Whether ``obj`` is a dask collection (array, DataFrame, Series).

    Checked by module name so that dask is never imported for in-memory data.
    """
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr")


def check_rows(X, n_features, dtype, name="X"):
    """``X`` as a C-contiguous ``(n_samples, n_features)`` array of ``dtype``,
    finite, with at least one sample.

    Raises
    ------
    TypeError, ValueError
        Naming ``name``.
    """
    X = as_float_array(X, name, ndim=2, dtype=dtype, finite=True)
    if X.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one sample; got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns) to match "
                         f"layer_dims[0]; got shape {X.shape}")
    return np.ascontiguousarray(X)
