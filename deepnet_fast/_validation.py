"""Argument checks shared by both backends and the training API.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError``
(right kind, wrong value) with a message that names the argument, says what
was expected and shows what was given.
"""

import numbers
import re

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
FLOAT_DTYPE_NAMES = tuple(dt.name for dt in FLOAT_DTYPES)


def shown(value, limit=60):
    """``repr(value)`` cut to ``limit`` characters (ending in "...") for an
    error message's "got ..."."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_bool(value, name):
    """Return ``value`` as a bool if it is True or False (NumPy's too), else raise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {shown(value)}")
    return bool(value)


def check_validation_pair(validation_data):
    """Return ``validation_data`` if it is a pair ``(X_val, y_val)``, else raise."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError(f"validation_data must be a tuple (X_val, y_val); got "
                        f"{shown(validation_data)}")
    return validation_data


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``, else raise listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(choices)}; got {shown(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value


def check_activations(activations, n_layers, choices, name="activations"):
    """A sequence of ``n_layers`` activation names."""
    if isinstance(activations, str) or not hasattr(activations, "__len__"):
        raise TypeError(
            f"{name} must be a sequence of {n_layers} activation names; got {shown(activations)}"
        )
    if len(activations) != n_layers:
        raise ValueError(
            f"{name} must have one name per layer ({n_layers}); got {len(activations)}"
        )
    for i, act in enumerate(activations):
        check_choice(act, f"{name}[{i}]", choices)
    return tuple(activations)


def check_positive_int(value, name, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {shown(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


#: Bound of an optimizer's step counter: the kernels count steps in int64
#: (``t`` plus an epoch's batches), which 2**63 would overflow.
MAX_STEPS = 2**62


def check_step(t, name="t", minimum=1):
    """An optimizer step counter: an integer in [minimum, MAX_STEPS = 2**62)."""
    t = check_positive_int(t, name, minimum)
    if t >= MAX_STEPS:
        raise ValueError(f"{name} must be an integer in [{minimum}, "
                         f"2**{MAX_STEPS.bit_length() - 1}); got {t}")
    return t


# Items of 8 bytes whose total size still fits an index (NumPy's own limit).
MAX_ARRAY_ITEMS = np.iinfo(np.intp).max // 8


def check_layer_dims(layer_dims, name="layer_dims"):
    """``[n0, n1, ..., nL]`` with at least one layer and positive integer sizes."""
    if isinstance(layer_dims, (str, bytes)) or not hasattr(layer_dims, "__len__"):
        raise TypeError(f"{name} must be a sequence of positive integers; got {shown(layer_dims)}")
    dims = list(layer_dims)
    if len(dims) < 2:
        raise ValueError(
            f"{name} must list the input size and at least one layer size; got {shown(layer_dims)}"
        )
    for i, n in enumerate(dims):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{name}[{i}] must be a positive integer; got {shown(n)}")
        if n < 1:
            raise ValueError(f"{name}[{i}] must be a positive integer; got {n}")
    dims = [int(n) for n in dims]
    n_parameters = sum(a * b + b for a, b in zip(dims, dims[1:]))
    if n_parameters > MAX_ARRAY_ITEMS:
        raise ValueError(f"{name} {dims} make {n_parameters:,} parameters, more than an array "
                         f"can hold ({MAX_ARRAY_ITEMS:,})")
    return dims


def check_real(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real number within the given bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {shown(value)}")
    value = float(value)
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    expected = f"a finite number {' and '.join(bounds)}".rstrip()
    if not np.isfinite(value):
        raise ValueError(f"{name} must be {expected}; got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {expected}; got {value:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {expected}; got {value:g}")
    return value


def check_keep_prob(keep_prob, name="keep_prob"):
    """A dropout keep probability, in (0, 1] (1: no dropout)."""
    return check_real(keep_prob, name, low=0.0, low_open=True, high=1.0)


def check_dtype(dtype, name="dtype"):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be 'float32' or 'float64'; got {shown(dtype)}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be 'float32' or 'float64'; got {shown(dtype)}")
    return dt


def check_not_masked(x, name):
    """Refuse a masked array: a mask cannot be honoured, and the values it
    hides would be used."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} must be a plain array, not a masked array: the network cannot skip "
            f"masked entries; pass {name}.filled(value) or leave out those samples"
        )


def _pandas_numeric(x):
    """Whether ``x`` is a pandas DataFrame or Series whose columns are all
    numeric or boolean, nullable extension types included."""
    dtypes = getattr(x, "dtypes", None)
    if dtypes is None or not hasattr(x, "to_numpy"):
        return False
    dtypes = list(dtypes) if hasattr(dtypes, "__iter__") else [dtypes]
    return bool(dtypes) and all(getattr(dt, "kind", "O") in "fiub" for dt in dtypes)


