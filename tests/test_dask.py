"""Data-parallel training on a Dask cluster (deepnet_fast.distributed).

All tests share one loopback LocalCluster of two single-threaded worker
processes; they are skipped when dask and distributed are not installed
(``pip install "deepnet-fast[dask]"``).
"""

import gc
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import deepnet_fast.distributed as ddist  # noqa: E402
from deepnet_fast import DeepNet, DivergenceError  # noqa: E402

pytestmark = pytest.mark.timeout(180)

DIMS = [64, 32, 10]


@pytest.fixture(scope="session")
def client():
    # Compile (or load) the float64 kernels here first, so that the workers
    # find them in the shared Numba cache instead of compiling side by side.
    warm = DeepNet([4, 3, 2], output_activation="softmax", seed=0)
    warm.fit(np.random.default_rng(0).random((8, 4)), np.arange(8) % 2, epochs=1, batch_size=4,
             verbose=0)
    warm.predict(np.ones((2, 4)))
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    # Futures caught in reference cycles (tracebacks of expected errors) run
    # distributed's finalizers when collected; collect them now rather than
    # in the middle of a later import (CPython 3.11.7 then fails with
    # "AST constructor recursion depth mismatch").
    gc.collect()


@pytest.fixture
def cluster_of_two(client):
    """The shared client, with two workers again after a test that killed one."""
    client.wait_for_workers(2, timeout=60)
    yield client
    gc.collect()
    client.wait_for_workers(2, timeout=60)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _net(seed=0):
    return DeepNet(DIMS, output_activation="softmax", seed=seed)


# ---------------------------------------------------------------- no dask needed


