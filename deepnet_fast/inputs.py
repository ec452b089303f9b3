"""Input checks of the training API: sample rows of the network's width and
dtype (dense, or sparse CSR), and which inputs are dask collections.

Sparse rows are taken as SciPy's CSR (``csr_matrix`` or ``csr_array``) and
kept sparse all the way into the kernels (see ``kernels/sparse.py``): their
nonzeros are checked, and converted only when their dtype is not the
network's. Other sparse formats are refused rather than converted, so that no
copy of the data is made behind the user's back: ``X.tocsr()`` makes that
copy (CSC, COO, ...) explicitly. The scikit-learn estimators convert any
format, as scikit-learn's own estimators do.
"""

import numpy as np

from ._validation import as_float_array
from .kernels.training import all_finite

_INT32_MAX = np.iinfo(np.int32).max


def is_dask(obj):
    """Whether ``obj`` is a dask collection (array, DataFrame, Series).

    Checked by module name so that dask is never imported for in-memory data
    (a plain ndarray, a prediction's usual input, is answered first).
    """
    kind = type(obj)
    return kind is not np.ndarray and kind.__module__.split(".")[0] in ("dask", "dask_expr")


def is_sparse(obj):
    """Whether ``obj`` is a SciPy sparse matrix or array (of any format).

    Checked by module name so that SciPy's sparse package is not imported for
    dense data (a plain ndarray is answered first).
    """
    kind = type(obj)
    return kind is not np.ndarray and kind.__module__.startswith("scipy.sparse")


def check_rows(X, n_features, dtype, name="X", accept_sparse=False):
    """``X`` as a C-contiguous ``(n_samples, n_features)`` array of ``dtype``,
    finite, with at least one sample; with ``accept_sparse``, a SciPy CSR
    matrix is checked by :func:`check_sparse_rows` instead.

    Raises
    ------
    TypeError, ValueError
        Naming ``name``.
    """
    if _ready_rows(X, n_features, dtype):
        # A prediction's usual input, checked in 0.5 us (digits-small, one
        # row): np.isfinite(X).all() alone took 1.1-1.4 us at 1-32 rows (a
        # temporary and two ufunc calls), the general path 2.1 us.
        if not all_finite(X.ravel()):
            raise ValueError(f"{name} must not contain NaN or infinity")
        return X
    if is_sparse(X):
        if not accept_sparse:
            raise TypeError(f"{name} must be a dense array here; got a sparse {X.format} "
                            f"matrix (densify it with {name}.toarray())")
        X = check_sparse_rows(X, dtype, name)
    else:
        X = as_float_array(X, name, ndim=2, dtype=dtype, finite=True)
    if X.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one sample; got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns) to match "
                         f"layer_dims[0]; got shape {X.shape}")
    return X if is_sparse(X) else np.ascontiguousarray(X)


def _ready_rows(X, n_features, dtype):
    """Whether ``X`` is already what :func:`check_rows` returns, but for the
    finiteness of its values: a plain, C-contiguous, aligned, writable
    ``(n_samples >= 1, n_features)`` ndarray of ``dtype`` (as the training
    kernels pass arrays to ``all_finite``: a read-only or unaligned array
    would be another Numba type, another compile)."""
    if type(X) is not np.ndarray or X.dtype != dtype or X.ndim != 2 \
            or X.shape[1] != n_features or X.shape[0] == 0:
        return False
    flags = X.flags
    return flags.c_contiguous and flags.aligned and flags.writeable


