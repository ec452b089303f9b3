"""One training epoch, and one prediction, on each backend, on identical work.

An engine owns the buffers of one fit and runs an epoch over a given sample
order and learning rate, updating a :class:`~deepnet_fast.state.TrainingState`
(flat parameters, optimizer moments, step counter) in place.
``CompiledEngine`` makes one kernel call per epoch; ``ReferenceEngine`` walks
the mini-batches in Python with the step functions of
:mod:`deepnet_fast.reference`, as the course does. :data:`ENGINES` is the
registry of backends.

The rows ``X`` are dense arrays or SciPy CSR matrices (checked by
:func:`deepnet_fast.inputs.check_rows`). The compiled engine keeps CSR sparse
(``kernels/sparse.py``); the reference densifies one mini-batch (or one
prediction chunk) at a time, which is all an oracle needs.
"""

import numpy as np

from . import compilation
from . import params as flat
from . import reference as R
from .inputs import batch_nonzeros, is_sparse, kernel_rows
from .kernels import pair
from .kernels import training as ktrain
from .kernels import updates as kupd
from .kernels.sparse import CSR
from .threads import pairs_one_row, runs_single

# Rows per chunk of a prediction: bounds the activations held at once.
PREDICT_CHUNK = 4096


class _Engine:
    """Shared set-up: the architecture, the fit's settings and the batch plan.

    Parameters
    ----------
    arch : Architecture
    config : FitConfig
        Optimizer, its coefficients, ``l2`` and ``keep_prob`` are read from it.
    batch_size, n_samples : int
    dropout_seed : int
    threads : int
        Threads that split each batch (compiled backend only).
    """

    def __init__(self, arch, config, batch_size, n_samples, dropout_seed=0, threads=1):
        self.arch = arch
        self.config = config
        self.batch_size = batch_size
        self.n_samples = n_samples
        self.n_batches = -(-n_samples // batch_size)
        self.dropout_seed = int(dropout_seed)
        self.threads = max(1, min(int(threads), batch_size))

    def epoch_cost(self, costs):
        """The cost of the epoch just run: the mean of its batch ``costs``
        weighted by what each batch's loss was divided by (its number of
        samples, or the sum of its sample weights)."""
        weights = self._batch_weights
        return float(costs @ weights / weights.sum())

    def epoch_score(self, base):
        """The training score of the epoch just run, from the outputs of its
        batches before their updates (see :meth:`OutputHead.score_from_sums`;
        ``base`` is the head's :meth:`~OutputHead.score_base` of the data)."""
        return self.arch.head.score_from_sums(float(self._batch_metrics.sum()),
                                              float(self._batch_weights.sum()), base)

    def epoch(self, state, X, Y, order, learning_rate, sample_weight=None):
        """Run one epoch on ``(X, Y)`` in ``order`` (empty: as stored).

        ``sample_weight`` (n_samples,) of the parameters' dtype weighs each
        sample's loss and gradient (each batch divided by its weights' sum,
        as scikit-learn does; a batch of zero weights makes no update).
        Updates ``state`` (parameters, moments, step counter) in place, except
        when a batch gives a non-finite cost or gradient: that batch's update
        is not applied, the state holds the updates before it, and its index
        is returned.

        Returns
        -------
        costs : ndarray of float64, shape (n_batches,)
        failed : int
            -1, or the index of the batch that failed.
        """
        raise NotImplementedError

    def gradient(self, theta, X, Y, step=1):
        """Cost and flat gradient of the whole ``(X, Y)`` as one batch.

        ``step`` numbers the batch as the epoch would (the dropout masks are
        drawn per seed, step and layer); without dropout it changes nothing.
        """
        raise NotImplementedError


class CompiledEngine(_Engine):
    """Whole epochs in one kernel call.

    With ``threads == 1`` that is :func:`deepnet_fast.kernels.training.train_epoch`;
    with more, every batch is split between that many threads by
    :func:`deepnet_fast.kernels.training_threaded.train_epoch_threaded` (BLAS must
    then run single-threaded: see :func:`deepnet_fast.threads.fit_threads`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        arch, c, dt, B = self.arch, self.config, self.arch.dtype, self.batch_size
        dims = arch.layer_dims
        # Allocated once per fit: the gradient, the activations of all layers
        # and two dZ buffers for a batch (the threads share them), the
        # gathered batch (at the first epoch: see _gather_buffer), and each
        # thread's partial sums.
        self._buffers = ktrain.Buffers(
            np.empty(arch.n_parameters, dtype=dt), *self._batch_buffers(B),
            None, None, None, np.empty(dims[-1] * B, dtype=dt),
            np.empty(B, dtype=dt), np.empty(self.n_batches, dtype=np.float64),
            np.empty(self.n_batches, dtype=np.float64), np.empty(self.n_batches, dtype=np.float64),
            np.empty(3 * self.threads, dtype=np.float64), np.empty(self.threads, dtype=np.bool_))
        self._batch_weights = self._buffers.batch_weights
        self._batch_metrics = self._buffers.batch_metrics
        self._no_weights = np.empty(0, dtype=dt)
        self._gather_key = None
        self._no_indices = (np.empty(0, np.int32), np.empty(0, np.int32))
        # The learning rate is written into ``hyper`` before every epoch.
        self._settings = ktrain.Settings(
            int(arch.head.loss_code), float(c.l2), float(c.keep_prob), self.dropout_seed,
            int(c.rule.code), np.empty(kupd.N_HYPER, dtype=dt), float(c.beta1), float(c.beta2))

    def _batch_buffers(self, mb):
        return tuple(np.empty(n, dtype=self.arch.dtype)
                     for n in ktrain.activation_sizes(self.arch.layer_dims, mb))

    def _gather_buffer(self, X, shuffled):
        """The buffer that shuffled batches of the kernel rows ``X`` are
        gathered into: (batch_size, n0) for dense rows; for CSR rows, a CSR
        of the most nonzeros ``batch_size`` rows hold, so that memory stays
        bounded by the nonzeros. Made at the first epoch, empty when batches
        are read in place (no shuffle)."""
        key = (isinstance(X, CSR), shuffled)
        if self._gather_key != key:
            self._gather_key = key
            B = self.batch_size if shuffled else 0
            dt = self.arch.dtype
            if isinstance(X, CSR):
                size, index = batch_nonzeros(X, B), X.indices.dtype
                Xb = (np.empty(size, dt), np.empty(size, index), np.empty(B + 1, index))
            else:
                Xb = (np.empty((B, self.arch.layer_dims[0]), dtype=dt), *self._no_indices)
            self._buffers = self._buffers._replace(Xb=Xb[0], Xb_indices=Xb[1], Xb_indptr=Xb[2])
        return self._buffers

    def _check_operands(self, X, Y, order, sample_weight):
        """Raise ``ValueError`` unless an epoch's arrays fit the buffers sized
        for this fit and the network (the kernels index them unchecked)."""
        m, dims = X.shape[0], self.arch.layer_dims
        problems = []
        if order.size and (order.shape != (m,) or not ktrain.all_within(order, m)):
            problems.append(f"an order of {order.size} rows, not {m} rows in [0, {m})")
        # Every epoch: a caller may reshape its arrays in place (X.shape = ...)
        # between two, and these compares cost less than telling the arrays apart.
        if X.ndim != 2 or X.shape[1] != dims[0] or not 0 < m <= self.n_samples:
            problems.append(f"X of shape {X.shape} for {self.n_samples} samples of {dims[0]} "
                            "features")
        if not (isinstance(Y, np.ndarray) and Y.shape == (m, dims[-1])
                and Y.dtype == self.arch.dtype):
            problems.append(f"Y of shape {getattr(Y, 'shape', None)} for ({m}, {dims[-1]})")
        if sample_weight is not None and sample_weight.shape != (m,):
            problems.append(f"sample_weight of shape {sample_weight.shape} for ({m},)")
        if problems:
            raise ValueError(f"the epoch's operands do not fit the network: {'; '.join(problems)}")

    def epoch(self, state, X, Y, order, learning_rate, sample_weight=None):
        c, fit = self.config, self._settings
        state.check(self.arch.n_parameters, self.arch.dtype, c.optimizer)
        self._check_operands(X, Y, order, sample_weight)
        kupd.make_hyper(fit.hyper, learning_rate, c.beta, c.beta1, c.beta2, c.epsilon, 1)
        w = self._no_weights if sample_weight is None else sample_weight
        X = kernel_rows(X)
        args = (X, Y, w, order, self.batch_size, state.theta, state.v, state.s, int(state.t),
                self.arch.kernel_network, self._gather_buffer(X, order.size > 0), fit)
        if self.threads == 1:
            failed = int(ktrain.train_epoch(*args))
        else:
            from .kernels.training_threaded import train_epoch_threaded
            failed = int(train_epoch_threaded(*args))
        state.t += self.n_batches if failed < 0 else failed
        return self._buffers.batch_costs, failed

    def gradient(self, theta, X, Y, step=1):
        acts, deltas = self._batch_buffers(X.shape[0])
        X = kernel_rows(X)
        buf = self._gather_buffer(X, False)._replace(acts=acts, deltas=deltas)
        cost = ktrain.loss_and_gradient(X, np.ascontiguousarray(Y.T), self._no_weights, theta,
                                        self.arch.kernel_network, buf, self._settings, int(step))
        return cost, buf.grad.copy()


class ReferenceEngine(_Engine):
    """The same epoch, mini-batch by mini-batch, with the NumPy reference."""

    def epoch(self, state, X, Y, order, learning_rate, sample_weight=None):
        state.check(self.arch.n_parameters, self.arch.dtype, self.config.optimizer)
        # A diverging run overflows on its way to NaN; the session reports that
        # as DivergenceError, so NumPy's warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._epoch(state, X, Y, order, learning_rate, sample_weight)

    def _epoch(self, state, X, Y, order, learning_rate, sample_weight):
        c, dims = self.config, self.arch.layer_dims
        params = flat.unpack(state.theta, dims)
        moments_v = _grad_keyed(state.v, dims)
        moments_s = _grad_keyed(state.s, dims)
        costs = np.zeros(self.n_batches, dtype=np.float64)
        self._batch_weights = np.zeros(self.n_batches, dtype=np.float64)
        self._batch_metrics = np.zeros(self.n_batches, dtype=np.float64)
        failed = -1
        t = state.t
        for k in range(self.n_batches):
            start = k * self.batch_size
            rows = (order[start:start + self.batch_size] if order.size
                    else slice(start, start + self.batch_size))
            wk = None if sample_weight is None else sample_weight[rows]
            Yk = Y[rows]
            denom = Yk.shape[0] if wk is None else float(np.sum(wk, dtype=np.float64))
            self._batch_weights[k] = denom
            if denom == 0:
                continue      # a batch of zero weights teaches nothing
            cost, grads, self._batch_metrics[k] = self._loss_and_grads(
                params, _dense(X[rows]).T, Yk.T, t + k + 1, wk)
            costs[k] = cost
            if not np.isfinite(cost) or not all(np.isfinite(g).all() for g in grads.values()):
                failed = k
                break
            params, moments_v, moments_s = R.update_parameters_with_optimizer(
                params, grads, moments_v, moments_s, t + k + 1, learning_rate, c.optimizer,
                c.beta, c.beta1, c.beta2, c.epsilon)
        flat.pack(params, dims, self.arch.dtype, out=state.theta)
        for moments, target in ((moments_v, state.v), (moments_s, state.s)):
            if moments is not None:
                flat.pack({k[1:]: a for k, a in moments.items()}, dims, self.arch.dtype,
                          out=target)
        state.t += self.n_batches if failed < 0 else failed
        return costs, failed

    def _loss_and_grads(self, params, Xk, Yk, step, wk=None):
        """Cost (with the L2 term), the gradients dW1, db1, ... and the metric
        sum of one batch, column convention; ``wk`` its sample weights or None."""
        c, arch = self.config, self.arch
        acts, slope = arch.activations, arch.negative_slope
        # The L2 term is divided as the loss is: by the batch's weight (its size unweighted).
        denom = Xk.shape[1] if wk is None else float(np.sum(wk, dtype=np.float64))
        if c.keep_prob < 1.0:
            AL, caches, masks = R.forward_with_dropout(Xk, params, acts, c.keep_prob,
                                                       self.dropout_seed, step,
                                                       negative_slope=slope)
            grads = R.backward_with_dropout(AL, Yk, caches, acts, masks, c.keep_prob,
                                            negative_slope=slope, sample_weight=wk)
        else:
            AL, caches = R.forward(Xk, params, acts, negative_slope=slope)
            grads = R.backward(AL, Yk, caches, acts, negative_slope=slope, sample_weight=wk)
        cost = R.compute_cost(AL, Yk, acts[-1], sample_weight=wk)
        metric = arch.head.metric_sum(AL.T, Yk.T, wk)
        grads = {k: g for k, g in grads.items() if k[1] in "Wb"}
        if c.l2 > 0:
            # Divided by denom outside the steps (m = 1): a weight sum, not a count.
            cost += R.l2_cost(params, c.l2, 1) / denom
            grads = R.l2_gradient(grads, params, c.l2 / denom, 1)
        return cost, grads, metric

    def gradient(self, theta, X, Y, step=1):
        cost, grads, _ = self._loss_and_grads(flat.unpack(theta, self.arch.layer_dims),
                                              _dense(X).T, Y.T, step)
        return cost, flat.pack({k[1:]: g for k, g in grads.items()}, self.arch.layer_dims,
                               self.arch.dtype)


def _dense(X):
    """Rows as a dense array (the reference's view of sparse rows)."""
    return X.toarray() if is_sparse(X) else X


def _grad_keyed(moment, dims):
    """A flat moment vector as the reference's dict ``dW1, db1, ...`` (None when empty)."""
    if not moment.size:
        return None
    return {f"d{k}": a for k, a in flat.unpack(moment, dims).items()}


ENGINES = {"compiled": CompiledEngine, "reference": ReferenceEngine}
"""The backends: name → engine class."""


# The bits of ``ndarray.flags.num`` that, with dtype and ndim, make an array's
# Numba type: C- and F-contiguous (the layout), aligned, writeable (NumPy's
# NPY_ARRAY_* values).
_TYPE_FLAGS = 0x0001 | 0x0002 | 0x0100 | 0x0400


class _DenseKernel:
    """A prediction kernel (:func:`kernels.training.predict_output`) on dense
    rows, called through the compiled entry point of its signature
    (``Dispatcher.get_overload``).

    Numba's dispatcher types every argument of every call, and the
    ``Network`` namedtuple is typed by Python code: 0.9 us of a 3.1-us
    prediction of one row on digits-small. The Numba types of the arguments
    follow from the arrays' dtype, dimensions and flags (the network's are
    fixed by its dtype): the first call with a new combination goes through
    the dispatcher (compiling or loading the kernel) and records its entry
    point under that key; later calls look the key up and call the entry.
    """

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self._entries = {}

    def __call__(self, X, theta, net, n):
        # The last argument is an int (rows per chunk, or threads).
        key = (X.dtype, X.ndim, X.flags.num & _TYPE_FLAGS, theta.dtype, theta.ndim,
               theta.flags.num & _TYPE_FLAGS)
        entry = self._entries.get(key)
        if entry is not None:
            return entry(X, theta, net, n)
        out = self.dispatcher(X, theta, net, n)
        self._entries[key] = self._entry((X, theta, net, n))
        return out

    def _entry(self, args):
        from numba import typeof
        try:
            return self.dispatcher.get_overload(tuple(typeof(a) for a in args))
        except (AttributeError, KeyError, TypeError):
            # A Numba that resolved the call otherwise: keep its dispatcher.
            return self.dispatcher


_predict_dense = _DenseKernel(ktrain.predict_output)


def predict_output(arch, backend, theta, X):
    """A[L] of shape (nL, n_samples) for checked rows ``X`` (n_samples, n0),
    dense or sparse.

    The compiled backend splits large predictions between threads by the same
    rule as ``fit`` (all the samples as one batch), and runs on the reference
    while a helper process compiles its kernel; the reference runs
    :func:`deepnet_fast.reference.forward` (on dense chunks of sparse rows).
    """
    # The kernels index theta and X by the architecture.
    if X.ndim != 2 or X.shape[1] != arch.layer_dims[0] or theta.shape != (arch.n_parameters,) \
            or theta.dtype != arch.dtype:
        raise ValueError(f"X of shape {X.shape} and parameters of shape {theta.shape} "
                         f"({theta.dtype}) do not fit the network {list(arch.layer_dims)} "
                         f"({arch.dtype})")
    # While a helper compiles the prediction kernel, a small prediction runs
    # on the reference rather than wait for it (compilation.prediction_backend).
    backend = compilation.prediction_backend(arch, X.shape[0], backend, record=True)
    if backend == "reference":
        params = flat.unpack(theta, arch.layer_dims)

        def forward(rows):
            return R.forward(rows.T, params, arch.activations,
                             negative_slope=arch.negative_slope)[0]

        if not is_sparse(X):
            return forward(X)
        return np.concatenate([forward(X[i:i + PREDICT_CHUNK].toarray())
                               for i in range(0, X.shape[0], PREDICT_CHUNK)], axis=1)
    compilation.settle(dtype=arch.dtype)     # a helper may be compiling the kernel below
    dims = arch.layer_dims
    if X.shape[0] == 1 and type(X) is np.ndarray and pairs_one_row(dims[0] * dims[1]):
        pair.wake()            # for the calls that follow, if it sleeps
    args = (kernel_rows(X), theta, arch.kernel_network, PREDICT_CHUNK)
    threads = (None if runs_single(arch.multiply_adds(X.shape[0]))
               else compilation.prediction_threads(arch, X.shape[0], backend, record=True))
    if threads is None or threads.single:
        if type(X) is np.ndarray:
            return _predict_dense(*args)
        return ktrain.predict_output(*args)
    from .kernels.training_threaded import predict_output_threaded
    with threads:
        return predict_output_threaded(*args, threads.kernel_threads)
