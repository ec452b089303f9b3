"""``deepnet-fast bench``: training throughput of each backend on the standard workloads.

The workload table (``WORKLOADS``) is the one the asv suite in
``asv_benchmarks/`` imports, so the command line and asv time the same work.

Every backend trains the same network (layer sizes, activations, loss, batch
size, learning rate, plain gradient descent without momentum or L2) on the
same data:

- ``compiled`` and ``reference``: :class:`deepnet_fast.DeepNet` with that backend;
- ``sklearn``: :class:`sklearn.neural_network.MLPClassifier` (``solver="sgd"``,
  one epoch per ``partial_fit``);
- ``torch``: ``nn.Sequential`` of ``Linear`` + activation, ``CrossEntropyLoss``
  or ``BCEWithLogitsLoss``, ``torch.optim.SGD``, a plain loop over shuffled index
  batches (no DataLoader). Skipped with a note when PyTorch is not installed.
- ``jax``: the whole epoch under ``jax.jit``: a ``lax.scan`` of the SGD step
  over the shuffled epoch's full mini-batches, then the remainder batch, from
  the same initial parameters as DeepNet's. Skipped with a note when JAX is
  not installed (``pip install "deepnet_fast[bench]"``).

Each backend of a workload trains in a process of its own (``spawn``), so that
no library's thread pool, spinning after its last task, or global setting
(JAX's float64 switch) touches another's timings. One warm-up epoch per
backend (it also triggers Numba's compile or cache load, or JAX's) is
excluded from the timings; then every repeat trains ``--epochs`` epochs, or
more where that takes under ``MIN_MEASUREMENT_SECONDS`` (one more timed epoch
sets the count, so that a 1 ms epoch is not timed alone against the timer and
the machine's jitter), and the median is reported as samples per second. The
parent asks the processes for their repeats in turn (compiled, reference, ...,
compiled, ...), so that load from other processes affects every backend alike
and the ratios come from one run.

The header names the CPU, the compiled kernels' BLAS library, how it was
chosen (:func:`deepnet_fast.set_blas`) and its kernel (threadpoolctl's
``architecture``), and warns when ``OPENBLAS_CORETYPE`` holds OpenBLAS to
another kernel than it would pick on this CPU.

After the workloads it compares the activation kernels with NumPy's ufuncs on a
128x256 array of each dtype (:mod:`deepnet_fast.bench_kernels`; ``--no-kernels``
skips that).

Training FLOPs are counted as ``6 * sum(n[l] * n[l-1])`` per sample: 2 per
weight in the forward product, 4 in the backward products (dW and dA[l-1]); the
first layer's dA[0], which nobody computes, is counted too, and biases,
activations and the update are ignored. Random data are drawn from a seeded
generator with labels from a random linear "teacher", so that training has
something to learn; ``digits-small`` uses scikit-learn's digits scaled to [0, 1].
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from ._validation import FLOAT_DTYPE_NAMES

__all__ = [
    "WORKLOADS", "BACKENDS", "Workload", "BackendUnavailable", "cases", "make_data",
    "make_trainer", "import_torch", "import_jax", "backend_unavailable", "quick_samples", "training_flops_per_sample",
    "matmul_gflops", "samples_per_second", "format_table", "format_kernels", "add_arguments",
    "run", "main",
]


@dataclass(frozen=True)
class Workload:
    """One benchmark network and its data.

    ``batch_size=None`` is full-batch gradient descent; ``dtypes`` lists the
    precisions the workload runs in; ``matmul`` is ``(m, k, n, dtype)`` of a
    NumPy product whose GFLOP/s the compiled epoch is compared with.
    """

    layer_dims: tuple
    hidden_activation: str
    output_activation: str
    n_samples: int
    batch_size: object
    dtypes: tuple
    learning_rate: float
    data: str = "random"
    matmul: object = None


WORKLOADS = {
    # The course's cat classifier: full batch, dominated by the tall-skinny
    # first layer (20 x 12288) @ (12288 x 209).
    "course-cat": Workload((12288, 20, 7, 5, 1), "relu", "sigmoid", 209, None, ("float64",),
                           0.0075, matmul=(20, 12288, 209, "float64")),
    "digits-small": Workload((64, 32, 10), "relu", "softmax", 1797, 32, ("float32", "float64"),
                             0.05, data="digits"),
    "mnist-medium": Workload((784, 256, 128, 10), "relu", "softmax", 10_000, 128, ("float32",),
                             0.05),
    "wide-large": Workload((1024, 2048, 2048, 10), "relu", "softmax", 8192, 512, ("float32",),
                           0.05, matmul=(2048, 2048, 2048, "float32")),
    "tanh-medium": Workload((784, 256, 128, 10), "tanh", "softmax", 10_000, 128, ("float32",),
                            0.05),
}

BACKENDS = ("compiled", "reference", "sklearn", "torch", "jax")
PEERS = ("reference", "sklearn", "torch", "jax")
# The optional peers and the module whose absence skips them.
_OPTIONAL = {"torch": ("torch", "PyTorch"), "jax": ("jax", "JAX")}


class BackendUnavailable(RuntimeError):
    """The backend's library is not installed (PyTorch and JAX are optional)."""


