"""One training epoch on each backend, on identical work.

An engine owns the buffers of one ``fit`` and runs an epoch over given sample
order and learning rate, updating the flat parameter vector (and optimizer
moments) in place. ``CompiledEngine`` makes one kernel call per epoch;
``ReferenceEngine`` walks the mini-batches in Python with the step functions of
:mod:`deepnet_fast.reference`, as the course does.
"""

import numpy as np

from . import params as flat
from . import reference as R
from .kernels import activations as kact
from .kernels import training as ktrain
from .kernels import updates as kupd


def kernel_arrays(dims, activations):
    """The integer arrays the kernels describe a network with: layer sizes,
    activation codes, and where each W[l] and b[l] starts in the flat vector."""
    offW, offb, _ = flat.layout(dims)
    codes = np.asarray([kact.CODES[a] for a in activations], dtype=np.int64)
    return np.asarray(dims, dtype=np.int64), codes, offW, offb


class _Engine:
    def __init__(self, dims, activations, negative_slope, dtype, batch_size, n_samples,
                 optimizer, l2, beta, beta1, beta2, epsilon, keep_prob=1.0, dropout_seed=0,
                 threads=1):
        self.dims = list(dims)
        self.activations = tuple(activations)
        self.slope = negative_slope
        self.dtype = np.dtype(dtype)
        self.batch_size = batch_size
        self.n_samples = n_samples
        self.n_batches = -(-n_samples // batch_size)
        self.optimizer = optimizer
        self.l2 = l2
        self.beta, self.beta1, self.beta2, self.epsilon = beta, beta1, beta2, epsilon
        self.keep_prob = float(keep_prob)
        self.dropout_seed = int(dropout_seed)
        self.threads = max(1, min(int(threads), batch_size))

    def batch_sizes(self):
        sizes = np.full(self.n_batches, self.batch_size, dtype=np.float64)
        sizes[-1] = self.n_samples - self.batch_size * (self.n_batches - 1)
        return sizes


class CompiledEngine(_Engine):
    """Whole epochs in one kernel call.

    With ``threads == 1`` that is :func:`deepnet_fast.kernels.training.train_epoch`;
    with more, every batch is split between that many threads by
    :func:`deepnet_fast.kernels.training_threaded.train_epoch_threaded` (BLAS must
    then run single-threaded: see :func:`deepnet_fast.threads.fit_threads`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dims, B, dt = self.dims, self.batch_size, self.dtype
        self._dims, self._codes, self._offW, self._offb = kernel_arrays(dims, self.activations)
        self._loss = kact.LOSS_OF_OUTPUT[self.activations[-1]]
        size = flat.layout(dims)[2]
        self._slope = dt.type(self.slope)
        self._grad = np.empty(size, dtype=dt)
        # Allocated once per fit: the activations of all layers and two dZ
        # buffers for a batch (the threads share them); the gathered batch.
        self._acts, self._deltas = self._batch_buffers(B)
        self._Xb = np.empty((B, dims[0]), dtype=dt)
        self._Yb = np.empty((B, dims[-1]), dtype=dt)
        self._costs = np.empty(self.n_batches, dtype=np.float64)
        self._part_loss = np.empty(2 * self.threads, dtype=np.float64)
        self._part_ok = np.empty(self.threads, dtype=np.bool_)
        self._hyper = np.empty(kupd.N_HYPER, dtype=dt)
        self._opt = kupd.CODES[self.optimizer]

    def _batch_buffers(self, mb):
        return tuple(np.empty(n, dtype=self.dtype) for n in ktrain.activation_sizes(self.dims, mb))

    def epoch(self, theta, v, s, t, X, Y, order, learning_rate):
        """Run one epoch; returns (batch costs, index of a failed batch or -1)."""
        kupd.make_hyper(self._hyper, learning_rate, self.beta, self.beta1, self.beta2,
                        self.epsilon, 1)
        args = (X, Y, order, self.batch_size, self._dims, self._codes, self._slope, self._loss,
                float(self.l2), self.keep_prob, self.dropout_seed, theta, self._grad, v, s,
                self._opt, self._hyper, float(self.beta1), float(self.beta2), int(t),
                self._offW, self._offb, self._acts, self._deltas, self._Xb, self._Yb, self._costs)
        if self.threads == 1:
            failed = ktrain.train_epoch(*args)
        else:
            from .kernels.training_threaded import train_epoch_threaded
            failed = train_epoch_threaded(*args, self._part_loss, self._part_ok)
        return self._costs, int(failed)

    def gradient(self, theta, X, Y, step=1):
        """Cost and flat gradient of the whole ``(X, Y)`` as one batch."""
        acts, deltas = self._batch_buffers(X.shape[0])
        cost = ktrain.loss_and_gradient(
            X, Y, self._dims, self._codes, self._slope, self._loss, float(self.l2), theta,
            self._grad, self._offW, self._offb, acts, deltas, self.keep_prob, self.dropout_seed,
            int(step))
        return cost, self._grad.copy()


class ReferenceEngine(_Engine):
    """The same epoch, mini-batch by mini-batch, with the NumPy reference."""

    def epoch(self, theta, v, s, t, X, Y, order, learning_rate):
        # A diverging run overflows on its way to NaN; the caller reports that
        # as DivergenceError, so NumPy's warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._epoch(theta, v, s, t, X, Y, order, learning_rate)

    def _epoch(self, theta, v, s, t, X, Y, order, learning_rate):
        params = flat.unpack(theta, self.dims)
        moments_v = {f"d{k}": a for k, a in flat.unpack(v, self.dims).items()} if v.size else None
        moments_s = {f"d{k}": a for k, a in flat.unpack(s, self.dims).items()} if s.size else None
        costs = np.empty(self.n_batches, dtype=np.float64)
        L = len(self.dims) - 1
        failed = -1
        for k in range(self.n_batches):
            start = k * self.batch_size
            rows = order[start:start + self.batch_size] if order.size else slice(start, start + self.batch_size)
            cost, grads = self._loss_and_grads(params, X[rows].T, Y[rows].T, t + k + 1)
            costs[k] = cost
            if not np.isfinite(cost) or not all(np.isfinite(grads[f"d{p}{l}"]).all()
                                                for l in range(1, L + 1) for p in "Wb"):
                failed = k
                break
            params, moments_v, moments_s = R.update_parameters_with_optimizer(
                params, grads, moments_v, moments_s, t + k + 1, learning_rate, self.optimizer,
                self.beta, self.beta1, self.beta2, self.epsilon)
        flat.pack(params, self.dims, self.dtype, out=theta)
        if moments_v is not None:
            flat.pack({k[1:]: a for k, a in moments_v.items()}, self.dims, self.dtype, out=v)
        if moments_s is not None:
            flat.pack({k[1:]: a for k, a in moments_s.items()}, self.dims, self.dtype, out=s)
        return costs, failed

    def _loss_and_grads(self, params, Xk, Yk, step):
        """Cost (with the L2 term) and the gradient dict of one batch, column convention."""
        mb = Xk.shape[1]
        if self.keep_prob < 1.0:
            AL, caches, masks = R.forward_with_dropout(
                Xk, params, self.activations, self.keep_prob, self.dropout_seed, step,
                negative_slope=self.slope)
        else:
            AL, caches = R.forward(Xk, params, self.activations, negative_slope=self.slope)
        cost = R.compute_cost(AL, Yk, self.activations[-1])
        if self.l2 > 0:
            cost += R.l2_cost(params, self.l2, mb)
        if self.keep_prob < 1.0:
            grads = R.backward_with_dropout(AL, Yk, caches, self.activations, masks,
                                            self.keep_prob, negative_slope=self.slope)
        else:
            grads = R.backward(AL, Yk, caches, self.activations, negative_slope=self.slope)
        if self.l2 > 0:
            for l in range(1, len(self.dims)):
                grads[f"dW{l}"] = grads[f"dW{l}"] + (self.l2 / mb) * params[f"W{l}"]
        return cost, grads

    def gradient(self, theta, X, Y, step=1):
        """Cost and flat gradient of the whole ``(X, Y)`` as one batch."""
        cost, grads = self._loss_and_grads(flat.unpack(theta, self.dims), X.T, Y.T, step)
        return cost, flat.pack({k[1:]: g for k, g in grads.items() if k[1] in "Wb"},
                               self.dims, self.dtype)


ENGINES = {"compiled": CompiledEngine, "reference": ReferenceEngine}
