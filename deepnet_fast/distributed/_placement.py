"""Client side of the data: where chunks live, how they are grouped into shards,
and the handle on the shards and their runners during training."""

import time
import uuid
from concurrent.futures import CancelledError

import dask
import dask.array as da
import numpy as np
from distributed import KilledWorker, futures_of, wait
from distributed.comm import CommClosedError

from ..inputs import is_dask
from ._inference import frame_to_array
from ._worker import build_shard, describe, RoundRunner

_POLL = 0.2  # seconds between checks for lost workers while a round runs
_RUNNER_START = 60.0  # seconds for a round runner to start beside its shard
# CancelledError: distributed's Future(s)CancelledError derive from it.
_WORKER_LOSS = (KilledWorker, CancelledError, CommClosedError)
# Offsets the dropout seed of each shard so that workers draw different masks.
_GOLDEN = 0x9E3779B97F4A7C15


class Data:
    """``X`` and ``y`` persisted on the cluster as row-aligned chunk futures."""

    def __init__(self, client, X, y, n_features):
        self.client = client
        Xa = frame_to_array(X, "X") if is_dask(X) else None
        ya = frame_to_array(y, "y") if is_dask(y) else None
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


def assign_chunks(rows, holders, workers):
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


class Shards:
    """The client's handle on the shards: futures, locations and random streams."""

    def __init__(self, client, data, groups, spec, config, n_val):
        self.client = client
        self.token = uuid.uuid4().hex[:12]
        self.futures, self.workers, self.rows = [], [], []
        self.chunks = [chunks for _, chunks in groups]
        for rank, (worker, chunks) in enumerate(groups):
            cfg = dict(config, n_val=n_val[rank], split_key=config["split_keys"][rank],
                       dropout_seed=(config["dropout_seed"] + rank * _GOLDEN) % 2**62)
            del cfg["rng_states"], cfg["split_keys"]
            self.futures.append(client.submit(
                build_shard, spec, [data.X[i] for i in chunks], [data.y[i] for i in chunks],
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
            infos = client.gather([client.submit(describe, f, workers=[w], pure=False,
                                                 allow_other_workers=True)
                                   for f, w in zip(self.futures, self.workers)])
            self.locate(range(len(self.futures)))
            self.runners = [None] * len(self.futures)
            self.start_runners(range(len(self.futures)))
        except BaseException:
            self.close()
            raise
        self.rows = [info["rows"] for info in infos]
        self.rng_states = list(config["rng_states"])
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
        """One :class:`RoundRunner` per shard, on the worker that holds it."""
        self.attempt = getattr(self, "attempt", 0) + 1
        futures = {r: self.client.submit(
            RoundRunner, self.futures[r], workers=[self.workers[r]],
            allow_other_workers=False, actor=True, pure=False,
            key=f"deepnet-runner-{self.token}-{r}-{self.attempt}") for r in ranks}
        old = [self.runners[r][0] for r in ranks if self.runners[r] is not None]
        for r, f in futures.items():
            # Bounded: a runner pinned to a worker that just died never starts.
            self.runners[r] = (f, f.result(timeout=_RUNNER_START))
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

    def recover(self, ranks, deadline, timeout):
        """Wait until the lost shards are rebuilt (dask re-runs their set-up) and find them."""
        ranks = sorted(ranks)
        futures = [self.futures[r] for r in ranks]
        try:
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        except CancelledError:
            pass
        except TimeoutError:
            return (f"shard(s) {ranks} were not rebuilt within {timeout:g} s of losing "
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
        except (OSError, TimeoutError) + _WORKER_LOSS as exc:
            return f"shard(s) {ranks} were rebuilt but their runners could not start ({exc!r})"
        return None

    def close(self):
        runners = [r[0] for r in getattr(self, "runners", []) if r is not None]
        self.client.cancel(runners + [f for f in self.futures if not f.cancelled()])