def backend_unavailable(backend):
    """Why ``backend`` cannot run here (its library is not installed), or
    None; looks for the module without importing it."""
    import importlib.util
    if backend not in _OPTIONAL:
        return None
    module, name = _OPTIONAL[backend]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{name} is not installed (No module named {module!r})"


def cases(workloads=None, dtypes=None):
    """``(name, dtype)`` pairs of the given workloads (all by default)."""
    names = list(WORKLOADS) if workloads is None else list(workloads)
    return [(name, dt) for name in names for dt in WORKLOADS[name].dtypes
            if dtypes is None or dt in dtypes]


def quick_samples(workload):
    """The sample count of ``--quick``: two batches, at least 256 samples."""
    w = WORKLOADS[workload] if isinstance(workload, str) else workload
    batch = w.batch_size or w.n_samples
    return min(w.n_samples, max(2 * batch, 256))


def training_flops_per_sample(layer_dims):
    """``6 * sum(n[l] * n[l-1])``: forward 2, backward 4 flops per weight."""
    return 6 * sum(a * b for a, b in zip(layer_dims[:-1], layer_dims[1:]))


# ---------------------------------------------------------------- data


def make_data(workload, dtype=None, n_samples=None, seed=0):
    """Training data of a workload.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), C-contiguous, of ``dtype``
    y : ndarray of shape (n_samples,)
        int64 class labels (0/1 for a sigmoid output).
    """
    w = WORKLOADS[workload]
    dtype = np.dtype(dtype or w.dtypes[0])
    n = w.n_samples if n_samples is None else int(n_samples)
    n0, nL = w.layer_dims[0], w.layer_dims[-1]
    if w.data == "digits":
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        if n > X.shape[0]:
            raise ValueError(f"{workload} has {X.shape[0]} samples; asked for {n}")
        return np.ascontiguousarray(X[:n] / 16.0, dtype=dtype), y[:n].astype(np.int64)
    rng = np.random.default_rng(seed)
    if w.output_activation == "sigmoid":
        # Pixel-like inputs in [0, 1), as the course's images.
        X = rng.random((n, n0), dtype=np.float32)
        score = (X - 0.5) @ rng.standard_normal(n0, dtype=np.float32)
        y = (score > np.median(score)).astype(np.int64)
    else:
        X = rng.standard_normal((n, n0), dtype=np.float32)
        teacher = rng.standard_normal((n0, nL), dtype=np.float32)
        y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return np.ascontiguousarray(X, dtype=dtype), y


# ---------------------------------------------------------------- trainers


def _mean_log_loss(P, y):
    """Mean cross-entropy of probabilities P (n, k), or P (n,) of class 1."""
    eps = 1e-12
    P = np.asarray(P, dtype=np.float64)
    if P.ndim == 1 or P.shape[1] == 1:
        p = np.clip(P.reshape(-1), eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    return float(-np.mean(np.log(np.clip(P[np.arange(len(y)), y], eps, None))))


class _Trainer:
    """A model of one backend bound to its training data.

    ``train(k)`` runs k epochs continuing from the current state; ``cost()``
    and ``accuracy()`` score the training data with the same formula for
    every backend.
    """

    def __init__(self, workload, X, y, dtype, seed=0, threads=None, shuffle=True):
        self.workload = WORKLOADS[workload] if isinstance(workload, str) else workload
        self.X, self.y = X, y
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.threads = threads
        self.shuffle = shuffle
        self.batch_size = self.workload.batch_size or X.shape[0]

    def cost(self):
        return _mean_log_loss(self.predict_proba(self.X), self.y)

    def accuracy(self):
        return float(np.mean(self.predict(self.X) == self.y))


class DeepNetTrainer(_Trainer):
    def __init__(self, backend, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .network import DeepNet
        w = self.workload
        self.net = DeepNet(w.layer_dims, w.hidden_activation, w.output_activation, seed=self.seed,
                           dtype=self.dtype.name, backend=backend)
        self._fit = dict(learning_rate=w.learning_rate, batch_size=w.batch_size, optimizer="gd",
                         verbose=0, warm_start=True, shuffle=self.shuffle)

    def train(self, epochs=1):
        self.net.fit(self.X, self.y, epochs=epochs, **self._fit)

    def predict(self, X):
        return self.net.predict(X)

    def predict_proba(self, X):
        return self.net.predict_proba(X)


class SklearnTrainer(_Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            from sklearn.neural_network import MLPClassifier
        except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
            raise BackendUnavailable(f"scikit-learn is not importable ({exc})") from exc
        w = self.workload
        self.model = MLPClassifier(
            hidden_layer_sizes=w.layer_dims[1:-1], activation=w.hidden_activation, solver="sgd",
            learning_rate="constant", learning_rate_init=w.learning_rate, momentum=0.0,
            nesterovs_momentum=False, alpha=0.0, batch_size=self.batch_size, shuffle=self.shuffle,
            random_state=self.seed, tol=0.0, n_iter_no_change=10**9, early_stopping=False)
        self._classes = np.arange(max(2, w.layer_dims[-1]))

    def train(self, epochs=1):
        # partial_fit is one epoch over the data: shuffled mini-batches of
        # batch_size, learning rate fixed, no convergence check.
        for _ in range(epochs):
            self.model.partial_fit(self.X, self.y, classes=self._classes)

    def predict(self, X):
        return self.model.predict(X)

    def predict_proba(self, X):
        P = self.model.predict_proba(X)
        return P[:, 1] if self.workload.layer_dims[-1] == 1 else P


# PyTorch's module for each activation (the torch peers of bench and bench_latency).
TORCH_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid",
                      "leaky_relu": "LeakyReLU", "identity": "Identity"}


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable(f"PyTorch is not installed ({exc})") from exc
    return torch


class TorchTrainer(_Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        torch = self.torch = import_torch()
        from torch import nn
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        w = self.workload
        tdtype = {"float32": torch.float32, "float64": torch.float64}[self.dtype.name]
        layers = []
        L = len(w.layer_dims) - 1
        for l in range(1, L + 1):
            layers.append(nn.Linear(w.layer_dims[l - 1], w.layer_dims[l]))
            if l < L:
                layers.append(getattr(nn, TORCH_ACTIVATIONS[w.hidden_activation])())
        self.model = nn.Sequential(*layers).to(tdtype)
        self.Xt = torch.from_numpy(self.X)
        if w.output_activation == "softmax":
            self.loss = nn.CrossEntropyLoss()
            self.Yt = torch.from_numpy(self.y)
        else:
            self.loss = nn.BCEWithLogitsLoss()
            self.Yt = torch.from_numpy(self.y.reshape(-1, 1).astype(self.dtype))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=w.learning_rate, momentum=0.0)
        self.gen = torch.Generator().manual_seed(self.seed)

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(xb), yb).backward()
        self.opt.step()

    def train(self, epochs=1):
        n, B = self.Xt.shape[0], self.batch_size
        for _ in range(epochs):
            if B >= n:
                self._step(self.Xt, self.Yt)
                continue
            order = (self.torch.randperm(n, generator=self.gen) if self.shuffle
                     else self.torch.arange(n))
            for start in range(0, n, B):
                idx = order[start:start + B]
                self._step(self.Xt[idx], self.Yt[idx])

    def _logits(self, X):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(np.ascontiguousarray(X, dtype=self.dtype)))

    def predict_proba(self, X):
        Z = self._logits(X)
        if self.workload.output_activation == "softmax":
            return self.torch.softmax(Z, dim=1).numpy()
        return self.torch.sigmoid(Z).numpy()[:, 0]

    def predict(self, X):
        Z = self._logits(X)
        if self.workload.output_activation == "softmax":
            return Z.argmax(dim=1).numpy()
        return (Z[:, 0] > 0).numpy().astype(np.int64)


