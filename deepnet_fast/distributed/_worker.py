"""Worker side: the shard a worker trains on, and the rounds it runs on it."""

import threading
import time

import numba
import numpy as np
from distributed import get_worker

from ..engines import ENGINES
from ..inputs import check_rows
from ..state import TrainingState, validation_rows
from ..threads import fit_threads


class _Shard:
    """One worker's training data and the engine that trains on it.

    Lives in the worker's memory; round tasks receive it by reference. The
    engine and the lock are rebuilt if dask ever pickles the shard (spilling).
    """

    def __init__(self, spec, X, Y, rank, config):
        self.spec, self.X, self.Y, self.rank, self.config = spec, X, Y, rank, config
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
            (arch, backend, fit_config), c = self.spec, self.config
            m = self.X.shape[0]
            batch = m if c["batch"] is None else min(c["batch"], m)
            # As many threads as the worker has (one for small networks);
            # entering self.threads sets BLAS's pool to match.
            self.threads = fit_threads(arch.layer_dims, batch, backend,
                                       available=c.get("numba_threads", 1))
            self._engine = ENGINES[backend](arch, fit_config, batch, m, c["dropout_seed"],
                                            threads=self.threads.kernel_threads)
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


def build_shard(spec, X_blocks, y_blocks, rank, config):
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
    arch = spec[0]
    X = check_rows(X, arch.layer_dims[0], arch.dtype)
    Y = arch.head.encode(y, X.shape[0], arch.layer_dims[-1], arch.dtype)
    Xv = Yv = None
    if config["n_val"] > 0:
        # As DeepNet.fit: the split key picks the held-out rows.
        perm = validation_rows(config["split_key"], X.shape[0])
        n_val = config["n_val"]
        Xv, Yv = X[perm[:n_val]], Y[perm[:n_val]]
        X, Y = X[perm[n_val:]], Y[perm[n_val:]]
    # Writable too: Numba types read-only arrays apart and would compile again.
    X = np.require(X, arch.dtype, requirements="CAW")
    Y = np.require(Y, arch.dtype, requirements="CAW")
    shard = _Shard(spec, X, Y, rank, config)
    shard.Xv, shard.Yv = Xv, Yv
    warm = time.perf_counter()
    _warm_up(shard)
    shard.info = {"rank": rank, "rows": X.shape[0], "threads": threads,
                  "setup": time.perf_counter() - start,
                  "warmup": time.perf_counter() - warm}
    return shard


def _warm_up(shard):
    """Compile (or load from the cache) the epoch kernel on one batch."""
    engine = shard.engine
    arch, backend, fit_config = shard.spec
    if backend != "compiled":
        return
    b = engine.batch_size
    state = TrainingState(np.zeros(arch.n_parameters, arch.dtype))
    state.use_optimizer(fit_config.optimizer)
    order = shard.order[:b] if shard.order.size else shard.order
    if order.size:
        order[:] = np.arange(b)
    with shard.threads:
        engine.epoch(state, shard.X[:b], shard.Y[:b], order, 1e-3)


def describe(shard):
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
        state = TrainingState.of(theta, v, s, t)
        failed = -1
        with shard.threads:
            for k, lr in enumerate(rates):
                if rng is not None:
                    # Same draws as rng.permutation(m) in a local fit, without allocating.
                    np.copyto(shard.order, shard.arange)
                    rng.shuffle(shard.order)
                batch_costs, bad = engine.epoch(state, shard.X, shard.Y, shard.order, lr)
                if bad >= 0:
                    failed = k
                    break
                costs[k] = engine.epoch_cost(batch_costs)
        steps = state.t - t
        new_state = rng.bit_generator.state if rng is not None else rng_state
        return (theta, v, s, steps, costs, new_state, time.perf_counter() - start,
                get_worker().address, failed)


class RoundRunner:
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