def test_in_memory_fit_and_predict_do_not_import_dask():
    code = ("import sys, numpy as np, deepnet_fast; "
            "net = deepnet_fast.DeepNet([3, 2, 1], seed=0); "
            "X = np.random.default_rng(0).random((20, 3)); "
            "net.fit(X, (X[:, 0] > 0.5).astype(int), epochs=2, verbose=0); net.predict(X); "
            "print([m for m in ('dask', 'distributed') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_assign_chunks_keeps_chunks_in_place_when_balanced():
    groups = ddist.assign_chunks([100, 100, 100, 100], [["a"], ["b"], ["a"], ["b"]], ["a", "b"])
    assert groups == [("a", [0, 2]), ("b", [1, 3])]


def test_assign_chunks_moves_few_chunks_to_balance_rows():
    groups = ddist.assign_chunks([100] * 6, [["a"]] * 6, ["a", "b"])
    assert sorted(len(chunks) for _, chunks in groups) == [3, 3]
    # Chunks held by workers that are not used go to the lightest worker.
    groups = ddist.assign_chunks([10, 10, 0], [["a"], ["c"], ["c"]], ["a"])
    assert groups == [("a", [0, 1])]


# ---------------------------------------------------------------- one shard == fit


def test_one_chunk_fit_equals_in_memory_fit_full_batch(cluster_of_two, digits):
    # 600 samples: small enough that both sides use one BLAS thread, so
    # the sums are taken in the same order.
    X, y = digits[0][:600], digits[1][:600]
    kw = dict(epochs=5, learning_rate=0.5, verbose=0)
    ref = _net()
    h_ref = ref.fit(X, y, **kw)
    net = _net()
    h = net.fit(da.from_array(X, chunks=-1), da.from_array(y, chunks=-1), **kw)
    assert len(h.shards) == 1
    np.testing.assert_array_equal(net.training_state.theta, ref.training_state.theta)
    assert h.cost == h_ref.cost


def test_one_worker_fit_equals_in_memory_fit_minibatch_adam_dropout_validation(cluster_of_two,
                                                                              digits):
    X, y = digits
    kw = dict(epochs=4, learning_rate=0.01, batch_size=50, optimizer="adam", keep_prob=0.9,
              validation_split=0.2, verbose=0)
    ref = _net()
    h_ref = ref.fit(X, y, **kw)
    worker = sorted(cluster_of_two.nthreads())[0]
    net = _net()
    h = net.fit(da.from_array(X, chunks=400), da.from_array(y, chunks=400),
                       workers=[worker], **kw)
    assert [s["worker"] for s in h.shards] == [worker]
    np.testing.assert_array_equal(net.training_state.theta, ref.training_state.theta)
    np.testing.assert_array_equal(net.training_state.v, ref.training_state.v)
    np.testing.assert_array_equal(net.training_state.s, ref.training_state.s)
    assert net.training_state.t == ref.training_state.t
    assert h.cost == h_ref.cost
    # The validation set is predicted on the client: an in-memory fit does it on
    # the fit's threads (one BLAS thread for this network), the dask client on its
    # default ones, and OpenBLAS's sums may differ with the thread count in the
    # last bit (seen on an AMD Zen 4): equal to rounding, as the README says.
    np.testing.assert_allclose(h.val_cost, h_ref.val_cost, rtol=1e-12, atol=0)


def test_one_worker_warm_fits_continue_the_shuffle_as_in_memory(cluster_of_two, digits):
    X, y = digits[0][:400], digits[1][:400]
    kw = dict(learning_rate=0.1, batch_size=32, verbose=0)      # shuffled mini-batches
    once, warm, dask_warm = _net(), _net(), _net()
    once.fit(X, y, epochs=3, **kw)
    Xd, yd = da.from_array(X, chunks=-1), da.from_array(y, chunks=-1)
    for e in range(3):
        warm.fit(X, y, epochs=1, warm_start=e > 0, **kw)
        dask_warm.fit(Xd, yd, epochs=1, warm_start=e > 0, **kw)
    np.testing.assert_array_equal(warm.training_state.theta, once.training_state.theta)
    np.testing.assert_array_equal(dask_warm.training_state.theta, once.training_state.theta)
    assert (dask_warm.training_state.rng.bit_generator.state
            == once.training_state.rng.bit_generator.state)


def test_two_shard_warm_fits_do_not_repeat_the_second_shards_orders():
    from deepnet_fast.distributed import _shard_streams
    from deepnet_fast.state import TrainingState
    state = TrainingState(np.zeros(10), seed=0)
    first = _shard_streams(state, 0, 3)
    assert first[0] == state.rng.bit_generator.state
    assert first[1] == np.random.default_rng([0, 1, 1]).bit_generator.state
    state.epoch = 4
    later = _shard_streams(state, 0, 3)
    assert later[1:] == [np.random.default_rng([0, 1, r, 4]).bit_generator.state
                         for r in (1, 2)]
    assert later[1] != first[1] and later[2] != first[2]


def test_score_and_cost_take_y_in_memory_as_fit_does(cluster_of_two, digits):
    X, y = digits[0][:300], digits[1][:300]
    net = _net()
    net.fit(X, y, epochs=2, verbose=0)
    Xd = da.from_array(X, chunks=70)
    for y_in_memory in (y, list(y)):
        assert net.score(Xd, y_in_memory) == pytest.approx(net.score(X, y), rel=1e-12)
        assert net.cost(Xd, y_in_memory) == pytest.approx(net.cost(X, y), rel=1e-10)
    assert net.score(X, da.from_array(y, chunks=70)) == pytest.approx(net.score(X, y),
                                                                      rel=1e-12)
    with pytest.raises(ValueError, match="y must be a 1-D or 2-D array of 300 rows"):
        net.score(Xd, y[:-1])
    with pytest.raises(ValueError, match="X must be a 2-D array of 299 rows"):
        net.cost(X, da.from_array(y[:-1], chunks=70))
    import scipy.sparse
    with pytest.raises(TypeError, match="X must be dense with a dask y"):
        net.score(scipy.sparse.csr_matrix(X), da.from_array(y, chunks=70))


def test_one_worker_dataframe_fit_equals_in_memory_fit(cluster_of_two, digits):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)]).assign(label=y)
    ddf = dd.from_pandas(frame, npartitions=3)
    kw = dict(epochs=3, learning_rate=0.01, batch_size=64, optimizer="momentum", verbose=0)
    ref = _net()
    ref.fit(X, y, **kw)
    worker = sorted(cluster_of_two.nthreads())[0]
    net = _net()
    net.fit(ddf.drop(columns="label"), ddf["label"], workers=[worker], **kw)
    np.testing.assert_array_equal(net.training_state.theta, ref.training_state.theta)
    labels = net.predict(ddf.drop(columns="label"))
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), ref.predict(X))


