"""Shared base class, parameter grids, data factories and the kernel timer of
the asv suite.

Every tracked quantity is lower-is-better (seconds, seconds per sample, MiB,
time ratios such as "kernel time / NumPy time", error rates): asv flags an
upward step as a regression and has no "higher is better" setting.

The workloads come from :mod:`deepnet_fast.bench` (one table for the command
line and for asv). The training classes run over ``backend x case``, where a
case is one workload in one of its dtypes ("mnist-medium float32"): asv's
parameters form a full product, and ``workload x dtype`` would hold
combinations that do not exist. ``backend`` comes first and lists only the
backends whose library is installed (PyTorch and JAX are optional): asv's
graph shows at most 8 lines on first view, filling them from the first
parameter on, so the first view shows every backend on the first two cases
(on the first only, when four or more backends are installed).

asv re-runs ``setup`` before every timing sample; the expensive preparation
(data, the warm-up epoch that compiles or loads the Numba kernels) is kept in a
one-slot memo (``memoized``) so that only the first sample of a process pays for it.
"""

import os
import statistics
import timeit

from deepnet_fast.bench import (
    BACKENDS,
    WORKLOADS,
    BackendUnavailable,
    backend_unavailable,
    make_data,
    make_trainer,
)
from deepnet_fast.compilation import BESIDE_VARIABLE

# The suite measures the compiled kernels, compiled or loaded in ``setup``, as
# ``deepnet-fast bench``'s workers do. With a compile helper (a first run's
# default), a fit on a cold cache trains on the NumPy reference, or on one
# thread, while the helper compiles on the other core: asv's first run after a
# kernel change measured that (session 14: wide-large at half its speed,
# digits-small float64 at the reference's). ``bench_compile``, which measures
# that start, sets the variable in its own children.
os.environ[BESIDE_VARIABLE] = "0"

WORKLOAD_NAMES = list(WORKLOADS)
DTYPES = ["float32", "float64"]

# The first view of a training graph shows the first one or two cases: two of the
# same network size, so that asv's axis unit (chosen from the smallest value)
# suits both; digits-small's samples are a hundred times faster.
_FIRST_CASES = ["mnist-medium float32", "tanh-medium float32"]


def _cases():
    every = [f"{name} {dtype}" for name, w in WORKLOADS.items() for dtype in DTYPES
             if dtype in w.dtypes]
    return [c for c in _FIRST_CASES if c in every] + [c for c in every if c not in _FIRST_CASES]


def _installed_backends():
    # backend_unavailable does not import the library: discovery stays fast.
    return [b for b in BACKENDS if backend_unavailable(b) is None]


CASES = _cases()
TRAINING_BACKENDS = _installed_backends()
TRAINING_PARAMS = [TRAINING_BACKENDS, CASES]
TRAINING_PARAM_NAMES = ["backend", "case"]

# Epochs after which cost and error are tracked: enough updates for a
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


def split_case(case):
    """``"mnist-medium float32"`` -> ``("mnist-medium", "float32")``; a case the
    workload table does not define raises NotImplementedError (asv's skip)."""
    workload, _, dtype = case.partition(" ")
    if workload not in WORKLOADS or dtype not in WORKLOADS[workload].dtypes:
        raise NotImplementedError(f"no case {case!r}; the cases are {CASES}")
    return workload, dtype


def seconds_per_call(fn, sample_time=0.01, samples=21):
    """Median seconds per call of ``fn()`` as :mod:`timeit` measures it: each
    sample times as many back-to-back calls as fill ``sample_time`` (garbage
    collection off), and the median sample is divided by that count.

    The kernel benchmarks time themselves with this and report it as a track
    (unit seconds): asv's runner takes one call per sample when a class has a
    ``setup`` (it re-runs setup before every timed call), whatever ``number``
    says, and one-call samples add the harness and a cold cache to every
    10-us kernel.
    """
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= sample_time:
            break
        number = max(number + 1, int(number * min(10.0, 1.2 * sample_time / max(elapsed, 1e-9))))
    return statistics.median(timer.repeat(repeat=samples, number=number)) / number


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
    reason = backend_unavailable(backend)
    if reason is not None:
        raise NotImplementedError(reason)
