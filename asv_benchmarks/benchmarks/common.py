"""Shared base class, parameter grids and data factories of the asv suite.

The workloads come from :mod:`deepnet_fast.bench` (one table for the command
line and for asv). Every parameterised class runs over ``workload x dtype x
backend``; combinations a workload does not define, and peers whose library is
missing (PyTorch is optional), are skipped by raising ``NotImplementedError``
in ``setup``.

asv re-runs ``setup`` before every timing sample; the expensive preparation
(data, the warm-up epoch that compiles or loads the Numba kernels) is kept in a
one-slot memo (``memoized``) so that only the first sample of a process pays for it.
"""

from deepnet_fast.bench import (
    BACKENDS,
    WORKLOADS,
    BackendUnavailable,
    import_torch,
    make_data,
    make_trainer,
)

WORKLOAD_NAMES = list(WORKLOADS)
DTYPES = ["float32", "float64"]
TRAINING_PARAMS = [WORKLOAD_NAMES, DTYPES, list(BACKENDS)]
TRAINING_PARAM_NAMES = ["workload", "dtype", "backend"]

# Epochs after which cost and accuracy are tracked: enough updates for a
# wrong gradient to show, few enough to keep the suite short.
TRACK_EPOCHS = {"course-cat": 50, "digits-small": 10, "mnist-medium": 3,
                "wide-large": 1, "tanh-medium": 3}


class Benchmark:
    """Base class: one process per benchmark, a generous timeout (wide-large
    epochs take seconds), no extra warm-up beyond what ``setup`` does."""

    timeout = 600
    rounds = 1
    warmup_time = 0
    number = 1
    # (min, max, seconds): at least one sample, at most three, within 30 s.
    repeat = (1, 3, 30.0)


def check_case(workload, dtype):
    """Skip dtypes a workload does not run in."""
    if dtype not in WORKLOADS[workload].dtypes:
        raise NotImplementedError(f"{workload} runs in {WORKLOADS[workload].dtypes} only")


_memos = {}


def memoized(kind, key, build):
    """``build()`` once per process for the latest ``key`` of each ``kind``."""
    memo = _memos.setdefault(kind, {})
    if key not in memo:
        memo.clear()
        memo[key] = build()
    return memo[key]


def get_data(workload, dtype):
    """``(X, y)`` of the workload (memoised)."""
    check_case(workload, dtype)
    return memoized("data", (workload, dtype), lambda: make_data(workload, dtype))


def get_trainer(workload, dtype, backend, warmup=True):
    """A trainer after its warm-up epoch (memoised); skips missing peers."""
    check_backend(backend)  # before any data is built for it
    X, y = get_data(workload, dtype)

    def build():
        try:
            return make_trainer(backend, workload, X, y, dtype, warmup=warmup)
        except BackendUnavailable as exc:
            raise NotImplementedError(str(exc)) from exc

    return memoized("trainer", (workload, dtype, backend, warmup), build)


def new_trainer(workload, dtype, backend, X, y, warmup=True):
    """A fresh trainer (not memoised); skips missing peers."""
    try:
        return make_trainer(backend, workload, X, y, dtype, warmup=warmup)
    except BackendUnavailable as exc:
        raise NotImplementedError(str(exc)) from exc


def check_backend(backend):
    """Raise NotImplementedError when ``backend``'s library is missing."""
    if backend == "torch":
        try:
            import_torch()
        except BackendUnavailable as exc:
            raise NotImplementedError(str(exc)) from exc