# ---------------------------------------------------------------- two workers


@pytest.fixture(scope="module")
def two_worker_fit(client, digits):
    client.wait_for_workers(2, timeout=60)
    X, y = digits
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    kw = dict(epochs=15, learning_rate=0.005, batch_size=32, optimizer="adam", verbose=0)
    ref = _net()
    ref.fit(Xtr, ytr, **kw)
    net = _net()
    history = net.fit(da.from_array(Xtr, chunks=160), da.from_array(ytr, chunks=160),
                      scale_learning_rate=True, **kw)
    return ref, net, history, (Xte, yte)


def test_two_workers_accuracy_within_two_points_of_in_memory_fit(two_worker_fit):
    ref, net, history, (Xte, yte) = two_worker_fit
    assert len(history.shards) == 2
    assert len(history.cost) == 15 and history.cost[-1] < history.cost[0]
    assert abs(net.score(Xte, yte) - ref.score(Xte, yte)) <= 0.02


def test_shards_stay_on_their_workers_after_set_up(client, two_worker_fit):
    _, _, history, _ = two_worker_fit
    shard_workers = [s["worker"] for s in history.shards]
    assert len(set(shard_workers)) == 2
    for record in history.rounds:
        assert record["workers"] == record["shard_workers"] == shard_workers
        assert record["attempts"] == 1

    def transferred_keys(dask_worker):
        logs = list(dask_worker.transfer_incoming_log) + list(dask_worker.transfer_outgoing_log)
        return [str(k) for entry in logs for k in entry["keys"]]

    for keys in client.run(transferred_keys).values():
        assert not [k for k in keys if k.startswith("deepnet-shard-")]


def test_workers_run_numba_with_their_thread_count(client, two_worker_fit):
    import numba

    # Numba's setting is per thread: ask the workers' task thread.
    counts = client.gather([client.submit(numba.get_num_threads, workers=[w], pure=False)
                            for w in client.nthreads()])
    assert counts == [1, 1]


def test_predict_on_dask_input_returns_dask_arrays(two_worker_fit):
    _, net, _, (Xte, _) = two_worker_fit
    Xd = da.from_array(Xte, chunks=100)
    labels, proba = net.predict(Xd), net.predict_proba(Xd)
    assert isinstance(labels, da.Array) and isinstance(proba, da.Array)
    assert labels.shape == (Xte.shape[0],) and proba.shape == (Xte.shape[0], 10)
    np.testing.assert_array_equal(labels.compute(), net.predict(Xte))
    np.testing.assert_allclose(proba.compute(), net.predict_proba(Xte), rtol=1e-12, atol=1e-15)


def test_score_and_cost_of_dask_input_equal_the_in_memory_values(two_worker_fit):
    _, net, _, (Xte, yte) = two_worker_fit
    # y cut at other boundaries than X: its blocks are re-cut to X's.
    Xd, yd = da.from_array(Xte, chunks=97), da.from_array(yte, chunks=150)
    assert net.score(Xd, yd) == pytest.approx(net.score(Xte, yte), rel=1e-12)
    assert net.cost(Xd, yd) == pytest.approx(net.cost(Xte, yte), rel=1e-10)
    with pytest.raises(ValueError, match="same number of samples"):
        net.score(Xd, yd[:-1])
    with pytest.raises(ValueError, match="features"):
        net.cost(Xd[:, :5], yd)


@pytest.mark.parametrize("output,n_out", [("identity", 3), ("sigmoid", 2), ("sigmoid", 1)])
def test_score_of_dask_input_for_regression_and_multilabel(cluster_of_two, output, n_out):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((500, 6))
    if output == "identity":
        # A large offset: R² merged from blocks must not lose it to cancellation.
        y = 1e4 + X[:, :n_out] @ rng.standard_normal((n_out, n_out))
    else:
        y = (X[:, :n_out] > 0).astype(int)
        y = y[:, 0] if n_out == 1 else y
    net = DeepNet([6, 8, n_out], "tanh", output, seed=0)
    net.fit(X, y, epochs=30, learning_rate=0.05, verbose=0)
    Xd, yd = da.from_array(X, chunks=130), da.from_array(y, chunks=200)
    assert net.score(Xd, yd) == pytest.approx(net.score(X, y), rel=1e-10, abs=1e-12)
    assert net.cost(Xd, yd) == pytest.approx(net.cost(X, y), rel=1e-10)