def as_float_array(x, name, *, ndim=2, dtype=None, finite=False):
    """``x`` as a float32/float64 ndarray of ``ndim`` dimensions.

    Integer and boolean input is converted to ``dtype`` (float64 when not
    given); float input keeps its dtype unless ``dtype`` is given. Nothing is
    copied that need not be. Masked arrays are refused (a mask cannot be
    honoured, and the values it hides would be used); other ndarray subclasses
    (memmap, matrix) are viewed as plain ndarrays.
    """
    check_not_masked(x, name)
    if isinstance(x, np.ndarray):
        arr = x if type(x) is np.ndarray else np.asarray(x)
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a numeric array; could not convert it ({exc})") from None
        if arr.dtype.kind == "O" and _pandas_numeric(x):
            # pandas' nullable columns (Float64, Int64, boolean) convert to
            # objects; as numbers, a missing value is NaN (refused below when
            # values must be finite).
            arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real-valued; got complex dtype {arr.dtype}")
    if kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if dtype is not None:
        target = np.dtype(dtype)
    elif kind == "f" and arr.dtype in FLOAT_DTYPES:
        target = arr.dtype
    else:
        target = np.dtype(np.float64)
    if arr.dtype != target and kind == "f" and arr.dtype.itemsize > target.itemsize:
        # A narrowing cast turns values beyond the target's range into inf.
        with np.errstate(over="ignore"):
            narrowed = arr.astype(target)
        overflow = np.isinf(narrowed) & ~np.isinf(arr)
        if overflow.any():
            raise ValueError(
                f"{name} holds values that do not fit in {target} (largest magnitude "
                f"{np.abs(arr[overflow]).max():g}; {target} holds up to {np.finfo(target).max:g})"
            )
        arr = narrowed
    elif arr.dtype != target:
        arr = arr.astype(target)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {arr.shape}")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} must not contain NaN or infinity")
    return arr


def same_dtype(arrays_by_name):
    """Raise ``TypeError`` unless all arrays share one float dtype; return it."""
    items = list(arrays_by_name.items())
    first_name, first = items[0]
    for name, arr in items[1:]:
        if arr.dtype != first.dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but {first_name} has {first.dtype}; "
                "all arrays of one computation must share a dtype (float32 or float64)"
            )
    return first.dtype


def check_shape(arr, name, expected):
    """``expected`` is a tuple where ``None`` accepts any size."""
    if arr.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, arr.shape)):
        wanted = tuple("any" if e is None else e for e in expected)
        raise ValueError(f"{name} must have shape {wanted}; got {arr.shape}")
    return arr


_PARAMETER_KEY = re.compile(r"[Wb]([1-9][0-9]*)", re.ASCII)


def parameter_layer(key):
    """The layer ``l`` of a parameter key ``"W{l}"`` or ``"b{l}"``, else None.

    ``l`` is written in ASCII digits without leading zeros and is at least 1,
    so ``"W0"``, ``"W01"`` and ``"W\u00b9"`` are not parameter keys.
    """
    match = _PARAMETER_KEY.fullmatch(key) if isinstance(key, str) else None
    return int(match[1]) if match else None


def check_parameters(parameters, n_layers=None, name="parameters"):
    """A dict ``W1, b1, ..., WL, bL`` with consistent shapes; returns L."""
    if not isinstance(parameters, dict):
        raise TypeError(f"{name} must be a dict with keys 'W1', 'b1', ...; got {shown(parameters)}")
    for key in parameters:
        if parameter_layer(key) is None:
            raise ValueError(f"{name} has the key {key!r}; expected only 'W1', 'b1', ..., "
                             "'WL', 'bL'")
    L = n_layers if n_layers is not None else sum(1 for k in parameters if k[0] == "W")
    if L < 1:
        raise ValueError(f"{name} must contain at least 'W1' and 'b1'")
    for l in range(1, L + 1):
        for key in (f"W{l}", f"b{l}"):
            if key not in parameters:
                raise ValueError(f"{name} is missing {key!r} (expected W1..W{L}, b1..b{L})")
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        if not isinstance(W, np.ndarray) or W.ndim != 2:
            raise ValueError(f"{name}['W{l}'] must be a 2-D array")
        check_shape(b, f"{name}['b{l}']", (W.shape[0], 1))
        if l > 1 and W.shape[1] != parameters[f"W{l - 1}"].shape[0]:
            raise ValueError(
                f"{name}['W{l}'] has shape {W.shape} but layer {l - 1} has "
                f"{parameters[f'W{l - 1}'].shape[0]} units"
            )
    return L


def check_sample_weight(sample_weight, n, dtype, name="sample_weight"):
    """None, or ``n`` finite non-negative weights, not all zero, as a
    C-contiguous 1-D array of ``dtype``, within :func:`check_weight_range`."""
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, name, ndim=1, dtype=dtype, finite=True)
    if w.shape[0] != n:
        raise ValueError(f"{name} must hold one weight per sample ({n}); got {w.shape[0]}")
    if (w < 0).any():
        raise ValueError(f"{name} must not be negative")
    if not w.max() > 0:
        raise ValueError(f"{name} must not be all zero")
    return check_weight_range(np.ascontiguousarray(w), name)


def check_weight_range(w, name="sample_weight"):
    """Non-negative weights ``w`` (not all zero) that the training arithmetic
    can take: every positive one a normal number, and their sum at most
    ``finfo.max / 1024``.

    A batch's loss and gradient are divided by its weights' sum: a sum of
    subnormal weights has no finite reciprocal, and a sum near the float
    maximum overflows once multiplied by a loss (up to ~745). Either made
    training diverge on NaN. The weights' scale is the user's to choose, not
    ours: the L2 term is divided by the same sum, as scikit-learn's MLP does.
    """
    info = np.finfo(w.dtype)
    positive = w[w > 0]
    if positive.min() < info.tiny:
        raise ValueError(f"{name} must hold 0 or weights of at least {info.tiny:g} (normal "
                         f"{w.dtype.name} numbers); got {positive.min():g}")
    bound = float(info.max) / 1024
    with np.errstate(over="ignore"):         # a sum that overflows is refused below
        total = float(np.sum(w, dtype=np.float64))
    if not total <= bound:
        raise ValueError(f"{name} sums to more than {w.dtype.name} losses can be weighted by "
                         f"({bound:g}): scale the weights down")
    return w
