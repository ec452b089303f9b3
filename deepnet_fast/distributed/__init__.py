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
   (:class:`RoundRunner`: an actor call goes straight to the worker, a task
   through the scheduler, which took twice the round overhead); each worker
   runs ``sync_every`` epochs on its shard, one compiled call per epoch,
   shuffling with its own random stream, and returns them; the client averages
   parameters and moments weighted by the shards' rows.

Everything else stays on the client, in the same
:class:`~deepnet_fast.session.TrainingSession` that ``DeepNet.fit`` runs (this
module only gives it a runner whose step is a round): argument checks, the
learning-rate schedule, the divergence guard, validation, early stopping and
other callbacks, progress and the :class:`~deepnet_fast.History`, which gets
one entry per round (per epoch with the default ``sync_every=1``). A round's cost is the row-weighted mean of
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

Reproducibility: the first shard shuffles with the training state's own
stream, continued across warm fits as in memory; shard r > 0 with a stream
seeded from ``(seed, 1, r)`` (and the state's epoch after the first fit);
the client keeps every stream's state, and the
dropout seed is offset by the rank. On a single shard (one worker, or data in
one chunk) the run is therefore exactly ``DeepNet.fit`` on the same data, warm
fits included, and a round retried after a worker was lost gives the same
result as if it had not been.

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

``DeepNet.score`` and ``cost`` on dask input (:func:`score_dask`) score each
block where it lives and combine a few sums per block on the client.

Modules: ``_worker`` (the shard and the rounds run on it), ``_placement``
(where the chunks are, the shards and their runners, seen from the client),
``_inference`` (predict and score, block by block); this one holds the
training loop.

Left out: asynchronous or gradient-averaging schemes (a per-batch all-reduce
cost 15× the compute here), sample weights.
"""

import time

import dask
import numpy as np
from distributed import get_client
from distributed.comm import CommClosedError

from .._validation import check_bool, check_positive_int, check_validation_pair
from ..history import History
from ..inputs import check_rows
from ..session import TrainingSession, check_batch_size
from ..state import split_key
from ._inference import predict_dask, score_dask
from ._placement import assign_chunks, Data, Shards

__all__ = ["fit_dask", "predict_dask", "score_dask", "DistributedTrainingError",
           "MAX_ATTEMPTS", "RECOVERY_TIMEOUT"]

MAX_ATTEMPTS = 3
"""Attempts of one round before :class:`DistributedTrainingError`."""

RECOVERY_TIMEOUT = 120.0
"""Seconds to wait for lost shards to be rebuilt (workers restarting, data recomputed)."""


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


def _resolve_client(client):
    if client is not None:
        return client
    try:
        return get_client()
    except ValueError:
        raise ValueError("fit on dask input needs a dask.distributed Client: create one "
                         "(e.g. Client(LocalCluster(...))) or pass client=...") from None


def _resolve_workers(client, workers):
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
    return workers


def fit_dask(arch, backend, state, config, X, y, *, seed=None, callbacks=(),
             validation_data=None, client=None, workers=None, sync_every=1,
             scale_learning_rate=False):
    """The training session of ``DeepNet.fit`` on dask data: per-epoch model
    averaging (see the module docstring).

    ``DeepNet.fit`` calls this for dask input and runs the session it returns.

    Parameters
    ----------
    arch : Architecture
    backend : str
    state : TrainingState
        The network's training state (continued or fresh); averaged rounds
        are written into it.
    config : FitConfig
    X : dask array or DataFrame of shape (n_samples, n_features)
    y : dask array, Series or DataFrame (or an ndarray) of shape (n_samples,)
        or (n_samples, n_outputs)
    seed : int or None
        The network's seed (shards' streams and dropout masks derive from it).
    callbacks : sequence of Callback
    validation_data : tuple (X_val, y_val), optional
        In memory or dask; brought to the client.
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
    TrainingSession
        Its ``run()`` trains; ``history.shards`` and ``history.rounds`` hold
        set-up and per-round facts.
    """
    sync_every = check_positive_int(sync_every, "sync_every")
    scale_learning_rate = check_bool(scale_learning_rate, "scale_learning_rate")
    client = _resolve_client(client)
    workers = _resolve_workers(client, workers)
    dims = arch.layer_dims

    validation = None
    if validation_data is not None:
        Xv, yv = dask.compute(*check_validation_pair(validation_data), scheduler=client)
        Xv = check_rows(Xv, dims[0], arch.dtype, "validation_data[0]")
        validation = (Xv, arch.head.encode(yv, Xv.shape[0], dims[-1], arch.dtype,
                                           "validation_data[1]"))

    data = Data(client, X, y, dims[0])
    who = client.who_has(data.X)
    groups = assign_chunks(data.rows, [who.get(f.key, []) for f in data.X], workers)
    shard_rows = [sum(data.rows[i] for i in chunks) for _, chunks in groups]
    if not groups:
        raise ValueError(f"X must contain at least one sample; got shape ({data.n_samples}, "
                         f"{dims[0]})")
    n_val = [0] * len(groups)
    if validation is None and config.validation_split > 0:
        split = config.validation_split
        total = int(round(split * data.n_samples))
        n_val = [int(round(split * m)) for m in shard_rows]
        if total < 1 or total >= data.n_samples or sum(n_val) < 1 or any(
                v >= m for v, m in zip(n_val, shard_rows)):
            raise ValueError(f"validation_split={split} leaves {total} validation samples out "
                             f"of {data.n_samples} (shards of {shard_rows} rows); need at "
                             "least one on each side in every shard")
    check_batch_size(config.batch_size, data.n_samples - sum(n_val))

    if seed is None:
        base = int(np.random.SeedSequence().entropy)
        dropout_seed = int(np.random.default_rng(base).integers(2**62))
    else:
        base = int(seed)
        dropout_seed = base
    shard_config = dict(batch=config.batch_size, shuffle=config.shuffle,
                        dropout_seed=dropout_seed,
                        split_keys=[split_key(base, *([r] if r else []))
                                    for r in range(len(groups))],
                        rng_states=_shard_streams(state, base, len(groups)))
    # The schedule stays on the client (a lambda would not pickle): workers get rates.
    spec = (arch, backend, config.replace(lr_schedule=None))
    shards = Shards(client, data, groups, spec, shard_config, n_val)
    del data  # the shards hold the data now: release the chunks we persisted
    try:
        if validation is None and sum(n_val) > 0:
            parts = [p for p in shards.validation if p[0] is not None and p[0].shape[0]]
            validation = (np.concatenate([p[0] for p in parts]),
                          np.concatenate([p[1] for p in parts]))
        shards.validation = None
        history = History()
        history.shards = [dict(info, worker=w, chunks=c)
                          for info, w, c in zip(shards.info, shards.workers, shards.chunks)]
        history.rounds = []
        history.sync_every = sync_every
        runner = _DaskRunner(shards, sync_every, len(shards) if scale_learning_rate else 1,
                             history)
        return TrainingSession(arch, backend, state, config, runner, validation, callbacks,
                               history)
    except BaseException:
        shards.close()
        raise


def _shard_streams(state, base, n_shards):
    """The shuffle streams' starting states, one per shard: the first
    continues the training state's own stream (on one shard a fit is exactly
    ``DeepNet.fit``, warm fits included); shard r > 0 starts a stream of
    ``(base, 1, r)``, and of the state's epoch too after the first, so that a
    warm fit does not repeat the orders of the one before."""
    more = [int(state.epoch)] if state.epoch else []
    return [state.rng.bit_generator.state] + [
        np.random.default_rng([int(base), 1, r, *more]).bit_generator.state
        for r in range(1, n_shards)]


class _DaskRunner:
    """A session's runner whose step is one round on every shard (see the
    module docstring): ``sync_every`` epochs per worker, then the average."""

    def __init__(self, shards, sync_every, rate_scale, history):
        self.shards = shards
        self.epochs_per_step = sync_every
        self.rate_scale = rate_scale
        self.history = history
        self.weights = np.asarray(shards.rows, np.float64) / sum(shards.rows)
        self.round = self.epochs_done = 0
        self._acc = None

    def open(self):
        pass

    def close(self):
        self.shards.close()

    def label(self, step, epoch):
        return None if self.epochs_per_step == 1 else f"round {step} (epoch {epoch})"

    def run(self, state, rates):
        """One round at ``rates`` (one per epoch); averages into ``state``.

        Returns (row-weighted mean cost of the round's epochs, the offset of
        the first diverged epoch or -1).
        """
        shards, n = self.shards, len(self.shards)
        start = time.perf_counter()
        results, attempts, deadline = {}, 0, None
        while len(results) < n:
            attempts += 1
            if attempts > MAX_ATTEMPTS:
                raise DistributedTrainingError(
                    self.round, self.epochs_done, f"workers were lost in {MAX_ATTEMPTS} attempts")
            calls = {r: shards.submit(r, state.theta, state.v, state.s, state.t, rates)
                     for r in range(n) if r not in results}
            try:
                done, lost = shards.collect(calls)
            except (OSError, CommClosedError) as exc:
                raise DistributedTrainingError(self.round, self.epochs_done,
                                               f"the cluster failed ({exc!r})") from exc
            results.update(done)
            if lost:
                deadline = deadline or time.monotonic() + RECOVERY_TIMEOUT
                problem = shards.recover(lost, deadline, RECOVERY_TIMEOUT)
                if problem:
                    raise DistributedTrainingError(self.round, self.epochs_done, problem)
        ordered = [results[r] for r in range(n)]
        failed = [res[8] for res in ordered if res[8] >= 0]
        if failed:
            return np.nan, min(failed)
        self._average(state, ordered)
        shards.rng_states = [res[5] for res in ordered]
        # The first shard's stream is the fit's: a warm fit continues it.
        state.rng.bit_generator.state = shards.rng_states[0]
        cost = float(sum(w * float(np.mean(res[4])) for w, res in zip(self.weights, ordered)))
        self.history.rounds.append({"wall": time.perf_counter() - start,
                                    "compute": [res[6] for res in ordered],
                                    "workers": [res[7] for res in ordered],
                                    "shard_workers": list(shards.workers),
                                    "epochs": len(rates), "attempts": attempts})
        self.round += 1
        self.epochs_done += len(rates)
        return cost, -1

    def _average(self, state, results):
        """Row-weighted mean of the workers' parameters and moments, into ``state``."""
        steps = sum(w * res[3] for w, res in zip(self.weights, results))
        for slot, target in ((0, state.theta), (1, state.v), (2, state.s)):
            if target.size == 0:
                continue
            if len(results) == 1:
                np.copyto(target, results[0][slot])
                continue
            if self._acc is None:
                self._acc = np.empty(state.theta.size, np.float64)
            acc = self._acc
            acc.fill(0.0)
            for w, res in zip(self.weights, results):
                acc += w * res[slot]
            np.copyto(target, acc, casting="same_kind")
        state.t += int(round(steps))