def test_score_of_dask_dataframe_input(cluster_of_two, digits):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = digits
    net = _net()
    net.fit(X, y, epochs=3, learning_rate=0.1, batch_size=64, verbose=0)
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)]).assign(label=y)
    ddf = dd.from_pandas(frame, npartitions=4)
    got = net.score(ddf.drop(columns="label"), ddf["label"])
    assert got == pytest.approx(net.score(X, y), rel=1e-12)


# ---------------------------------------------------------------- arguments and errors


def test_bad_arguments_raise_like_fit(cluster_of_two, digits):
    X, y = digits
    Xd, yd = da.from_array(X, chunks=600), da.from_array(y, chunks=600)
    net = _net()
    before = net.training_state.theta.copy()
    with pytest.raises(ValueError, match="sync_every"):
        net.fit(Xd, yd, sync_every=0)
    with pytest.raises(ValueError, match="batch_size"):
        net.fit(Xd, yd, batch_size=10_000)
    with pytest.raises(ValueError, match="features"):
        net.fit(Xd[:, :10], yd)
    with pytest.raises(ValueError, match="class labels"):
        net.fit(Xd, yd + 1, epochs=1, verbose=0)   # label 10 has no output unit
    with pytest.raises(TypeError, match="validation_data must be a tuple"):
        net.fit(Xd, yd, epochs=1, validation_data=Xd)
    with pytest.raises(TypeError, match="scale_learning_rate must be True or False"):
        net.fit(Xd, yd, epochs=1, scale_learning_rate="yes")
    bag = pytest.importorskip("dask.bag").from_sequence(range(4))
    with pytest.raises(TypeError, match="y must be a dask array, DataFrame or Series"):
        net.fit(Xd, bag, epochs=1)
    with pytest.raises(TypeError, match="X must be a dask array, DataFrame or Series"):
        net.predict(bag)
    np.testing.assert_array_equal(net.training_state.theta, before)


def test_divergence_keeps_the_last_averaged_parameters(cluster_of_two, digits):
    X, y = digits
    net = _net()
    with pytest.raises(DivergenceError):
        net.fit(da.from_array(X * 1e150, chunks=600), da.from_array(y, chunks=600), epochs=3,
                learning_rate=1.0, verbose=0)
    assert np.all(np.isfinite(net.training_state.theta))


# ---------------------------------------------------------------- faults


def _worker_pids(client):
    return client.run(os.getpid)


def test_worker_killed_mid_fit_recovers_with_identical_parameters(cluster_of_two, digits):
    client = cluster_of_two
    X, y = digits
    X, y = np.tile(X, (3, 1)), np.tile(y, 3)
    # Half of the chunks on each worker: balanced already, so no chunk moves
    # and both fits below get the same shards.
    half = X.shape[0] // 2
    parts = [client.persist([da.from_array(X[rows], chunks=600), da.from_array(y[rows], chunks=600)],
                            workers=[w], allow_other_workers=True)
             for rows, w in zip((slice(None, half), slice(half, None)), sorted(client.nthreads()))]
    Xd = da.concatenate([parts[0][0], parts[1][0]])
    yd = da.concatenate([parts[0][1], parts[1][1]])
    kw = dict(epochs=8, sync_every=2, learning_rate=0.01, batch_size=32, optimizer="adam",
              verbose=0)
    ref = _net()
    h_ref = ref.fit(Xd, yd, **kw)

    pids = _worker_pids(client)
    net = _net()
    killed = []

    def schedule(epoch, rate):
        if epoch == 2 and not killed:
            # 30 ms into the round at epoch 2: most likely while it computes.
            victim = net.history_.shards[1]["worker"]
            timer = threading.Timer(0.03, os.kill, (pids[victim], signal.SIGKILL))
            killed.append(timer)
            timer.start()
        if epoch == 4 and killed:
            # A round takes ~10 ms: make sure the kill lands before the fit ends.
            killed[0].join()
        return rate

    try:
        history = net.fit(Xd, yd, lr_schedule=schedule, **kw)
    except ddist.DistributedTrainingError:
        # Allowed by the contract; the model must then hold a complete round.
        assert np.all(np.isfinite(net.training_state.theta))
        assert len(net.history_.cost) < 4
        return
    assert killed
    assert max(r["attempts"] for r in history.rounds) >= 2
    assert len(history.cost) == 4
    assert [s["chunks"] for s in history.shards] == [s["chunks"] for s in h_ref.shards]
    np.testing.assert_array_equal(net.training_state.theta, ref.training_state.theta)