def import_jax():
    try:
        import jax
    except ImportError as exc:
        raise BackendUnavailable(f"JAX is not installed ({exc})") from exc
    return jax


def _jax_activations(jax):
    nn = jax.nn
    return {"relu": nn.relu, "tanh": jax.numpy.tanh, "sigmoid": nn.sigmoid,
            "leaky_relu": partial(nn.leaky_relu, negative_slope=0.01),
            "identity": lambda Z: Z}


class JaxTrainer(_Trainer):
    """The epoch as one ``jax.jit`` function: shuffle, ``lax.scan`` of the SGD
    step over the full mini-batches, one more step on the remainder (the
    samples and updates of DeepNet's epoch), starting from DeepNet's initial
    parameters for the same seed. Samples are rows: ``Z = A Wᵀ + b``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.threads == 1 and "jax" not in sys.modules:
            # XLA's CPU thread pool is sized when JAX starts; one thread is
            # the only other setting it offers.
            flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
        jax = self.jax = import_jax()
        if self.dtype == np.float64 and not jax.config.jax_enable_x64:
            # Process-wide; float32 arrays stay float32 under it.
            jax.config.update("jax_enable_x64", True)
        from .network import DeepNet
        w = self.workload
        initial = DeepNet(w.layer_dims, w.hidden_activation, w.output_activation, seed=self.seed,
                          dtype=self.dtype.name).parameters
        L = len(w.layer_dims) - 1
        self.params = [(jax.numpy.asarray(initial[f"W{l}"].T), jax.numpy.asarray(initial[f"b{l}"][:, 0]))
                       for l in range(1, L + 1)]
        self.Xd = jax.numpy.asarray(self.X)
        if w.output_activation == "softmax":
            Y = np.eye(w.layer_dims[-1], dtype=self.dtype)[self.y]
        else:
            Y = self.y.astype(self.dtype)
        self.Yd = jax.numpy.asarray(Y)
        self.key = jax.random.key(self.seed)
        self._logits = jax.jit(self._forward)
        self._epoch = jax.jit(self._make_epoch())

    def _forward(self, params, X):
        g = _jax_activations(self.jax)[self.workload.hidden_activation]
        A = X
        for Wt, b in params[:-1]:
            A = g(A @ Wt + b)
        Wt, b = params[-1]
        return A @ Wt + b

    def _loss(self, params, X, Y):
        jnp = self.jax.numpy
        Z = self._forward(params, X)
        if self.workload.output_activation == "softmax":
            return -jnp.mean(jnp.sum(Y * self.jax.nn.log_softmax(Z, axis=1), axis=1))
        Z = Z[:, 0]
        return jnp.mean(self.jax.nn.softplus(Z) - Y * Z)    # cross-entropy of sigmoid(Z)

    def _make_epoch(self):
        jax, lr = self.jax, self.workload.learning_rate
        n = self.X.shape[0]
        B = min(self.batch_size, n)
        full, shuffle = n // B, self.shuffle and B < n
        grad = jax.value_and_grad(self._loss)

        def step(params, batch):
            loss, grads = grad(params, *batch)
            return jax.tree.map(lambda P, dP: P - lr * dP, params, grads), loss

        def epoch(params, key, X, Y):
            if shuffle:
                key, sub = jax.random.split(key)
                order = jax.random.permutation(sub, n)
                X, Y = X[order], Y[order]
            m = full * B
            batches = (X[:m].reshape((full, B) + X.shape[1:]),
                       Y[:m].reshape((full, B) + Y.shape[1:]))
            params, _ = jax.lax.scan(step, params, batches)
            if m < n:
                params, _ = step(params, (X[m:], Y[m:]))
            return params, key

        return epoch

    def train(self, epochs=1):
        for _ in range(epochs):
            self.params, self.key = self._epoch(self.params, self.key, self.Xd, self.Yd)
        self.jax.block_until_ready(self.params)     # JAX dispatches asynchronously

    def _Z(self, X):
        X = self.jax.numpy.asarray(np.ascontiguousarray(X, dtype=self.dtype))
        return np.asarray(self._logits(self.params, X))

    def predict_proba(self, X):
        Z = self._Z(X)
        if self.workload.output_activation == "softmax":
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            return E / E.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-Z[:, 0]))

    def predict(self, X):
        Z = self._Z(X)
        if self.workload.output_activation == "softmax":
            return Z.argmax(axis=1)
        return (Z[:, 0] > 0).astype(np.int64)


_TRAINERS = {
    "compiled": partial(DeepNetTrainer, "compiled"),
    "reference": partial(DeepNetTrainer, "reference"),
    "sklearn": SklearnTrainer,
    "torch": TorchTrainer,
    "jax": JaxTrainer,
}


def make_trainer(backend, workload, X, y, dtype, *, warmup=True, seed=0, threads=None,
                 shuffle=True):
    """A trainer of ``backend`` on ``(X, y)``; with ``warmup`` one epoch is
    trained at once (that also compiles or loads the Numba kernels).

    ``workload`` is a name of ``WORKLOADS`` or a :class:`Workload`;
    ``shuffle=False`` trains on the samples in order (for comparisons).
    ``threads`` (a positive int) sets the process's thread count for Numba
    and every BLAS library (:func:`deepnet_fast.set_num_threads`, which
    stays in force after the call) and PyTorch's or JAX's own; None leaves
    each library's default.

    Raises
    ------
    BackendUnavailable
        When the backend's library is not installed.
    """
    if backend not in _TRAINERS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}; got {backend!r}")
    if threads is not None:
        from .threads import set_num_threads
        set_num_threads(threads)
    trainer = _TRAINERS[backend](workload, X, y, dtype, seed=seed, threads=threads,
                                 shuffle=shuffle)
    if warmup:
        trainer.train(1)
    return trainer


# ---------------------------------------------------------------- measurement


def matmul_gflops(m, k, n, dtype, repeat=5, seed=0):
    """Median GFLOP/s of a NumPy ``(m, k) @ (k, n)`` product (2mkn flops)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype=dtype)
    np.matmul(A, B, out=out)
    # Time batches of at least ~50 ms so that small products are measurable.
    start = time.perf_counter()
    np.matmul(A, B, out=out)
    inner = max(1, int(0.05 / max(time.perf_counter() - start, 1e-9)))
    seconds = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        for _ in range(inner):
            np.matmul(A, B, out=out)
        seconds.append((time.perf_counter() - start) / inner)
    return 2.0 * m * k * n / statistics.median(seconds) / 1e9


