"""Step functions one by one: ``deepnet_fast.compiled`` against ``deepnet_fast.reference``,
with NumPy's own ufuncs as the floor for the elementwise ones.

Arrays follow the column convention: a "128x256" case is n = 128 units by
m = 256 examples (Z, A, dA of that shape; W of shape (n, n)). ``kernel`` is the
raw Numba kernel of :mod:`deepnet_fast.kernels` writing into a preallocated
array: the difference to ``compiled`` is the step function's validation and
allocation.
"""

import numpy as np

from deepnet_fast import compiled, reference
from deepnet_fast.bench_kernels import ACTIVATIONS as SPEEDUP_ACTIVATIONS
from deepnet_fast.bench_kernels import kernel_speedups, numpy_chain
from deepnet_fast.kernels import activations as kact

from .common import Benchmark, memoized, seconds_per_call

SHAPES = ["128x256", "1024x512"]
DTYPE = np.float32
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
IMPLEMENTATIONS = ["compiled", "reference", "kernel"]
SLOPE = 0.01
MODULES = {"compiled": compiled, "reference": reference}


def _arrays(shape):
    return memoized("arrays", shape, lambda: _make_arrays(shape))


def _make_arrays(shape, seed=0):
    n, m = (int(v) for v in shape.split("x"))
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, m), dtype=DTYPE)
    dA = rng.standard_normal((n, m), dtype=DTYPE)
    W = (rng.standard_normal((n, n), dtype=DTYPE) * np.sqrt(2 / n)).astype(DTYPE)
    b = rng.standard_normal((n, 1), dtype=DTYPE)
    return Z, dA, W, b


class KernelBenchmark(Benchmark):
    """Seconds per call, timed as :mod:`timeit` times it
    (:func:`common.seconds_per_call`: each of 21 samples runs back-to-back
    calls for 10 ms, the median sample over its call count).

    The kernels keep no state between calls. They are ``track_*`` benchmarks
    that time themselves, not ``time_*`` ones: asv's runner takes one call
    per sample when a class has ``setup``, whatever ``number`` says, and a
    one-call sample adds the harness and a cold cache to a 9-us kernel (143 us
    against 8.6 us for the compiled tanh under ``--quick``).
    """

    unit = "seconds"


class ActivationKernels(KernelBenchmark):
    """g(Z) and dA * g'(Z) for every activation, float32."""

    params = [IMPLEMENTATIONS, ACTIVATIONS, SHAPES]
    param_names = ["implementation", "activation", "shape"]

    def setup(self, implementation, activation, shape):
        self.Z, self.dA, _, _ = _arrays(shape)
        out = np.empty_like(self.Z)
        code, slope = kact.CODES[activation], DTYPE(SLOPE)
        if implementation == "kernel":
            self.forward = lambda: kact.activation_forward(self.Z, code, slope, out)
            self.backward = lambda: kact.activation_backward(self.dA, self.Z, code, slope, out)
        else:
            module = MODULES[implementation]
            self.forward = lambda: module.activation_forward(self.Z, activation)
            self.backward = lambda: module.activation_backward(self.dA, self.Z, activation)
        # Compile (or load from the cache) before timing.
        self.forward()
        self.backward()

    def track_forward(self, implementation, activation, shape):
        """Seconds per call of A = g(Z)."""
        return seconds_per_call(self.forward)

    track_forward.pretty_name = "Kernels: activation forward, seconds per call"

    def track_backward(self, implementation, activation, shape):
        """Seconds per call of dZ = dA * g'(Z)."""
        return seconds_per_call(self.backward)

    track_backward.pretty_name = "Kernels: activation backward, seconds per call"


class LinearKernels(KernelBenchmark):
    """Z = W A_prev + b and its three gradients (dA_prev, dW, db), float32."""

    params = [["compiled", "reference"], SHAPES]
    param_names = ["implementation", "shape"]

    def setup(self, implementation, shape):
        A_prev, dZ, W, b = _arrays(shape)
        module = MODULES[implementation]
        self.forward = lambda: module.linear_forward(A_prev, W, b)
        self.backward = lambda: module.linear_backward(dZ, A_prev, W)
        self.forward()
        self.backward()

    def track_linear_forward(self, implementation, shape):
        """Seconds per call of Z = W A_prev + b."""
        return seconds_per_call(self.forward)

    track_linear_forward.pretty_name = "Kernels: linear forward, seconds per call"

    def track_linear_backward(self, implementation, shape):
        """Seconds per call of (dA_prev, dW, db) from dZ."""
        return seconds_per_call(self.backward)

    track_linear_backward.pretty_name = "Kernels: linear backward, seconds per call"


class NumpyUfuncs(KernelBenchmark):
    """NumPy's vectorised exp, and the ufunc chains of
    :mod:`deepnet_fast.bench_kernels` for tanh, sigmoid and softmax, on the same
    arrays into a preallocated output: what a SIMD kernel should at least match."""

    params = [["exp", "tanh", "sigmoid", "softmax"], SHAPES]
    param_names = ["function", "shape"]

    def setup(self, function, shape):
        Z = _arrays(shape)[0]
        out = np.empty_like(Z)
        if function == "exp":
            self.call = lambda: np.exp(Z, out=out)
        else:
            chain = numpy_chain(function, Z)
            self.call = lambda: chain(out)

    def track_ufunc(self, function, shape):
        """Seconds per call of NumPy's ufunc (chain) into a preallocated array."""
        return seconds_per_call(self.call)

    track_ufunc.pretty_name = "Kernels: NumPy ufunc chains, seconds per call"


class KernelVsNumpy(Benchmark):
    """The kernel's time over NumPy's for one activation on one array,
    measured alternating in this process (:func:`deepnet_fast.bench_kernels.
    kernel_speedups`): below 1 the kernel is faster. Separate timings are
    minutes apart, and this machine's speed drifts by more than a 10% margin
    in minutes."""

    params = [["float32", "float64"], list(SPEEDUP_ACTIVATIONS), SHAPES]
    param_names = ["dtype", "activation", "shape"]
    unit = "x NumPy's time (below 1: kernel faster)"

    def setup(self, dtype, activation, shape):
        self.shape = tuple(int(v) for v in shape.split("x"))
        # Compile (or load) the kernel before anything is measured.
        kernel_speedups([activation], self.shape, dtype, rounds=1)

    def track_kernel_time_over_numpy(self, dtype, activation, shape):
        """Median over 15 alternating rounds of kernel time / NumPy time (the
        inverse of ``deepnet-fast bench``'s speed-up; a median's inverse is the
        median of the inverses)."""
        return 1.0 / kernel_speedups([activation], self.shape, dtype)[activation]["ratio"]

    track_kernel_time_over_numpy.pretty_name = "Kernels: activation time / NumPy's time"
