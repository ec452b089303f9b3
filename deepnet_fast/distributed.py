"""Data-parallel training of :class:`~deepnet_fast.DeepNet` on a Dask cluster.

``DeepNet.fit`` hands dask input (a dask array, DataFrame or Series as ``X`` or
``y``) to :func:`fit_dask`, and ``predict``/``predict_proba`` hand it to
:func:`predict_dask`. Only then is this module imported, so ``import
deepnet_fast`` never imports dask. Install the extra with
``pip install "deepnet-fast[dask]"``.

Per-epoch model averaging
-------------------------
1. ``X`` and ``y`` are persisted and their row chunks grouped by the worker
   that holds them (``futures_of``, ``Client.who_has``). A chunk moves, once,
   only to even out the rows between workers.
2. One set-up task per worker concatenates its chunks into a shard: ``X`` and
   the encoded targets as aligned C-contiguous arrays of the network's dtype,
   plus the compiled epoch engine with its buffers. The shard stays in that
   worker's memory; the chunks themselves are released (unless you hold them
   persisted), and no data moves between workers afterwards.
3. Each round sends the flat parameters and optimizer state (``v``, ``s``,
   ``t``) by value to every worker, through a small actor beside each shard
   (:class:`_RoundRunner`: an actor call goes straight to the worker, a task
   through the scheduler, which took twice the round overhead); each worker
   runs ``sync_every`` epochs on its shard, one compiled call per epoch,
   shuffling with its own random stream, and returns them; the client averages
   parameters and moments weighted by the shards' rows.

Everything else stays on the client and follows ``DeepNet.fit``: argument
checks, the learning-rate schedule, validation, early stopping, progress and
the :class:`~deepnet_fast.History`, which gets one entry per round (per epoch
with the default ``sync_every=1``). A round's cost is the row-weighted mean of
the costs of the epochs the workers ran in it. ``batch_size=None`` means each
worker's whole shard; a batch larger than a shard is cut to the shard.
``scale_learning_rate=True`` multiplies the learning rate by the number of
shards. A validation set (``validation_data``, or the ``validation_split``
each shard holds out) is brought to the client: keep it to a size that fits
there. ``history.shards`` describes the shards (worker, rows, set-up time) and
``history.rounds`` each round (wall time, compute time of every task, where it
ran, attempts).

Cost of a round, measured with two single-threaded workers on one 2-core
machine over loopback (``python -m deepnet_fast.bench_dask``; DESIGN.md §7):
about 14 ms on top of the compute (9 ms with one worker; 27–32 ms when rounds
were tasks). On 784-256-128-10 float32 with 10,000 samples (about 0.14 s of
compute per epoch) two workers ran an epoch 1.56–1.61× faster than one, at a
parallel efficiency of 0.8. Rounds of much less compute gain little: raise
``sync_every`` or give each worker more data.

Reproducibility: a shard's random stream (validation split, shuffling) is
seeded from ``(seed, 1, rank)`` and its state is kept by the client, and the
dropout seed is offset by the rank. On a single shard (one worker, or data in
one chunk) the run is therefore exactly ``DeepNet.fit`` on the same data, and a
round retried after a worker was lost gives the same result as if it had not
been.

Data larger than one machine's memory, sequentially
----------------------------------------------------
Model averaging needs the data in the cluster's memory. For data larger than
memory, train one block at a time with dask-ml's ``Incremental``, which calls
``partial_fit`` of :class:`~deepnet_fast.DeepNetClassifier` (or
``DeepNetRegressor``) on each block in turn, on the worker holding it, and
predicts block-wise (``ParallelPostFit``)::

    from dask_ml.wrappers import Incremental
    clf = Incremental(DeepNetClassifier((128,), batch_size=128, random_state=0))
    for _ in range(n_passes):
        clf.partial_fit(X, y, classes=np.arange(10))   # one epoch on each block
    labels = clf.predict(X_test)                       # a dask array

Only the model travels between workers, and only one block is worked on at a
time: no speed-up. With ``shuffle_blocks=False`` this is exactly
``partial_fit`` called on the blocks in order in one process.

Workers
-------
- Threads: the set-up task sets Numba's threads to the worker's thread count
  (``numba.set_num_threads``) and a round uses as many BLAS threads (one for
  small networks, as ``fit`` does). ``dask worker --nthreads 1`` per core is the
  setting that was measured; the kernels release the GIL (``nogil=True``).
- Allocation: the engine's buffers and the shuffling order are allocated once,
  at set-up; a round allocates only the parameters it receives.
- Numba cache: the kernels are compiled with ``cache=True``. Numba keeps the
  cache beside the installed kernels (``deepnet_fast/kernels/__pycache__``)
  when that directory is writable, else in the user's cache directory, so the
  workers of one machine share it and only the first compiles (10–20 s cold,
  about 1 s warm). For an install the workers cannot write to (a container
  image, a read-only site-packages) set ``NUMBA_CACHE_DIR`` to a writable
  directory in the workers' environment before they start
  (``NUMBA_CACHE_DIR=/scratch/numba dask worker ...``,
  ``LocalCluster(env={"NUMBA_CACHE_DIR": ...})``, dask-jobqueue's
  ``job_script_prologue``, a Kubernetes pod's ``env``); on a shared file
  system one directory serves every machine of the same CPU type. The set-up task runs a one-batch warm-up so that the compile (or the
  cache load) is paid there; ``history.shards[r]["warmup"]`` says how long it
  took.

Faults
------
If a worker is lost during a round, the shards it held are rebuilt elsewhere
(dask re-runs their set-up task, and the chunks it came from) and the tasks of
those shards are resubmitted with the same parameters; the other workers'
results are kept. A round that still cannot complete after
:data:`MAX_ATTEMPTS` attempts, or shards that cannot be rebuilt within
:data:`RECOVERY_TIMEOUT` seconds, raise :class:`DistributedTrainingError`;
the network then holds the parameters averaged after the last complete round.

Left out: asynchronous or gradient-averaging schemes (a per-batch all-reduce
cost 15× the compute here), ``score``/``cost`` on dask input, sample weights.
"""