def _comma_list(text):
    return [v for v in (s.strip() for s in text.split(",")) if v]


def _blas_list(text):
    names = [v.lower() for v in _comma_list(text)]
    for name in names:
        if name not in ("auto", "mkl", "scipy"):
            raise argparse.ArgumentTypeError(f"expected auto, mkl and/or scipy; got {name!r}")
    if not names:
        raise argparse.ArgumentTypeError("expected auto, mkl and/or scipy")
    return names


def add_arguments(parser):
    """Add the options of ``deepnet-fast bench`` to an argparse parser."""
    parser.description = ("Samples/s of one training epoch per backend on the standard "
                          "workloads, the ratios of compiled to the others, and GFLOP/s "
                          "against a NumPy matmul, all measured in one run.")
    parser.add_argument("--workloads", type=_comma_list, default="all",
                        help=f"comma-separated workloads, from {', '.join(WORKLOADS)} "
                             "(default: all)")
    parser.add_argument("--backends", type=_comma_list, default=",".join(BACKENDS),
                        help=f"comma-separated backends (default: {','.join(BACKENDS)}); torch is "
                             "skipped when PyTorch is not installed")
    parser.add_argument("--dtypes", type=_comma_list, default=None,
                        help="restrict to these dtypes (default: each workload's own)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed measurements per backend, the median is reported "
                             "(default: 3)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs per timed measurement, at least (default: 1; more where "
                             f"a measurement would last under {MIN_MEASUREMENT_SECONDS:g} s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for Numba, BLAS and PyTorch, set through "
                             "deepnet_fast.set_num_threads and torch.set_num_threads "
                             "(default: each library's own)")
    parser.add_argument("--blas", type=_blas_list, default=None,
                        help="BLAS of the compiled kernels: auto, mkl or scipy, or several "
                             "(e.g. mkl,scipy: one compiled column per library, and each "
                             "one's samples/s against the faster's) (default: deepnet_fast's "
                             "own choice, see set_blas)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: few samples per workload (at least two batches)")
    parser.add_argument("--no-kernels", dest="kernels", action="store_false",
                        help="skip the activation kernels against NumPy's ufuncs "
                             f"({KERNEL_SHAPE[0]}x{KERNEL_SHAPE[1]} arrays, a few seconds)")
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of data and initial weights (default: 0)")
    return parser


