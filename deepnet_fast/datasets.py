"""Datasets for the command line: scikit-learn's bundled ones or the user's own file."""

import os

import numpy as np

BUNDLED = ("digits", "breast_cancer", "iris", "wine", "diabetes")
REGRESSION = ("diabetes",)


def load_dataset(name_or_path, target_column=-1):
    """Return ``(X, y, task)`` with task ``"classification"`` or ``"regression"``.

    Parameters
    ----------
    name_or_path : str
        A bundled scikit-learn dataset (``digits``, ``breast_cancer``, ``iris``,
        ``wine``, ``diabetes``: no network needed), a ``.npz`` file with arrays
        ``X`` and ``y``, or a ``.csv`` file of numbers with an optional header
        row, the target in column ``target_column``.
    """
    if name_or_path in BUNDLED:
        from sklearn import datasets
        X, y = getattr(datasets, f"load_{name_or_path}")(return_X_y=True)
        task = "regression" if name_or_path in REGRESSION else "classification"
        return X.astype(np.float64), y, task
    path = os.fspath(name_or_path)
    if not os.path.exists(path):
        raise ValueError(f"--data must be one of {list(BUNDLED)} or an existing .csv/.npz file; "
                         f"got {path!r}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f.files or "y" not in f.files:
                raise ValueError(f"{path} must contain arrays 'X' and 'y'; it has {f.files}")
            X, y = f["X"], f["y"]
    elif path.endswith(".csv"):
        with open(path) as fh:
            first = fh.readline()
        try:
            [float(v) for v in first.strip().split(",")]
            skip = 0
        except ValueError:
            skip = 1
        try:
            data = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path} is not a numeric CSV file: {exc}") from None
        y = data[:, target_column]
        X = np.delete(data, target_column % data.shape[1], axis=1)
    else:
        raise ValueError(f"--data file must end in .csv or .npz; got {path!r}")
    y = np.asarray(y)
    is_labels = y.ndim == 1 and (y.dtype.kind in "iub" or np.all(y == np.round(y))) and len(np.unique(y)) <= max(2, len(y) // 5)
    return np.asarray(X, dtype=np.float64), y, "classification" if is_labels else "regression"