def test_round_that_cannot_complete_raises_and_keeps_last_average(cluster_of_two, digits,
                                                                   monkeypatch):
    client = cluster_of_two
    monkeypatch.setattr(ddist, "RECOVERY_TIMEOUT", 20.0)
    X, y = digits
    w0, w1 = sorted(client.nthreads())
    # Scattered data cannot be recomputed once the worker holding it is gone.
    rows = np.array_split(np.arange(X.shape[0]), 4)
    fx = client.scatter([X[r] for r in rows[:2]], workers=[w0]) + \
        client.scatter([X[r] for r in rows[2:]], workers=[w1])
    fy = client.scatter([y[r] for r in rows[:2]], workers=[w0]) + \
        client.scatter([y[r] for r in rows[2:]], workers=[w1])
    Xd = da.concatenate([da.from_delayed(f, (len(r), 64), X.dtype) for f, r in zip(fx, rows)])
    yd = da.concatenate([da.from_delayed(f, (len(r),), y.dtype) for f, r in zip(fy, rows)])
    kw = dict(learning_rate=0.01, batch_size=32, optimizer="adam", verbose=0)
    ref = _net()
    ref.fit(Xd, yd, epochs=3, **kw)

    pids = _worker_pids(client)
    net = _net()

    def schedule(epoch, rate):
        if epoch == 3:
            os.kill(pids[w1], signal.SIGKILL)
        return rate

    with pytest.raises(ddist.DistributedTrainingError, match="round 3") as info:
        net.fit(Xd, yd, epochs=6, lr_schedule=schedule, **kw)
    assert isinstance(info.value, RuntimeError)
    assert info.value.round == 3 and info.value.epochs_done == 3
    assert len(net.history_.cost) == 3
    np.testing.assert_array_equal(net.training_state.theta, ref.training_state.theta)
    np.testing.assert_array_equal(net.training_state.v, ref.training_state.v)
    assert net.training_state.t == ref.training_state.t


# ---------------------------------------------------------------- sequential (dask-ml)


def test_incremental_partial_fit_matches_sequential_partial_fit(cluster_of_two, digits):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    import deepnet_fast
    try:
        Classifier = deepnet_fast.DeepNetClassifier
    except (AttributeError, ImportError) as exc:
        pytest.skip(f"deepnet_fast.DeepNetClassifier is not available yet ({exc})")
    X, y = digits
    params = dict(hidden_layer_sizes=(32,), batch_size=32, learning_rate=0.01, random_state=0)
    inc = wrappers.Incremental(Classifier(**params), shuffle_blocks=False)
    seq = Classifier(**params)
    Xd, yd = da.from_array(X, chunks=450), da.from_array(y, chunks=450)
    classes = np.arange(10)
    for _ in range(3):
        inc.partial_fit(Xd, yd, classes=classes)
        for start in range(0, X.shape[0], 450):
            seq.partial_fit(X[start:start + 450], y[start:start + 450], classes=classes)
    assert inc.estimator_.loss_curve_ == seq.loss_curve_
    for a, b in zip(inc.estimator_.coefs_, seq.coefs_):
        np.testing.assert_array_equal(a, b)
    labels = inc.predict(Xd)
    assert isinstance(labels, da.Array)
    assert np.mean(labels.compute() == y) > 0.9


def test_a_batch_larger_than_the_training_set_is_refused_as_in_memory(cluster_of_two, digits):
    X, y = digits
    Xd, yd = da.from_array(X, chunks=600), da.from_array(y, chunks=600)
    m = X.shape[0] - round(0.25 * X.shape[0])      # the samples left to train on
    for data in ((X, y), (Xd, yd)):
        with pytest.raises(ValueError, match=rf"number of training samples \({m}\); "
                                             rf"got {m + 1}$"):
            _net().fit(*data, batch_size=m + 1, validation_split=0.25, verbose=0)