def _check_args(args):
    for flag in ("workloads", "backends", "dtypes"):
        if getattr(args, flag, None) == []:
            raise ValueError(f"--{flag}: give at least one name (or leave the flag out)")
    # Each named once, in the order given (a repeat would run twice).
    workloads = list(dict.fromkeys(getattr(args, "workloads", None) or WORKLOADS))
    if workloads == ["all"]:
        workloads = list(WORKLOADS)
    backends = list(dict.fromkeys(getattr(args, "backends", None) or BACKENDS))
    if backends == ["all"]:
        backends = list(BACKENDS)
    seed = getattr(args, "seed", 0)
    if seed is not None and not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be an integer in [0, 2**32); got {seed}")
    json_path = getattr(args, "json", None)
    if json_path:
        folder = os.path.dirname(os.path.abspath(json_path))
        if os.path.isdir(json_path) or not os.path.isdir(folder) or not os.access(folder,
                                                                                  os.W_OK):
            raise ValueError(f"--json {json_path}: not a file that can be written (checked "
                             "before the run)")
    for name in workloads:
        if name not in WORKLOADS:
            raise ValueError(f"--workloads: unknown workload {name!r}; "
                             f"choose from {list(WORKLOADS)}")
    for name in backends:
        if name not in BACKENDS:
            raise ValueError(f"--backends: unknown backend {name!r}; choose from {list(BACKENDS)}")
    dtypes = getattr(args, "dtypes", None)
    for dt in dtypes or ():
        if dt not in FLOAT_DTYPE_NAMES:
            raise ValueError(f"--dtypes: expected float32 and/or float64; got {dt!r}")
    repeat = int(getattr(args, "repeat", 3))
    epochs = int(getattr(args, "epochs", 1))
    threads = getattr(args, "threads", None)
    if repeat < 1 or epochs < 1 or (threads is not None and threads < 1):
        raise ValueError("--repeat, --epochs and --threads must be positive integers")
    selected = cases(workloads, dtypes)
    if not selected:
        raise ValueError(f"no workload of {workloads} runs in {dtypes}")
    # compiled first, so that ratios read compiled / the rest.
    backends = [b for b in BACKENDS if b in backends]
    return selected, backends, repeat, epochs, threads


def _default_threads():
    from .threads import usable_cores
    return usable_cores()


def _load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not on Unix
        return None


def _versions():
    import numba
    import sklearn
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "numba": numba.__version__, "scikit-learn": sklearn.__version__}
    from importlib import metadata
    for name in ("torch", "jax"):     # without importing them: the workers do
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_POOL_IDLE_SECONDS = 0.3
# The array of the kernel target: sigmoid, tanh and softmax at least as fast
# as NumPy's ufuncs on it.
KERNEL_SHAPE = (128, 256)
MIN_MEASUREMENT_SECONDS = 0.2


def _epochs_for(trainer, epochs):
    """``epochs``, raised so that one measurement lasts ``MIN_MEASUREMENT_SECONDS``."""
    start = time.perf_counter()
    trainer.train(1)
    one = max(time.perf_counter() - start, 1e-6)
    return max(epochs, math.ceil(MIN_MEASUREMENT_SECONDS / one))


def samples_per_second(trainer, n_samples, epochs=1, repeat=3):
    """Median samples/s of ``trainer`` (see :func:`make_trainer`) over ``repeat``
    measurements of at least ``epochs`` epochs and ``MIN_MEASUREMENT_SECONDS``
    each, as ``deepnet-fast bench`` measures one backend (used by asv)."""
    k = _epochs_for(trainer, epochs)
    seconds = []
    for _ in range(repeat):
        time.sleep(_POOL_IDLE_SECONDS)
        start = time.perf_counter()
        trainer.train(k)
        seconds.append(time.perf_counter() - start)
    return n_samples * k / statistics.median(seconds)