import copy
import threading
import time
import uuid
import warnings
from concurrent.futures import CancelledError

import dask
import dask.array as da
import numba
import numpy as np
from distributed import KilledWorker, futures_of, get_client, get_worker, wait
from distributed.comm import CommClosedError

from ._validation import (
    check_choice,
    check_positive_int,
)
from .engines import ENGINES
from .exceptions import DivergenceError
from .history import History
from .network import _Progress, _is_dask
from .schedules import rate_at
from .threads import fit_threads

__all__ = ["fit_dask", "predict_dask", "score_dask", "DistributedTrainingError",
           "MAX_ATTEMPTS", "RECOVERY_TIMEOUT"]

MAX_ATTEMPTS = 3
"""Attempts of one round before :class:`DistributedTrainingError`."""

RECOVERY_TIMEOUT = 120.0
"""Seconds to wait for lost shards to be rebuilt (workers restarting, data recomputed)."""

_POLL = 0.2  # seconds between checks for lost workers while a round runs
# CancelledError: distributed's Future(s)CancelledError derive from it.
_WORKER_LOSS = (KilledWorker, CancelledError, CommClosedError)
# Offsets the dropout seed of each shard so that workers draw different masks.
_GOLDEN = 0x9E3779B97F4A7C15


class DistributedTrainingError(RuntimeError):
    """A training round could not be completed on the cluster.

    The network keeps the parameters (and optimizer state) averaged after the
    last complete round; ``history_`` records the rounds up to it.

    Attributes
    ----------
    round : int
        The (0-based) round that failed.
    epochs_done : int
        Epochs completed before it.
    """

    def __init__(self, round_, epochs_done, reason):
        self.round = round_
        self.epochs_done = epochs_done
        super().__init__(
            f"distributed training failed in round {round_}: {reason}. The model holds the "
            f"parameters averaged after the last complete round ({epochs_done} epochs); "
            "fit again with warm_start=True to continue.")


# ---------------------------------------------------------------- worker side


class _Shard:
    """One worker's training data and the engine that trains on it.

    Lives in the worker's memory; round tasks receive it by reference. The
    engine and the lock are rebuilt if dask ever pickles the shard (spilling).
    """

    def __init__(self, net, X, Y, rank, config):
        self.net, self.X, self.Y, self.rank, self.config = net, X, Y, rank, config
        self.Xv = self.Yv = None
        self.info = {}
        self._setstate_extras()

    def _setstate_extras(self):
        self.lock = threading.Lock()
        self._engine = None
        self.threads = None
        self.order = np.empty(0, np.int64)
        self.arange = np.empty(0, np.int64)

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("lock", "_engine", "threads", "order", "arange"):
            del state[name]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._setstate_extras()

    @property
    def engine(self):
        if self._engine is None:
            net, c, m = self.net, self.config, self.X.shape[0]
            batch = m if c["batch"] is None else min(c["batch"], m)
            # As many threads as the worker has (one for small networks);
            # entering self.threads sets BLAS's pool to match.
            self.threads = fit_threads(net.layer_dims, batch, net.backend,
                                       available=c.get("numba_threads", 1))
            self._engine = ENGINES[net.backend](
                net.layer_dims, net.activations, net.negative_slope, net.dtype, batch, m,
                c["optimizer"], c["l2"], c["beta"], c["beta1"], c["beta2"], c["epsilon"],
                c["keep_prob"], c["dropout_seed"], threads=self.threads.kernel_threads)
            self.weights = self._engine.batch_sizes() / m
            if c["shuffle"] and batch < m:
                self.arange = np.arange(m, dtype=np.int64)
                self.order = np.empty(m, np.int64)
        return self._engine


def _worker_threads():
    try:
        worker = get_worker()
    except ValueError:  # run outside a worker (tests, debugging)
        return 1
    state = getattr(worker, "state", worker)
    return int(getattr(state, "nthreads", 1))


