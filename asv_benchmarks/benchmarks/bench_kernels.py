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

from .common import Benchmark, memoized

SHAPES = ["128x256", "1024x512"]
DTYPE = np.float32
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
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
    # The kernels keep no state between calls, so a sample times as many
    # back-to-back calls as fill sample_time (asv's number = 0), as timeit
    # would. One-call samples added ~2 us of harness and cold-cache time to
    # every 128x256 kernel (9 us), which pulled every ratio towards 1.
    number = 0
    sample_time = 0.01
    repeat = (10, 50, 2.0)
    warmup_time = 0.05


class ActivationKernels(KernelBenchmark):
    """g(Z) and dA * g'(Z) for every activation."""

    params = [ACTIVATIONS, SHAPES, ["compiled", "reference", "kernel"]]
    param_names = ["activation", "shape", "implementation"]

    def setup(self, activation, shape, implementation):
        self.Z, self.dA, _, _ = _arrays(shape)
        self.out = np.empty_like(self.Z)
        self.code = kact.CODES[activation]
        self.slope = DTYPE(SLOPE)
        # Compile (or load from the cache) before timing.
        self.time_forward(activation, shape, implementation)
        self.time_backward(activation, shape, implementation)

    def time_forward(self, activation, shape, implementation):
        if implementation == "kernel":
            kact.activation_forward(self.Z, self.code, self.slope, self.out)
        else:
            MODULES[implementation].activation_forward(self.Z, activation)

    def time_backward(self, activation, shape, implementation):
        if implementation == "kernel":
            kact.activation_backward(self.dA, self.Z, self.code, self.slope, self.out)
        else:
            MODULES[implementation].activation_backward(self.dA, self.Z, activation)


class LinearKernels(KernelBenchmark):
    """Z = W A_prev + b and its three gradients (dA_prev, dW, db)."""

    params = [SHAPES, ["compiled", "reference"]]
    param_names = ["shape", "implementation"]

    def setup(self, shape, implementation):
        self.A_prev, self.dZ, self.W, self.b = _arrays(shape)
        self.module = MODULES[implementation]
        self.time_linear_forward(shape, implementation)
        self.time_linear_backward(shape, implementation)

    def time_linear_forward(self, shape, implementation):
        self.module.linear_forward(self.A_prev, self.W, self.b)

    def time_linear_backward(self, shape, implementation):
        self.module.linear_backward(self.dZ, self.A_prev, self.W)


class NumpyUfuncs(KernelBenchmark):
    """NumPy's vectorised exp, and the ufunc chains of
    :mod:`deepnet_fast.bench_kernels` for tanh, sigmoid and softmax, on the same
    arrays into a preallocated output: what a SIMD kernel should at least match."""

    params = [SHAPES]
    param_names = ["shape"]

    def setup(self, shape):
        self.Z = _arrays(shape)[0]
        self.out = np.empty_like(self.Z)
        self.chains = {a: numpy_chain(a, self.Z) for a in ("tanh", "sigmoid", "softmax")}

    def time_exp(self, shape):
        np.exp(self.Z, out=self.out)

    def time_tanh(self, shape):
        self.chains["tanh"](self.out)

    def time_sigmoid(self, shape):
        self.chains["sigmoid"](self.out)

    def time_softmax(self, shape):
        self.chains["softmax"](self.out)


class KernelSpeedup(Benchmark):
    """NumPy's time over the kernel's for one activation on one array,
    measured alternating in this process (:func:`deepnet_fast.bench_kernels.
    kernel_speedups`): > 1 means the kernel is faster. Separate ``time_*``
    benchmarks are minutes apart, and this machine's speed drifts by more
    than a 10% margin in minutes."""

    params = [list(SPEEDUP_ACTIVATIONS), SHAPES, ["float32", "float64"]]
    param_names = ["activation", "shape", "dtype"]
    unit = "x NumPy"

    def setup(self, activation, shape, dtype):
        self.shape = tuple(int(v) for v in shape.split("x"))
        # Compile (or load) the kernel before anything is measured.
        kernel_speedups([activation], self.shape, dtype, rounds=1)

    def track_speedup(self, activation, shape, dtype):
        return kernel_speedups([activation], self.shape, dtype)[activation]["ratio"]