def _worker(conn, spec):
    """One backend's measurements in a process of its own: build the trainer
    (warm-up epoch included), report ``("ready", warm-up seconds, epochs per
    measurement)``, then answer every ``"train"`` with ``("seconds", s)``
    until ``None``. Failures are reported as ``("unavailable"|"error", text)``."""
    try:
        from .blas import set_blas
        if spec["blas"] is not None:
            set_blas(spec["blas"])
        X, y = make_data(spec["workload"], spec["dtype"], spec["n_samples"], seed=spec["seed"])
        start = time.perf_counter()
        trainer = make_trainer(spec["backend"], spec["workload"], X, y, spec["dtype"],
                               seed=spec["seed"], threads=spec["threads"])
        warmup = time.perf_counter() - start
        # --quick is a smoke run: no padding of the measurement.
        k = spec["epochs"] if spec["quick"] else _epochs_for(trainer, spec["epochs"])
        conn.send(("ready", warmup, k))
    except BackendUnavailable as exc:
        conn.send(("unavailable", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while conn.recv() is not None:
        try:
            start = time.perf_counter()
            trainer.train(k)
            conn.send(("seconds", time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return


def _measuring(target, conn, *args):
    """``target(conn, *args)`` with no compile helper: a helper compiling
    beside the measured fits would share their cores."""
    from .compilation import BESIDE_VARIABLE
    os.environ[BESIDE_VARIABLE] = "0"
    return target(conn, *args)


class WorkerProcess:
    """A measuring worker in a process of its own (``spawn``: no library's
    state or thread pool is inherited) and its pipe: ``target(conn, *args)``
    runs there, answering each message with one reply until it receives None.
    Used by ``deepnet-fast bench`` (:func:`_worker`) and by
    :mod:`deepnet_fast.bench_latency`."""

    def __init__(self, target, *args):
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_measuring, args=(target, child, *args), daemon=True)
        self.process.start()
        child.close()

    def ask(self, message="train"):
        """Send ``message`` (None: send nothing, only wait) and return the reply,
        or ``("error", ...)`` when the process died."""
        if message is not None:
            self.conn.send(message)
        try:
            return self.conn.recv()
        except EOFError:
            self.process.join(timeout=5)
            return ("error", f"the worker process died (exit code {self.process.exitcode})")

    def close(self):
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():  # pragma: no cover - a hung worker
            self.process.terminate()
            self.process.join()


def _labels(backends, blas):
    """``(label, backend, blas)`` of every column: one compiled column per
    library of ``--blas`` (``compiled[mkl]``, ...) when it lists several."""
    libraries = list(blas or [None])
    out = []
    for b in backends:
        if b == "compiled" and len(libraries) > 1:
            out += [(f"compiled[{lib}]", b, lib) for lib in libraries]
        else:
            out.append((b, b, libraries[0] if b == "compiled" else None))
    return out


def _measure_case(name, dtype, backends, repeat, epochs, threads, quick, seed, notes,
                  blas=None):
    w = WORKLOADS[name]
    n = quick_samples(name) if quick else w.n_samples
    record = {"workload": name, "dtype": dtype, "n_samples": n,
              "batch_size": w.batch_size, "layer_dims": list(w.layer_dims),
              "epochs_per_measurement": {}, "repeat": repeat,
              "flops_per_sample": training_flops_per_sample(w.layer_dims),
              "warmup_seconds": {}, "seconds": {}, "samples_per_s": {}, "errors": {}}
    workers = {}
    try:
        # One at a time: a warm-up (compile, calibration of the epoch count)
        # is not disturbed by another's.
        for label, backend, library in _labels(backends, blas):
            reason = backend_unavailable(backend)
            if reason:
                notes.setdefault(backend, f"{backend}: skipped: {reason}")
                continue
            spec = {"backend": backend, "workload": name, "dtype": dtype, "n_samples": n,
                    "seed": seed, "threads": threads, "blas": library, "epochs": epochs,
                    "quick": quick}
            worker = WorkerProcess(_worker, spec)
            reply = worker.ask(None)
            if reply[0] == "ready":
                workers[label] = worker
                record["warmup_seconds"][label] = reply[1]
                record["epochs_per_measurement"][label] = reply[2]
                record["seconds"][label] = []
                continue
            worker.close()
            if reply[0] == "unavailable":
                notes.setdefault(backend, f"{backend}: skipped: {reply[1]}")
            else:
                record["errors"][label] = reply[1]
        for _ in range(repeat):
            for label, worker in list(workers.items()):
                # Thread pools (OpenBLAS, OpenMP, XLA's) spin-wait for a while
                # after their last task, in the previous backend's process too:
                # let them go idle before the next one starts.
                time.sleep(_POOL_IDLE_SECONDS)
                reply = worker.ask()
                if reply[0] != "seconds":
                    record["errors"][label] = reply[1]
                    del record["seconds"][label]
                    workers.pop(label).close()
                    continue
                record["seconds"][label].append(reply[1])
    finally:
        for worker in workers.values():
            worker.close()
    for b, secs in record["seconds"].items():
        k = record["epochs_per_measurement"][b]
        record["samples_per_s"][b] = n * k / statistics.median(secs)
    rates = record["samples_per_s"]
    comp = next((v for b, v in rates.items() if b.startswith("compiled")), None)
    record["ratios"] = {f"compiled/{p}": comp / rates[p] for p in PEERS if comp and p in rates}
    libs = {b[len("compiled["):-1]: v for b, v in rates.items() if b.startswith("compiled[")}
    if len(libs) > 1:
        record["blas_ratios"] = {f"{lib}/best": v / max(libs.values()) for lib, v in libs.items()}
    record["gflops"] = {b: v * record["flops_per_sample"] / 1e9 for b, v in rates.items()}
    return record


def _fmt_rate(v):
    if v is None:
        return "-"
    return f"{v:,.0f}"


def _fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}"


def format_table(results, columns):
    """The printed table of samples/s and ratios (``columns``: the backends'
    labels, e.g. ``compiled`` or ``compiled[mkl]``, ``reference``)."""
    compiled = any(c.startswith("compiled") for c in columns)
    peers = [p for p in PEERS if p in columns and compiled]
    libs = [c[len("compiled["):-1] for c in columns if c.startswith("compiled[")]
    head = ["workload", "dtype", "samples", "batch"] + list(columns)
    head += [f"comp/{p}" for p in peers] + [f"{lib}/best" for lib in libs]
    rows = []
    for r in results:
        row = [r["workload"], r["dtype"], str(r["n_samples"]), str(r["batch_size"] or "full")]
        row += [_fmt_rate(r["samples_per_s"].get(b)) if b not in r["errors"] else "error"
                for b in columns]
        row += [_fmt_ratio(r["ratios"].get(f"compiled/{p}")) for p in peers]
        row += [_fmt_ratio(r.get("blas_ratios", {}).get(f"{lib}/best")) for lib in libs]
        rows.append(row)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    left = 2
    lines = ["  ".join(x.ljust(wd) if i < left else x.rjust(wd) for i, (x, wd) in
                       enumerate(zip(line, widths))) for line in [head] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


_OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_OPENBLAS_PROBE = (
    "import json, numpy, scipy.linalg.cython_blas\n"
    "from threadpoolctl import threadpool_info\n"
    "print(json.dumps({i['filepath']: i.get('architecture') for i in threadpool_info()\n"
    "                  if i.get('internal_api') == 'openblas'}))\n")


def openblas_kernels(unset=False):
    """``{library file: kernel}`` of the OpenBLAS copies NumPy and SciPy load;
    with ``unset``, as a process without ``OPENBLAS_CORETYPE`` and
    ``OPENBLAS_L2_SIZE`` sees them (a child process, about a second)."""
    if not unset:
        import scipy.linalg.cython_blas  # noqa: F401 - loaded, so threadpoolctl sees it
        from threadpoolctl import threadpool_info
        return {i["filepath"]: i.get("architecture") for i in threadpool_info()
                if i.get("internal_api") == "openblas"}
    env = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_VARIABLES}
    try:
        out = subprocess.run([sys.executable, "-c", _OPENBLAS_PROBE], env=env, text=True,
                             capture_output=True, timeout=120, check=True)
        return json.loads(out.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def openblas_warning(current=None, natural=None):
    """A warning when ``OPENBLAS_CORETYPE`` is set and makes an OpenBLAS of
    this process run another kernel than it picks for this CPU (``current``
    and ``natural`` as :func:`openblas_kernels` returns them); else None."""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced:
        return None
    current = openblas_kernels() if current is None else current
    natural = openblas_kernels(unset=True) if natural is None else natural
    changed = sorted({(current[f], natural[f]) for f in current
                      if natural.get(f) and current[f] and natural[f] != current[f]})
    if natural and not changed:
        return None
    instead = ", ".join(f"{c} instead of {n}" for c, n in changed) or "kernels not verified"
    unset = " ".join(f"-u {v}" for v in _OPENBLAS_VARIABLES)
    return (f"warning: OPENBLAS_CORETYPE={forced} holds OpenBLAS to older kernels on this CPU "
            f"({instead}): OpenBLAS timings (scipy BLAS, reference, sklearn) are not what "
            f"users see; run 'env {unset} deepnet-fast bench ...'")


def header_lines(cores, warning=True):
    """The machine part of the header: CPU, the kernels' BLAS, its kernel
    and how it was chosen, and the ``OPENBLAS_CORETYPE`` warning."""
    from .blas import cpu_name, get_blas, kernel_info
    info, kernel = get_blas(), kernel_info()
    detail = ", ".join(str(x) for x in (kernel["internal_api"], kernel["lib_version"]) if x)
    arch = kernel["architecture"] or "unknown"
    lines = [f"  CPU: {cpu_name()}, {cores} core(s)",
             f"  compiled BLAS: {info['library']} ({info['version']}"
             f"{'; ' + detail if detail else ''}; kernel: {arch}); {info['how']}"]
    text = openblas_warning() if warning else None
    if text:
        lines.append(f"  {text}")
    return lines


def run(args):
    """Run the benchmark described by parsed ``args``; returns the exit status
    (0, or 1 when a backend failed on some workload; skipped peers are not
    failures)."""
    selected, backends, repeat, epochs, threads = _check_args(args)
    quick = bool(getattr(args, "quick", False))
    seed = int(getattr(args, "seed", 0) or 0)
    json_path = getattr(args, "json", None)

    from .blas import get_blas, set_blas
    requested = getattr(args, "blas", None)
    if isinstance(requested, str):
        requested = [requested]
    previous_blas = get_blas()["library"]
    # Every compiled worker gets a library by name: "auto" is decided here,
    # once (measured or read from the cache), so that all of them run the same.
    # The first library named is the one the peers' ratios and the header
    # describe: "--blas auto,mkl,scipy" puts auto's choice first, whichever it is.
    blas = [previous_blas]
    if requested:
        blas = list(dict.fromkeys(set_blas(lib) for lib in requested))
        set_blas(requested[0])
    versions = _versions()
    versions["compiled BLAS"] = get_blas()["version"]
    cores = _default_threads()
    if threads is None:
        thread_text = (f"each library's default threads on {cores} core(s) (DeepNet: one "
                       "thread for small networks, each batch split between the cores "
                       "otherwise)")
    else:
        thread_text = (f"{threads} thread(s) for Numba, every BLAS and PyTorch"
                       + (" (JAX: XLA's own pool)" if threads > 1 else ", and for JAX"))
    padding = "" if quick else f" and {MIN_MEASUREMENT_SECONDS:g} s"
    print(f"deepnet-fast bench: samples/s of training, at least {epochs} epoch(s){padding} per "
          f"measurement, median of {repeat}{', --quick sample counts' if quick else ''}, "
          "each backend in a process of its own")
    print(f"  {thread_text}")
    print("  " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    for line in header_lines(cores):
        print(line)
    load = _load_average()
    if load is not None:
        print(f"  load average {load:.2f} on {os.cpu_count()} cores before the run"
              + ("; other processes are running: expect noisy timings" if load > 0.5 else ""))

    try:
        results, flops, notes = _measure(selected, backends, repeat, epochs, threads, quick,
                                         seed, blas)
    finally:
        set_blas(previous_blas)
    columns = [label for label, _, _ in _labels(backends, blas)]

    print()
    print(format_table(results, columns))
    if "compiled" in backends and len(backends) > 1:
        print("comp/X: samples/s of compiled divided by those of X (> 1: compiled is faster).")
    if len(blas) > 1:
        print("lib/best: samples/s of compiled on that BLAS library divided by the faster "
              f"library's; set_blas('auto') chooses {set_blas('auto')} here.")
        set_blas(previous_blas)
    if flops:
        print()
        print("GFLOP/s of a training epoch, counting 6*sum(n[l]*n[l-1]) flops per sample "
              "(forward 2 + backward 4 per weight), against a NumPy matmul measured in this run:")
        for f in flops:
            rates = ", ".join(f"{b} {v:.1f}" for b, v in f["gflops"].items())
            print(f"  {f['workload']} {f['dtype']}: {rates}; np.matmul {f['matmul']}: "
                  f"{f['matmul_gflops']:.1f} -> compiled at {f['compiled_fraction_of_matmul']:.0%} "
                  "of that matmul")
    kernels = None
    if getattr(args, "kernels", True):
        kernels = _measure_kernels(rounds=2 if quick else 15)
        print()
        print(format_kernels(kernels))
    status = 0
    for r in results:
        for b, err in r["errors"].items():
            status = 1
            print(f"error: {r['workload']} {r['dtype']} {b}: {err}", file=sys.stderr)
    for note in notes.values():
        print(f"note: {note}")
    if json_path:
        payload = {"command": "deepnet-fast bench", "threads": threads, "cores": cores,
                   "quick": quick, "versions": versions, "load_average": load,
                   "blas": get_blas(), "cpu": _cpu(),
                   "workloads": {k: asdict(WORKLOADS[k]) for k, _ in selected},
                   "results": results, "flops": flops, "kernels": kernels,
                   "notes": list(notes.values())}
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, default=_json_default)
        print(f"results saved to {json_path}")
    return status


def _cpu():
    from .blas import cpu_name
    return cpu_name()


def _measure(selected, backends, repeat, epochs, threads, quick, seed, blas=None):
    """Every case, then the matmul baseline of the cases that have one."""
    notes, results, flops = {}, [], []
    for name, dtype in selected:
        r = _measure_case(name, dtype, backends, repeat, epochs, threads, quick, seed, notes,
                          blas=blas)
        results.append(r)
        mm = WORKLOADS[name].matmul
        compiled = next((b for b in r["samples_per_s"] if b.startswith("compiled")), None)
        if mm is not None and compiled:
            m, k, n, mdt = mm
            base = matmul_gflops(m, k, n, mdt, repeat=max(3, repeat))
            flops.append({"workload": name, "dtype": dtype, "gflops": r["gflops"],
                          "matmul": f"({m}x{k}) @ ({k}x{n}) {mdt}", "matmul_gflops": base,
                          "compiled_fraction_of_matmul": r["gflops"][compiled] / base})
    return results, flops, notes


def _measure_kernels(rounds):
    """:func:`deepnet_fast.bench_kernels.kernel_speedups` on ``KERNEL_SHAPE``, both dtypes."""
    from .bench_kernels import kernel_speedups
    return {dt: kernel_speedups(shape=KERNEL_SHAPE, dtype=dt, rounds=rounds)
            for dt in FLOAT_DTYPE_NAMES}


def format_kernels(kernels):
    """The printed table of activation kernels against NumPy's ufuncs."""
    names = list(next(iter(kernels.values())))
    lines = [f"Activation kernels against NumPy's ufuncs on a {KERNEL_SHAPE[0]}x"
             f"{KERNEL_SHAPE[1]} array (NumPy's time / the kernel's, median of alternating "
             "rounds; > 1: the kernel is faster):",
             "  dtype    " + "".join(f"{n:>10}" for n in names)]
    for dt, res in kernels.items():
        lines.append(f"  {dt:<9}" + "".join(f"{res[n]['ratio']:>10.2f}" for n in names))
    return "\n".join(lines)


def _json_default(obj):
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):  # pragma: no cover
        return None
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def main(argv=None):
    """``python -m deepnet_fast.bench``: the same as ``deepnet-fast bench``."""
    parser = add_arguments(argparse.ArgumentParser(prog="deepnet-fast bench"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