def _build_shard(net, X_blocks, y_blocks, rank, config):
    """Set-up task: concatenate this worker's chunks once into an aligned shard."""
    start = time.perf_counter()
    threads = _worker_threads()
    config = dict(config, numba_threads=max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    # Numba's thread count belongs to the calling thread: set here for the
    # warm-up, and again in every round.
    numba.set_num_threads(config["numba_threads"])
    X = X_blocks[0] if len(X_blocks) == 1 else np.concatenate(X_blocks)
    y = y_blocks[0] if len(y_blocks) == 1 else np.concatenate(y_blocks)
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    X = net._check_X(X)
    Y = net._encode_y(y, X.shape[0])
    Xv = Yv = None
    if config["n_val"] > 0:
        # As DeepNet.fit: the first draw of the shard's stream picks the held-out rows.
        rng = np.random.default_rng(config["seed_key"])
        perm = rng.permutation(X.shape[0])
        n_val = config["n_val"]
        Xv, Yv = X[perm[:n_val]], Y[perm[:n_val]]
        X, Y = X[perm[n_val:]], Y[perm[n_val:]]
        rng_state = rng.bit_generator.state
    else:
        rng_state = np.random.default_rng(config["seed_key"]).bit_generator.state
    # Writable too: Numba types read-only arrays apart and would compile again.
    X = np.require(X, net.dtype, requirements="CAW")
    Y = np.require(Y, net.dtype, requirements="CAW")
    shard = _Shard(net, X, Y, rank, config)
    shard.Xv, shard.Yv = Xv, Yv
    warm = time.perf_counter()
    _warm_up(shard)
    shard.info = {"rank": rank, "rows": X.shape[0], "threads": threads,
                  "rng_state": rng_state, "setup": time.perf_counter() - start,
                  "warmup": time.perf_counter() - warm}
    return shard


def _warm_up(shard):
    """Compile (or load from the cache) the epoch kernel on one batch."""
    engine = shard.engine
    if shard.net.backend != "compiled":
        return
    b = engine.batch_size
    theta = np.zeros_like(shard.net._theta)
    size = theta.size
    opt = shard.config["optimizer"]
    v = np.zeros(size if opt in ("momentum", "adam") else 0, theta.dtype)
    s = np.zeros(size if opt in ("rmsprop", "adam") else 0, theta.dtype)
    order = shard.order[:b] if shard.order.size else shard.order
    if order.size:
        order[:] = np.arange(b)
    with shard.threads:
        engine.epoch(theta, v, s, 0, shard.X[:b], shard.Y[:b], order, 1e-3)


def _describe(shard):
    """Set-up facts for the client, and the held-out validation rows (handed over once)."""
    info = dict(shard.info, worker=get_worker().address)
    info["Xv"], info["Yv"] = shard.Xv, shard.Yv
    shard.Xv = shard.Yv = None
    return info


def _own(a, dtype):
    # Arrays arrive from the network read-only or misaligned at times.
    return np.require(a, dtype, requirements="CAW")


def _run_round(shard, theta, v, s, t, rates, rng_state):
    """Round task: ``len(rates)`` epochs on this worker's shard.

    Returns ``(theta, v, s, steps, epoch_costs, rng_state, seconds, worker,
    failed_epoch)`` where ``failed_epoch`` is -1 unless an epoch diverged.
    """
    with shard.lock:
        start = time.perf_counter()
        numba.set_num_threads(shard.config["numba_threads"])
        engine = shard.engine
        dt = shard.X.dtype
        theta, v, s = _own(theta, dt), _own(v, dt), _own(s, dt)
        rng = None
        if shard.order.size:
            rng = np.random.Generator(np.random.PCG64())
            rng.bit_generator.state = rng_state
        costs = np.empty(len(rates))
        steps, failed = 0, -1
        with shard.threads:
            for k, lr in enumerate(rates):
                if rng is not None:
                    # Same draws as rng.permutation(m) in DeepNet.fit, without allocating.
                    np.copyto(shard.order, shard.arange)
                    rng.shuffle(shard.order)
                batch_costs, bad = engine.epoch(theta, v, s, t + steps, shard.X, shard.Y,
                                                shard.order, lr)
                if bad >= 0:
                    failed = k
                    break
                steps += engine.n_batches
                costs[k] = batch_costs @ shard.weights
        new_state = rng.bit_generator.state if rng is not None else rng_state
        return (theta, v, s, steps, costs, new_state, time.perf_counter() - start,
                get_worker().address, failed)


class _RoundRunner:
    """Actor on a shard's worker that runs its rounds.

    Calling an actor goes from the client straight to the worker; a task goes
    through the scheduler. Measured here with two workers on two shared
    cores: 5 ms from call to start against 12-17 ms, and a round overhead of
    about 11 ms against 22-28 ms. The shard itself stays an ordinary future,
    which dask rebuilds elsewhere when its worker dies (the client then makes
    a new runner there).
    """

    def __init__(self, shard):
        self.shard = shard

    def run(self, theta, v, s, t, rates, rng_state):
        return _run_round(self.shard, theta, v, s, t, rates, rng_state)


def _predict_block(block, net, method):
    if block.shape[0] == 0:
        nL = net.layer_dims[-1]
        kind = _output_kind(net, method)
        return np.empty((0,) if kind[1] == 1 else (0, nL), kind[0])
    return getattr(net, method)(block)


# ---------------------------------------------------------------- client side


def _output_kind(net, method):
    """dtype and number of dimensions of ``predict``/``predict_proba``."""
    nL, out = net.layer_dims[-1], net.output_activation
    if method == "predict_proba":
        return net.dtype, 2
    if out == "softmax":
        return np.dtype(np.int64), 1
    dtype = np.dtype(np.int64) if out == "sigmoid" else net.dtype
    return dtype, 1 if nL == 1 else 2


def _frame_to_array(obj):
    if isinstance(obj, da.Array):
        return obj
    if hasattr(obj, "to_dask_array"):
        return obj.to_dask_array()
    raise TypeError(f"dask input must be a dask array, DataFrame or Series; got "
                    f"{type(obj).__name__}")


def predict_dask(net, X, method):
    """``net.predict`` or ``net.predict_proba`` block by block: a lazy dask array.

    The parameters are those of the network when this is called (a snapshot
    travels with the graph once, not once per block).

    Parameters
    ----------
    X : dask array or dask DataFrame of shape (n_samples, n_features)
    method : {"predict", "predict_proba"}

    Returns
    -------
    dask.array.Array
        Row chunks as ``X``'s; one row per sample, as the in-memory method.
    """
    check_choice(method, "method", ("predict", "predict_proba"))
    arr = _frame_to_array(X)
    n0 = net.layer_dims[0]
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D array; got shape {arr.shape}")
    if not np.isnan(arr.shape[1]) and arr.shape[1] != n0:
        raise ValueError(f"X must have {n0} features (columns) to match layer_dims[0]; "
                         f"got shape {arr.shape}")
    if arr.numblocks[1] > 1:
        arr = arr.rechunk({1: -1})
    model = dask.delayed(_inference_copy(net), pure=True)
    dtype, ndim = _output_kind(net, method)
    if ndim == 1:
        return arr.map_blocks(_predict_block, model, method, dtype=dtype, drop_axis=1,
                              meta=np.empty((0,), dtype))
    nL = net.layer_dims[-1]
    return arr.map_blocks(_predict_block, model, method, dtype=dtype,
                          chunks=(arr.chunks[0], (nL,)), meta=np.empty((0, 0), dtype))


def _block_statistics(X, y, net, what):
    """Sums over one block from which the whole data's cost or score follow."""
    from . import reference as R

    X = net._check_X(X)
    Y = net._encode_y(y, X.shape[0])
    m = X.shape[0]
    if m == 0:
        return None
    A = net._output(X)                                  # (nL, m)
    if what == "cost":
        return m, R.compute_cost(A, np.ascontiguousarray(Y.T), net.output_activation) * m
    P = A.T
    if net.output_activation == "softmax":
        return m, int(np.sum(np.argmax(P, axis=1) == np.argmax(Y, axis=1)))
    if net.output_activation == "sigmoid":
        return m, int(np.sum(np.all((P > 0.5) == (Y > 0.5), axis=1)))
    mean = Y.mean(axis=0, dtype=np.float64)
    return (m, mean, np.sum((Y - mean) ** 2, axis=0, dtype=np.float64),
            np.sum((Y - P) ** 2, axis=0, dtype=np.float64))


def _combine_r2(parts):
    """R² from per-block (n, mean, Σ(y - mean)², Σ(y - p)²), merging the
    blocks' spreads with Chan's update (no cancellation in Σy² - (Σy)²/n)."""
    n, mean, m2, ss_res = parts[0]
    for nb, mean_b, m2_b, res_b in parts[1:]:
        delta = mean_b - mean
        total = n + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2_b + delta ** 2 * (n * nb / total)
        ss_res = ss_res + res_b
        n = total
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(m2 > 0, 1 - ss_res / np.where(m2 > 0, m2, 1), 0.0)
    return float(np.mean(r2))


def _aligned_blocks(X, y, n_features):
    """Delayed row blocks of X and of y, y cut at X's chunk boundaries."""
    arr, yarr = _frame_to_array(X), _frame_to_array(y)
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D array; got shape {arr.shape}")
    if not np.isnan(arr.shape[1]) and arr.shape[1] != n_features:
        raise ValueError(f"X must have {n_features} features (columns) to match "
                         f"layer_dims[0]; got shape {arr.shape}")
    if np.isnan(arr.shape[0]):
        arr = arr.compute_chunk_sizes()
    if np.isnan(yarr.shape[0]):
        yarr = yarr.compute_chunk_sizes()
    if arr.shape[0] != yarr.shape[0]:
        raise ValueError(f"X and y must have the same number of samples; got {arr.shape[0]} "
                         f"and {yarr.shape[0]}")
    arr = arr.rechunk({1: -1})
    yarr = yarr.rechunk({0: arr.chunks[0], **({1: -1} if yarr.ndim == 2 else {})})
    return arr.to_delayed().ravel(), yarr.to_delayed().ravel()


def score_dask(net, X, y, what):
    """``net.cost`` or ``net.score`` of dask data, computed block by block.

    Each block is scored where it lives; only a few sums per block reach the
    client, which combines them into the value the in-memory method would
    give for the same data (up to rounding).

    Parameters
    ----------
    X : dask array or dask DataFrame of shape (n_samples, n_features)
    y : dask array, DataFrame or Series with the same number of rows
    what : {"cost", "score"}

    Returns
    -------
    float
    """
    check_choice(what, "what", ("cost", "score"))
    Xb, yb = _aligned_blocks(X, y, net.layer_dims[0])
    model = dask.delayed(_inference_copy(net), pure=True)
    parts = dask.compute(*[dask.delayed(_block_statistics)(xb, b, model, what)
                           for xb, b in zip(Xb, yb)])
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("X must contain at least one sample")
    if what == "score" and net.output_activation == "identity":
        return _combine_r2(parts)
    return float(sum(p[1] for p in parts) / sum(p[0] for p in parts))


def _inference_copy(net):
    """The network with a copy of its parameters and nothing else of weight."""
    clone = copy.copy(net)
    clone._theta = net._theta.copy()
    clone._v = clone._s = np.zeros(0, net.dtype)
    clone.history_ = None
    if isinstance(clone.init, dict):
        clone.init = "he"
    return clone


def _check_fit_args(epochs, learning_rate, batch_size, optimizer, beta, beta1, beta2, epsilon,
                    l2, keep_prob, lr_schedule, validation_split, patience, min_delta, verbose,
                    sync_every, scale_learning_rate):
    """The checks of ``DeepNet.fit``, plus the dask options."""
    from .network import check_fit_args

    out = check_fit_args(epochs, learning_rate, optimizer, beta, beta1, beta2, epsilon, l2,
                         keep_prob, lr_schedule, validation_split, patience, min_delta, verbose)
    out["sync_every"] = check_positive_int(sync_every, "sync_every")
    out["batch"] = None if batch_size is None else check_positive_int(batch_size, "batch_size")
    if not isinstance(scale_learning_rate, (bool, np.bool_)):
        raise TypeError(f"scale_learning_rate must be True or False; got {scale_learning_rate!r}")
    return out


def _resolve_client(client):
    if client is not None:
        return client
    try:
        return get_client()
    except ValueError:
        raise ValueError("fit on dask input needs a dask.distributed Client: create one "
                         "(e.g. Client(LocalCluster(...))) or pass client=...") from None


class _Data:
    """``X`` and ``y`` persisted on the cluster as row-aligned chunk futures."""

    def __init__(self, client, X, y, n_features):
        self.client = client
        Xa = _frame_to_array(X) if _is_dask(X) else None
        ya = _frame_to_array(y) if _is_dask(y) else None
        if Xa is not None:
            Xa = self._columns_whole(Xa, "X", 2)
            if not np.isnan(Xa.shape[1]) and Xa.shape[1] != n_features:
                raise ValueError(f"X must have {n_features} features (columns) to match "
                                 f"layer_dims[0]; got shape {Xa.shape}")
            Xa = self._persist(Xa)
        if ya is not None:
            ya = self._persist(self._columns_whole(ya, "y", None))
        if Xa is None:
            X = np.asarray(X)
            if X.ndim != 2 or X.shape[0] != ya.shape[0]:
                raise ValueError(f"X must be a 2-D array of {ya.shape[0]} rows, one per sample "
                                 f"of y; got shape {X.shape}")
            Xa = self._persist(da.from_array(X, chunks=(ya.chunks[0], -1)))
        if ya is None:
            y = np.asarray(y)
            if y.shape[:1] != (Xa.shape[0],):
                raise ValueError(f"y must have {Xa.shape[0]} rows, one per sample of X; "
                                 f"got shape {y.shape}")
            ya = self._persist(da.from_array(y, chunks=(Xa.chunks[0],) + (-1,) * (y.ndim - 1)))
        if Xa.shape[0] != ya.shape[0]:
            raise ValueError(f"y must have {Xa.shape[0]} rows, one per sample of X; "
                             f"got shape {ya.shape}")
        if ya.chunks[0] != Xa.chunks[0]:
            ya = self._persist(ya.rechunk({0: Xa.chunks[0]}))
        self.rows = list(Xa.chunks[0])
        self.X = self._chunk_futures(Xa)
        self.y = self._chunk_futures(ya)
        self.n_samples = int(Xa.shape[0])

    def _columns_whole(self, arr, name, ndim):
        if ndim is not None and arr.ndim != ndim or arr.ndim not in (1, 2):
            raise ValueError(f"{name} must be a {ndim or '1-D or 2'}-D array; got shape {arr.shape}")
        if arr.ndim == 2 and arr.numblocks[1] > 1:
            arr = arr.rechunk({1: -1})
        return arr

    def _persist(self, arr):
        arr = self.client.persist(arr)
        if any(np.isnan(c) for c in arr.chunks[0]):
            with dask.config.set(scheduler=self.client):
                arr.compute_chunk_sizes()
        return arr

    def _chunk_futures(self, arr):
        by_key = {f.key: f for f in futures_of(arr)}
        keys = arr.__dask_keys__()
        return [by_key[k[0] if isinstance(k, list) else k] for k in keys]


def _assign_chunks(rows, holders, workers):
    """Group chunks by the worker holding them, evening out rows by moving few.

    Parameters
    ----------
    rows : list of int
        Rows of each chunk.
    holders : list of list of str
        Workers holding each chunk.
    workers : list of str
        Workers to train on.

    Returns
    -------
    list of (worker, list of chunk indices)
        Non-empty groups, ordered by their first chunk; chunks in order.
    """
    load = {w: 0 for w in workers}
    owner = [None] * len(rows)
    for i, n in enumerate(rows):
        if n == 0:
            continue
        local = [w for w in holders[i] if w in load]
        if local:
            owner[i] = min(local, key=lambda w: load[w])
            load[owner[i]] += n
    for i, n in enumerate(rows):
        if n and owner[i] is None:
            owner[i] = min(workers, key=lambda w: load[w])
            load[owner[i]] += n
    for _ in range(len(rows)):
        heavy = max(workers, key=lambda w: load[w])
        light = min(workers, key=lambda w: load[w])
        gap = load[heavy] - load[light]
        movable = [i for i, w in enumerate(owner) if w == heavy and 0 < rows[i] < gap]
        if not movable:
            break
        i = min(movable, key=lambda i: abs(gap - 2 * rows[i]))
        owner[i] = light
        load[heavy] -= rows[i]
        load[light] += rows[i]
    groups = {}
    for i, w in enumerate(owner):
        if w is not None:
            groups.setdefault(w, []).append(i)
    return sorted(groups.items(), key=lambda item: item[1][0])


class _Shards:
    """The client's handle on the shards: futures, locations and random streams."""

    def __init__(self, client, data, groups, net, config, n_val):
        self.client = client
        self.token = uuid.uuid4().hex[:12]
        self.futures, self.workers, self.rows = [], [], []
        self.chunks = [chunks for _, chunks in groups]
        for rank, (worker, chunks) in enumerate(groups):
            cfg = dict(config, n_val=n_val[rank], seed_key=config["seed_keys"][rank],
                       dropout_seed=(config["dropout_seed"] + rank * _GOLDEN) % 2**62)
            del cfg["seed_keys"]
            self.futures.append(client.submit(
                _build_shard, net, [data.X[i] for i in chunks], [data.y[i] for i in chunks],
                rank, cfg, key=f"deepnet-shard-{self.token}-{rank}", workers=[worker],
                allow_other_workers=True, pure=False))
            self.workers.append(worker)
        try:
            wait(self.futures)
            for f in self.futures:
                if f.status == "error":
                    f.result()  # raises the set-up task's exception (bad data, ...)
            # Loosely pinned: should a worker die now, dask rebuilds the shard
            # elsewhere and runs this there rather than waiting for it.
            infos = client.gather([client.submit(_describe, f, workers=[w], pure=False,
                                                 allow_other_workers=True)
                                   for f, w in zip(self.futures, self.workers)])
            self.locate(range(len(self.futures)))
            self.runners = [None] * len(self.futures)
            self.start_runners(range(len(self.futures)))
        except BaseException:
            self.close()
            raise
        self.rows = [info["rows"] for info in infos]
        self.rng_states = [info.pop("rng_state") for info in infos]
        self.validation = [(info.pop("Xv"), info.pop("Yv")) for info in infos]
        self.info = infos

    def __len__(self):
        return len(self.futures)

    def locate(self, ranks):
        who = self.client.who_has([self.futures[r] for r in ranks])
        for r in ranks:
            holders = who.get(self.futures[r].key) or []
            if holders:
                self.workers[r] = sorted(holders)[0]

    def start_runners(self, ranks):
        """One :class:`_RoundRunner` per shard, on the worker that holds it."""
        self.attempt = getattr(self, "attempt", 0) + 1
        futures = {r: self.client.submit(
            _RoundRunner, self.futures[r], workers=[self.workers[r]],
            allow_other_workers=False, actor=True, pure=False,
            key=f"deepnet-runner-{self.token}-{r}-{self.attempt}") for r in ranks}
        old = [self.runners[r][0] for r in ranks if self.runners[r] is not None]
        for r, f in futures.items():
            self.runners[r] = (f, f.result())
        if old:
            self.client.cancel(old)

    def submit(self, rank, theta, v, s, t, rates):
        return self.runners[rank][1].run(theta, v, s, t, rates, self.rng_states[rank])

    def collect(self, calls):
        """Wait for a round's runner calls; return their results and the ranks
        whose worker was lost.

        A call to a worker that died fails with ``OSError``; one to a worker
        that stopped answering would wait forever, so the waits are cut into
        short slices between which the client looks for lost workers.
        """
        pending, results, lost = dict(calls), {}, set()
        while pending:
            for r, call in list(pending.items()):
                try:
                    results[r] = call.result(timeout=_POLL)
                    del pending[r]
                except TimeoutError:
                    break
                except (OSError,) + _WORKER_LOSS:
                    lost.add(r)
                    del pending[r]
            if pending:
                alive = set(self.client.nthreads())
                for r in list(pending):
                    if self.workers[r] not in alive or self.futures[r].status != "finished":
                        lost.add(r)
                        del pending[r]
        return results, lost

    def recover(self, ranks, deadline):
        """Wait until the lost shards are rebuilt (dask re-runs their set-up) and find them."""
        ranks = sorted(ranks)
        futures = [self.futures[r] for r in ranks]
        try:
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        except CancelledError:
            pass
        except TimeoutError:
            return (f"shard(s) {ranks} were not rebuilt within {RECOVERY_TIMEOUT:g} s of losing "
                    "their worker")
        for r, f in zip(ranks, futures):
            if f.status == "cancelled":
                return (f"shard {r} could not be rebuilt: data it was built from were lost and "
                        "cannot be recomputed (scattered data, or released)")
            if f.status != "finished":
                return f"shard {r} could not be rebuilt ({f.exception()!r})"
        self.locate(ranks)
        try:
            self.start_runners(ranks)
        except (OSError,) + _WORKER_LOSS as exc:
            return f"shard(s) {ranks} were rebuilt but their runners could not start ({exc!r})"
        return None

    def close(self):
        runners = [r[0] for r in getattr(self, "runners", []) if r is not None]
        self.client.cancel(runners + [f for f in self.futures if not f.cancelled()])


def fit_dask(net, X, y, *, client=None, workers=None, sync_every=1, scale_learning_rate=False,
             epochs=1000, learning_rate=0.0075, batch_size=None, optimizer="gd", beta=0.9,
             beta1=0.9, beta2=0.999, epsilon=1e-8, l2=0.0, keep_prob=1.0, lr_schedule=None,
             validation_data=None, validation_split=0.0, early_stopping=False, patience=10,
             min_delta=0.0, shuffle=True, verbose=1, warm_start=False):
    """Train ``net`` on dask data by per-epoch model averaging (see the module docstring).

    ``DeepNet.fit`` calls this for dask input; the arguments not listed are
    those of :meth:`DeepNet.fit`, with the same meaning.

    Parameters
    ----------
    net : DeepNet
    X : dask array or DataFrame of shape (n_samples, n_features)
    y : dask array, Series or DataFrame (or an ndarray) of shape (n_samples,)
        or (n_samples, n_outputs)
    client : distributed.Client, optional
        Default: ``distributed.get_client()``.
    workers : list of str, optional
        Addresses of the workers to train on (default: all of the client's).
    sync_every : int, default=1
        Epochs each worker runs between two averages (one round).
    scale_learning_rate : bool, default=False
        Multiply the learning rate by the number of shards.

    Returns
    -------
    History
        One entry per round; ``history.shards`` and ``history.rounds`` hold
        set-up and per-round facts.

    Raises
    ------
    DivergenceError
        When a worker's cost or gradient becomes NaN or infinite.
    DistributedTrainingError
        When a round cannot be completed (workers lost for good).
    """
    a = _check_fit_args(epochs, learning_rate, batch_size, optimizer, beta, beta1, beta2,
                        epsilon, l2, keep_prob, lr_schedule, validation_split, patience,
                        min_delta, verbose, sync_every, scale_learning_rate)
    client = _resolve_client(client)
    alive = sorted(client.nthreads())
    if workers is None:
        workers = alive
    else:
        workers = [workers] if isinstance(workers, str) else list(workers)
        unknown = [w for w in workers if w not in alive]
        if unknown or not workers:
            raise ValueError(f"workers must name workers of the cluster {alive}; got {workers}")
    if not workers:
        raise ValueError("the dask cluster has no workers")

    Xv = Yv = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (X_val, y_val)")
        Xv, yv = dask.compute(*validation_data, scheduler=client)
        Xv = net._check_X(Xv, "validation_data[0]")
        Yv = net._encode_y(yv, Xv.shape[0], "validation_data[1]")

    data = _Data(client, X, y, net.layer_dims[0])
    who = client.who_has(data.X)
    groups = _assign_chunks(data.rows, [who.get(f.key, []) for f in data.X], workers)
    shard_rows = [sum(data.rows[i] for i in chunks) for _, chunks in groups]
    if not groups:
        raise ValueError(f"X must contain at least one sample; got shape ({data.n_samples}, "
                         f"{net.layer_dims[0]})")
    n_val = [0] * len(groups)
    if Xv is None and a["validation_split"] > 0:
        total = int(round(a["validation_split"] * data.n_samples))
        n_val = [int(round(a["validation_split"] * m)) for m in shard_rows]
        if total < 1 or total >= data.n_samples or sum(n_val) < 1 or any(
                v >= m for v, m in zip(n_val, shard_rows)):
            raise ValueError(f"validation_split={a['validation_split']} leaves {total} validation "
                             f"samples out of {data.n_samples} (shards of {shard_rows} rows); "
                             "need at least one on each side in every shard")
    m = data.n_samples - sum(n_val)
    if a["batch"] is not None and a["batch"] > m:
        raise ValueError(f"batch_size must be between 1 and the number of training samples "
                         f"({m}); got {a['batch']}")

    if net.seed is None:
        base = int(np.random.SeedSequence().entropy)
        dropout_seed = int(np.random.default_rng(base).integers(2**62))
    else:
        base = int(net.seed)
        dropout_seed = base
    config = dict(batch=a["batch"], optimizer=a["optimizer"], l2=a["l2"], beta=a["beta"],
                  beta1=a["beta1"], beta2=a["beta2"], epsilon=a["epsilon"],
                  keep_prob=a["keep_prob"], dropout_seed=dropout_seed, shuffle=bool(shuffle),
                  seed_keys=[[base, 1] if r == 0 else [base, 1, r] for r in range(len(groups))])
    shards = _Shards(client, data, groups, _inference_copy(net), config, n_val)
    del data  # the shards hold the data now: release the chunks we persisted
    try:
        if not warm_start:
            net.reset()
        if net._optimizer != a["optimizer"]:
            size = net._theta.size
            net._v = np.zeros(size if a["optimizer"] in ("momentum", "adam") else 0, net.dtype)
            net._s = np.zeros(size if a["optimizer"] in ("rmsprop", "adam") else 0, net.dtype)
            net._t = 0
            net._optimizer = a["optimizer"]
        if Xv is None and sum(n_val) > 0:
            parts = [p for p in shards.validation if p[0] is not None and p[0].shape[0]]
            Xv = np.concatenate([p[0] for p in parts])
            Yv = np.concatenate([p[1] for p in parts])
        shards.validation = None
        return _train(net, shards, a, Xv, Yv, early_stopping, scale_learning_rate)
    finally:
        shards.close()


def _train(net, shards, a, Xv, Yv, early_stopping, scale_learning_rate):
    n = len(shards)
    weights = np.asarray(shards.rows, np.float64) / sum(shards.rows)
    scale = n if scale_learning_rate else 1
    rounds = -(-a["epochs"] // a["sync_every"])
    history = History()
    history.shards = [dict(info, worker=w, chunks=c)
                      for info, w, c in zip(shards.info, shards.workers, shards.chunks)]
    history.rounds = []
    history.sync_every = a["sync_every"]
    net.history_ = history
    progress = _RoundProgress(rounds, a["sync_every"], a["verbose"])
    best = (np.inf, None, None)
    waited = 0
    acc = np.empty(net._theta.size, np.float64)
    epoch = 0
    try:
        for rnd in range(rounds):
            start = time.perf_counter()
            k = min(a["sync_every"], a["epochs"] - epoch)
            rates = [rate_at(a["schedule"], e, a["lr0"]) * scale for e in range(epoch, epoch + k)]
            results = {}
            attempts = 0
            deadline = None
            while len(results) < n:
                attempts += 1
                if attempts > MAX_ATTEMPTS:
                    raise DistributedTrainingError(
                        rnd, epoch, f"workers were lost in {MAX_ATTEMPTS} attempts")
                calls = {r: shards.submit(r, net._theta, net._v, net._s, net._t, rates)
                         for r in range(n) if r not in results}
                try:
                    done, lost = shards.collect(calls)
                except (OSError, CommClosedError) as exc:
                    raise DistributedTrainingError(rnd, epoch, f"the cluster failed ({exc!r})") \
                        from exc
                results.update(done)
                if lost:
                    deadline = deadline or time.monotonic() + RECOVERY_TIMEOUT
                    problem = shards.recover(lost, deadline)
                    if problem:
                        raise DistributedTrainingError(rnd, epoch, problem)
            ordered = [results[r] for r in range(n)]
            failed = [(res[8], r) for r, res in enumerate(ordered) if res[8] >= 0]
            if failed:
                e = epoch + min(failed)[0]
                raise DivergenceError(e, learning_rate=rates[e - epoch])
            # An update can overflow after the last finite gradient of an epoch;
            # averages of finite values stay finite.
            if not all(np.isfinite(res[0]).all() for res in ordered):
                raise DivergenceError(epoch + k - 1, what="parameters", learning_rate=rates[-1])
            _average(net, ordered, weights, acc)
            shards.rng_states = [res[5] for res in ordered]
            cost = float(sum(w * float(np.mean(res[4])) for w, res in zip(weights, ordered)))
            epoch += k
            val_cost, val_metric = net._validation(Xv, Yv)
            wall = time.perf_counter() - start
            history._append(cost, rates[0], wall, val_cost, **val_metric)
            history.rounds.append({"wall": wall, "compute": [res[6] for res in ordered],
                                   "workers": [res[7] for res in ordered],
                                   "shard_workers": list(shards.workers),
                                   "epochs": k, "attempts": attempts})
            progress.update(rnd, cost, val_cost, last_epoch=epoch - 1)
            if early_stopping:
                monitored = cost if val_cost is None else val_cost
                if monitored < best[0] - a["min_delta"]:
                    best, waited = (monitored, rnd, net._snapshot()), 0
                else:
                    waited += 1
                    if waited >= a["patience"]:
                        history.stopped_epoch = rnd
                        break
    except KeyboardInterrupt:
        # Nothing is applied until a round's average: the model already holds
        # the parameters of the last complete round. (A runner call in flight
        # cannot be cancelled; it finishes on its worker and is dropped.)
        history.interrupted = True
        warnings.warn(f"training interrupted after {len(history.cost)} complete rounds; "
                      "the model holds the parameters averaged after the last complete round",
                      RuntimeWarning, stacklevel=3)
    finally:
        progress.close()
    if early_stopping and best[2] is not None:
        net._restore(best[2])
        history.best_epoch = best[1]
    return history


def _average(net, results, weights, acc):
    """Row-weighted mean of the workers' parameters and moments, into the network."""
    steps = sum(w * res[3] for w, res in zip(weights, results))
    for slot, target in ((0, net._theta), (1, net._v), (2, net._s)):
        if target.size == 0:
            continue
        if len(results) == 1:
            np.copyto(target, results[0][slot])
            continue
        acc.fill(0.0)
        for w, res in zip(weights, results):
            acc += w * res[slot]
        np.copyto(target, acc, casting="same_kind")
    net._t += int(round(steps))


class _RoundProgress(_Progress):
    """``DeepNet.fit``'s progress, counting rounds of ``sync_every`` epochs."""

    def __init__(self, rounds, sync_every, verbose):
        super().__init__(rounds, verbose)
        self.sync_every = sync_every

    def update(self, rnd, cost, val_cost, last_epoch=None):
        label = None if self.sync_every == 1 else f"round {rnd} (epoch {last_epoch})"
        super().update(rnd, cost, val_cost, label)