def check_sparse_rows(X, dtype, name="X"):
    """A SciPy CSR matrix or array with finite values of ``dtype`` and a sound
    structure (the kernels index by it without bounds checks); other sparse
    formats raise ``TypeError``.

    Returns a CSR of the same class sharing ``X``'s arrays, except ``data``
    when its dtype must change. Unsorted column indices, repeated columns
    (they add up) and explicit zeros are taken as they are.
    """
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be a 2-D array; got a sparse array of shape {X.shape}")
    if X.format != "csr":
        raise TypeError(f"{name} is a sparse {X.format} matrix; sparse input must be CSR "
                        f"(scipy.sparse.csr_matrix or csr_array): {name}.tocsr() converts it, "
                        "copying its nonzeros")
    m, n = X.shape
    indptr, indices = np.asarray(X.indptr), np.asarray(X.indices)
    if indptr.ndim != 1 or indptr.shape[0] != m + 1 or indptr.dtype.kind not in "iu":
        raise ValueError(f"{name} is not a valid CSR matrix: indptr must hold {m + 1} "
                         "integer row pointers")
    if indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise ValueError(f"{name} is not a valid CSR matrix: indices must be a 1-D integer "
                         f"array; got {indices.ndim}-D {indices.dtype}")
    nnz = int(indptr[-1]) if m else 0
    # Compared, not differenced: np.diff of unsigned pointers wraps around.
    if (m and indptr[0] != 0) or (m and (indptr[1:] < indptr[:-1]).any()) \
            or not (0 <= nnz <= min(indices.shape[0], X.data.shape[0])):
        raise ValueError(f"{name} is not a valid CSR matrix: its row pointers must start at "
                         "0, never decrease and end within its indices and data")
    if nnz and (indices[:nnz].min() < 0 or indices[:nnz].max() >= n):
        raise ValueError(f"{name} is not a valid CSR matrix: column indices must lie in "
                         f"[0, {n})")
    stored = X.data[:nnz]
    data = as_float_array(stored, f"{name}.data", ndim=1, dtype=dtype, finite=True)
    index = _index_dtype(n, nnz)
    if data is stored and nnz == X.data.shape[0] == indices.shape[0] \
            and indices.dtype == indptr.dtype == index:
        return X
    return type(X)((data, indices[:nnz].astype(index, copy=False),
                    indptr.astype(index, copy=False)), shape=X.shape)


def private_rows(X):
    """Checked rows that nobody else can change while a fit reads them: the
    arrays of a CSR matrix copied (O(nnz), once a fit), since its epochs and
    the gather buffer sized at the first one rely on the structure checked
    here; dense rows as a view of their own (O(1): the caller may still change
    the values, but no longer reshape the array the fit reads, X.shape = ...)."""
    if not is_sparse(X):
        return X.view()
    return type(X)((X.data.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape)


def _index_dtype(n_columns, nnz):
    """int32 when every column index and row pointer fits (SciPy's usual
    choice, so that one compiled kernel serves most matrices), else int64."""
    return np.int32 if max(n_columns, nnz) <= _INT32_MAX else np.int64


def kernel_rows(X):
    """Checked rows as the kernels take them: the dense array itself, or a
    :data:`~deepnet_fast.kernels.sparse.CSR` of C-contiguous arrays whose
    indices and row pointers share one integer type (:func:`_index_dtype`;
    :func:`check_sparse_rows` has already made them so)."""
    if not is_sparse(X):
        return X
    from .kernels.sparse import CSR
    int_dtype = _index_dtype(X.shape[1], int(X.indptr[-1]))
    return CSR(np.ascontiguousarray(X.data),
               np.ascontiguousarray(X.indices, dtype=int_dtype),
               np.ascontiguousarray(X.indptr, dtype=int_dtype))


def batch_nonzeros(X, batch_size):
    """The most nonzeros any ``batch_size`` rows of the CSR ``X`` hold: the
    size of the buffer that a shuffled batch is gathered into."""
    if batch_size <= 0:
        return 0
    lengths = np.diff(X.indptr)
    if batch_size >= lengths.shape[0]:
        return int(lengths.sum())
    return int(np.partition(lengths, -batch_size)[-batch_size:].sum())


def take_rows(X, rows):
    """Rows ``rows`` of dense or sparse checked rows, as checked rows (a copy)."""
    if is_sparse(X):
        return X[rows]
    return np.ascontiguousarray(X[rows])
