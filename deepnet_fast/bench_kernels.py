"""Activation kernels against NumPy's ufuncs, as a ratio measured in one process.

The kernel is :func:`deepnet_fast.kernels.activations.activation_forward` writing
into a preallocated array, as the training loop calls it; NumPy's side is the
chain of ufuncs a NumPy user would write for the same function, also with
``out=``: ``np.tanh`` for tanh, ``1 / (1 + exp(-z))`` in four in-place ufuncs
for sigmoid, max-shifted ``exp`` over column sums for softmax (one probability
vector per column, the library's convention) and ``np.maximum`` for ReLU.

Both run on the same array, alternating in rounds; a round times each side as
the best of three runs of enough back-to-back calls to last about a
millisecond, and the reported ratio is the median over rounds of NumPy's time
over the kernel's. Absolute times drift by tens of percent on shared
machines; a ratio taken from neighbouring measurements drifts much less.
``deepnet-fast bench`` prints these ratios and asv's ``KernelSpeedup`` tracks
them. Not a test; nothing is asserted.
"""

import statistics
import timeit

import numpy as np

__all__ = ["ACTIVATIONS", "numpy_chain", "kernel_speedups"]

ACTIVATIONS = ("sigmoid", "tanh", "softmax", "relu")


def _numpy_sigmoid(Z, out, _work):
    np.negative(Z, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


def _numpy_tanh(Z, out, _work):
    np.tanh(Z, out=out)


def _numpy_softmax(Z, out, work):
    colmax, colsum = work
    np.max(Z, axis=0, out=colmax, keepdims=True)
    np.subtract(Z, colmax, out=out)
    np.exp(out, out=out)
    np.sum(out, axis=0, out=colsum, keepdims=True)
    np.divide(out, colsum, out=out)


def _numpy_relu(Z, out, _work):
    np.maximum(Z, 0, out=out)


_CHAINS = {"sigmoid": _numpy_sigmoid, "tanh": _numpy_tanh,
           "softmax": _numpy_softmax, "relu": _numpy_relu}


def numpy_chain(activation, Z):
    """NumPy's ufunc chain for ``activation`` on arrays shaped like `Z`.

    Returns ``f(out)`` that writes ``g(Z)`` into `out` (shape and dtype of `Z`),
    with its work arrays allocated here rather than per call.
    """
    _check_activation(activation)
    work = (np.empty((1, Z.shape[1]), Z.dtype), np.empty((1, Z.shape[1]), Z.dtype))
    chain = _CHAINS[activation]
    return lambda out: chain(Z, out, work)


def _check_activation(activation):
    if activation not in _CHAINS:
        raise ValueError(f"activation: expected one of {list(ACTIVATIONS)}; got {activation!r}")


def _best_seconds_per_call(f, number):
    return min(timeit.repeat(f, number=number, repeat=3)) / number


def kernel_speedups(activations=ACTIVATIONS, shape=(128, 256), dtype="float32", rounds=15,
                    seed=0):
    """Time each activation kernel against NumPy's ufunc chain on one array.

    Parameters
    ----------
    activations : iterable of str
        Names from ``ACTIVATIONS``.
    shape : (int, int)
        ``(units, samples)`` of the array, C order.
    dtype : {"float32", "float64"}
    rounds : int
        Alternating rounds; each yields one ratio.
    seed : int
        Seed of the standard normal input.

    Returns
    -------
    dict
        ``{activation: {"kernel_us", "numpy_us", "ratio", "max_abs_diff"}}``:
        median times per call in microseconds, the median over rounds of NumPy's
        time over the kernel's (> 1: the kernel is faster), and the largest
        difference between the two results (a fast wrong kernel shows there).
    """
    from .kernels import activations as kact

    activations = list(activations)
    for a in activations:
        _check_activation(a)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected float32 or float64; got {dtype}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape: expected two positive sizes; got {shape!r}")
    if int(rounds) < 1:
        raise ValueError(f"rounds: expected a positive integer; got {rounds!r}")
    Z = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    slope = dtype.type(0.01)
    results = {}
    for a in activations:
        out_k, out_n = np.empty_like(Z), np.empty_like(Z)
        code = kact.CODES[a]
        chain = numpy_chain(a, Z)

        def kernel(code=code, out=out_k):
            kact.activation_forward(Z, code, slope, out)

        def numpy(chain=chain, out=out_n):
            chain(out)

        kernel()  # compiles or loads the kernel
        numpy()
        # About a millisecond per run, from one timing of each side.
        number = max(1, int(1e-3 / max(_best_seconds_per_call(kernel, 10),
                                       _best_seconds_per_call(numpy, 10))))
        t_kernel, t_numpy, ratios = [], [], []
        for _ in range(int(rounds)):
            tk = _best_seconds_per_call(kernel, number)
            tn = _best_seconds_per_call(numpy, number)
            t_kernel.append(tk)
            t_numpy.append(tn)
            ratios.append(tn / tk)
        results[a] = {"kernel_us": statistics.median(t_kernel) * 1e6,
                      "numpy_us": statistics.median(t_numpy) * 1e6,
                      "ratio": statistics.median(ratios),
                      "max_abs_diff": float(np.max(np.abs(out_k - out_n)))}
    return results
