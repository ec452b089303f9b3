"""Datasets for the command line: scikit-learn's bundled ones or the user's own file.

Every problem with a file is a :class:`ValueError` whose message is one line
naming the file, so that the command line can print it as is.
"""

import csv
import numbers
import os
import warnings
import zipfile
import zlib

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
        ``X`` (2-D, real numbers) and ``y`` (numbers or strings), or a ``.csv``
        file of numbers with an optional header row, the target in column
        ``target_column``.
    target_column : int, default=-1
        Column of the target in a CSV file (negative counts from the end).

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Numbers, or strings for class labels given as text (a classification).
    task : str

    Raises
    ------
    ValueError
        With a one-line message for a missing, unreadable or malformed file.
    """
    if isinstance(target_column, (bool, np.bool_)) or not isinstance(target_column,
                                                                    numbers.Integral):
        raise TypeError(f"target_column must be an integer; got {target_column!r}")
    target_column = int(target_column)
    is_csv = str(name_or_path).lower().endswith(".csv")
    if target_column != -1 and not is_csv:
        raise ValueError(f"--target-column applies to a .csv file; --data {name_or_path} has "
                         "its target apart")
    if name_or_path in BUNDLED:
        from sklearn import datasets
        X, y = getattr(datasets, f"load_{name_or_path}")(return_X_y=True)
        task = "regression" if name_or_path in REGRESSION else "classification"
        return X.astype(np.float64), y, task
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        raise ValueError(f"--data {path!r} is a directory; expected one of {list(BUNDLED)} "
                         "or a .csv/.npz file")
    if not os.path.exists(path):
        raise ValueError(f"--data must be one of {list(BUNDLED)} or an existing .csv/.npz file; "
                         f"got {path!r}")
    if path.lower().endswith(".npz"):
        X, y = _read_npz(path)
    elif path.lower().endswith(".csv"):
        X, y = _read_csv(path, target_column)
    else:
        raise ValueError(f"--data file must end in .csv or .npz; got {path!r}")
    X, y = _check_arrays(X, y, path)
    if y.dtype.kind == "U":
        return X, y, "classification"
    return X, y, "classification" if _looks_like_labels(y) else "regression"


def _looks_like_labels(y):
    """Integer-valued targets with few distinct values are class labels."""
    if y.dtype.kind not in "iub" and not np.all(y == np.round(y)):
        return False
    return len(np.unique(y)) <= max(2, len(y) // 5)


# ---------------------------------------------------------------- .npz

def _read_npz(path):
    member = None       # the array being read, once the archive opened
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not arrays 'X' and 'y'")
        with archive:
            names = archive.files
            if "X" not in names or "y" not in names:
                X = y = None
            else:
                member = "X"
                X = archive["X"]
                member = "y"
                y = archive["y"]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        detail = _one_line(exc)
        if "allow_pickle" in detail and member is not None:
            fix = "X=X.astype(float)" if member == "X" else "y=y.astype(str)"
            raise ValueError(f"cannot read {path}: its array {member!r} holds Python objects "
                             "(dtype object), which are not loaded for safety; save it as "
                             f"numbers or text, e.g. np.savez(path, ..., {fix})") from None
        if "allow_pickle" in detail:
            # NumPy reads anything that is neither npz nor npy as a pickle.
            detail = ("it is not a .npz archive (NumPy would read it as pickled Python objects, "
                      "which are not loaded for safety)")
        raise ValueError(f"cannot read {path} as a .npz file: {detail}") from None
    if X is None:
        raise ValueError(f"{path} must contain arrays 'X' and 'y'; it has {names}")
    return X, y


# ---------------------------------------------------------------- .csv

def _read_csv(path, target_column):
    """Features as float64 and the target column as numbers, or as stripped
    strings when it holds text labels.

    Blank lines and lines starting with ``#`` are skipped; a ``#`` inside a
    line is data (a label such as ``C#``). The first row is a header when
    every one of its fields is a name (text, not a number): a first data row
    with a missing value is data, and is refused as such, not dropped.
    """
    first, second = _first_rows(path)
    if first is None:
        raise ValueError(f"{path} is empty: no data rows")
    n_cols = len(first)
    if n_cols < 2:
        raise ValueError(f"{path} has {n_cols} column; it needs at least two (features and "
                         "the target), separated by commas")
    if not -n_cols <= target_column < n_cols:
        raise ValueError(f"--target-column {target_column} is out of range for {path}, which "
                         f"has {n_cols} columns (use 0..{n_cols - 1}, or -1 for the last)")
    t = target_column % n_cols
    features = [c for c in range(n_cols) if c != t]
    header = all(field.strip() and not _is_number(field) for field in first)
    if header and second is None:
        raise ValueError(f"{path} has a header row but no data rows")
    skip = 1 if header else 0
    # comments=None: the lines given are data (see _data_lines), "#" included.
    options = {"delimiter": ",", "ndmin": 2, "quotechar": '"', "comments": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data"
        try:
            data = np.loadtxt(_data_lines(path, skip), dtype=np.float64, **options)
            numeric_error = None
        except _NotText:
            raise
        except ValueError as exc:
            numeric_error = _one_line(exc)
        if numeric_error is None and data.shape[1] != n_cols:
            numeric_error = (f"the number of columns changed from {n_cols} to {data.shape[1]} "
                             "after the first row")
        if numeric_error is None:
            return np.delete(data, t, axis=1), data[:, t]
        if "number of columns changed" in numeric_error:
            raise ValueError(f"{path} is not a rectangular CSV file: "
                             f"{numeric_error.split('; use')[0]}") from None
        # The target column may hold text labels: read it apart.
        try:
            X = np.loadtxt(_data_lines(path, skip), dtype=np.float64, usecols=features,
                           **options)
            y = np.loadtxt(_data_lines(path, skip), dtype=str, usecols=[t], **options)[:, 0]
        except _NotText:
            raise
        except ValueError as exc:
            if "invalid column index" in str(exc):
                raise ValueError(f"{path} is not a rectangular CSV file: {_one_line(exc)}") from None
            raise ValueError(f"{path} is not a CSV file of numbers (text is allowed only in "
                             f"the target column): {_one_line(exc)}") from None
    spans = np.char.find(y, "\n") >= 0
    if spans.any():
        # A quote opened and never closed takes the lines after it as one label.
        raise ValueError(f"{path} has a label spanning several lines (a quote that is never "
                         f"closed?) in data row {int(np.argmax(spans))}")
    return X, np.char.strip(y)


def _data_lines(path, skip=0):
    """The lines of the file that hold rows: not blank, not starting with
    ``#``, after the first ``skip`` of them (a header). Text that is not
    UTF-8 is a ``ValueError``, wherever it is in the file."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for line in fh:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if skip:
                    skip -= 1
                    continue
                yield line
    except UnicodeDecodeError as exc:
        raise _NotText(f"{path} is not a text (UTF-8) CSV file (byte {exc.start} of a "
                       "block is not UTF-8)") from None


class _NotText(ValueError):
    """A CSV file that is not UTF-8 text: said as such, not as a parse error."""


def _first_rows(path):
    """The first two rows (lists of fields), None where the file has fewer."""
    rows = []
    try:
        for line in _data_lines(path):
            rows.append(next(csv.reader([line])))
            if len(rows) == 2:
                break
    except csv.Error as exc:
        raise ValueError(f"{path} is not a CSV file: {exc}") from None
    rows += [None] * (2 - len(rows))
    return rows[0], rows[1]


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- checks

def _check_arrays(X, y, path):
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind == "c":
        raise ValueError(f"X in {path} holds complex numbers (dtype {X.dtype}); the network "
                         "takes real features")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X in {path} must hold numbers; got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
        raise ValueError(f"X in {path} must be a 2-D array (n_samples, n_features); got shape "
                         f"{X.shape}{hint}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X in {path} has no {'samples' if X.shape[0] == 0 else 'features'}; "
                         f"got shape {X.shape}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"X in {path} holds {int(bad.sum())} NaN or infinite value(s), the "
                         f"first in sample {row}, feature {col}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y in {path} must be 1-D, one target per sample; got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{path} has {X.shape[0]} samples in X but {y.shape[0]} targets in y")
    if y.dtype.kind == "S":
        try:
            y = np.char.decode(y, "utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"y in {path} holds bytes that are not UTF-8 text") from None
    if y.dtype.kind == "U":
        empty = np.char.str_len(np.char.strip(y)) == 0
        if empty.any():
            raise ValueError(f"y in {path} has {int(empty.sum())} empty label(s), the first in "
                             f"sample {int(np.argmax(empty))}: every sample needs its class")
        return X, y
    if y.dtype.kind == "c":
        raise ValueError(f"y in {path} holds complex numbers (dtype {y.dtype}); expected real "
                         "targets or class labels")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y in {path} must hold numbers or text labels; got dtype {y.dtype}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"y in {path} holds {int(np.sum(~np.isfinite(y)))} NaN or infinite "
                         "value(s)")
    return X, y


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__
