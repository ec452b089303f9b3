"""Sparse CSR input (issue 19 item 2): the compiled epochs and predictions over
the nonzeros equal the same data dense and the reference (which densifies one
batch at a time), on one thread and split between threads; what is refused;
memory bounded by the nonzeros; the estimators."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import deepnet_fast as dn
from deepnet_fast import engines, threads
from deepnet_fast import params as flat
from deepnet_fast.architecture import Architecture
from deepnet_fast.config import FitConfig
from deepnet_fast.initialization import initialize_parameters
from deepnet_fast.inputs import check_rows, kernel_rows
from deepnet_fast.state import TrainingState

RTOL = {np.float64: 1e-10, np.float32: 1e-4}

CONFIGS = {
    # dims, activations, samples, batch. "logistic": the output layer reads X
    # itself; "wide-units": more units than inputs and than batch samples (the
    # dense dW is split by rows, the forward by rows); "deep": narrow layers
    # (forward split by samples) and a last batch smaller than the shares.
    "logistic": ([30, 1], ("sigmoid",), 43, 10),
    "relu-softmax": ([30, 9, 3], ("relu", "softmax"), 43, 10),
    "wide-units": ([12, 40, 3], ("tanh", "softmax"), 37, 8),
    "deep": ([25, 6, 5, 2], ("tanh", "relu", "identity"), 31, 8),
}


def awkward_csr(m, n, dtype, seed, cls=sp.csr_matrix):
    """CSR rows with everything a CSR may hold: empty rows (every 7th), an
    explicit stored zero, columns out of order, a column stored twice (the
    two add up, as in ``toarray()``)."""
    rng = np.random.default_rng(seed)
    data, indices, indptr = [], [], [0]
    for i in range(m):
        k = 0 if i % 7 == 0 else int(rng.integers(1, min(n, 6)))
        cols = list(rng.choice(n, k, replace=False))        # unsorted
        vals = list(rng.standard_normal(k))
        if k and i % 5 == 1:
            vals[0] = 0.0                                   # explicit zero
        if k and i % 6 == 2:
            cols.append(cols[0])                            # repeated column
            vals.append(0.5)
        data += vals
        indices += cols
        indptr.append(len(indices))
    X = cls((np.asarray(data, dtype=dtype), np.asarray(indices, dtype=np.int32),
             np.asarray(indptr, dtype=np.int32)), shape=(m, n))
    assert not X.has_canonical_format
    return X


def _targets(X, acts, n_out, seed):
    rng = np.random.default_rng(seed)
    dense = X.toarray()
    m = dense.shape[0]
    if acts[-1] == "softmax":
        return np.eye(n_out, dtype=X.dtype)[rng.integers(0, n_out, m)]
    if acts[-1] == "sigmoid":
        return (dense[:, :n_out] + 0.1 * rng.standard_normal((m, n_out)) > 0).astype(X.dtype)
    return (dense[:, :n_out] * 0.5 + 0.1).astype(X.dtype)


def _problem(name, dtype, seed=0):
    dims, acts, m, batch = CONFIGS[name]
    X = awkward_csr(m, dims[0], dtype, seed)
    Y = _targets(X, acts, dims[-1], seed)
    theta = flat.pack(initialize_parameters(dims, "xavier", seed=seed), dims, dtype)
    return dims, acts, X, Y, batch, theta


def _engine(kind, dims, acts, dtype, batch, m, optimizer, l2, keep_prob, threads=1):
    arch = Architecture(tuple(dims), tuple(acts), 0.1, np.dtype(dtype))
    config = FitConfig(optimizer=optimizer, l2=l2, keep_prob=keep_prob)
    return engines.ENGINES[kind](arch, config, batch, m, 5, threads=threads)


def _run_epochs(engine, theta, X, Y, epochs, lr, w=None):
    state = TrainingState(theta.copy())
    state.use_optimizer(engine.config.optimizer)
    rng = np.random.default_rng(1)
    costs = []
    for k in range(epochs):
        order = (rng.permutation(X.shape[0]) if engine.batch_size < X.shape[0]
                 else np.empty(0, np.int64))
        c, failed = engine.epoch(state, X, Y, order, lr, w)
        assert failed == -1
        costs.append(c.copy())
    return state.theta, np.concatenate(costs)


def _close(actual, desired, dtype):
    rtol = RTOL[dtype]
    np.testing.assert_allclose(actual, desired, rtol=rtol,
                               atol=rtol * max(np.abs(desired).max(), 1) * 1e-2)


# ------------------------------------------------------------ the epoch


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("optimizer,l2,keep_prob,weighted", [
    ("gd", 0.0, 1.0, False), ("adam", 0.3, 1.0, True), ("momentum", 0.0, 0.8, False)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_sparse_epochs_match_dense_and_reference(name, optimizer, l2, keep_prob, weighted, dtype,
                                                 n_threads):
    dims, acts, X, Y, batch, theta0 = _problem(name, dtype)
    if acts[-1] == "identity" and keep_prob < 1:
        keep_prob = 1.0
    m = X.shape[0]
    w = np.random.default_rng(2).uniform(0, 2, m).astype(dtype) if weighted else None
    lr = 0.05 if optimizer in ("gd", "momentum") else 0.005
    runs = {}
    for label, kind, data, threads_ in (("sparse", "compiled", X, n_threads),
                                        ("dense", "compiled", X.toarray(), n_threads),
                                        ("reference", "reference", X, 1)):
        eng = _engine(kind, dims, acts, dtype, batch, m, optimizer, l2, keep_prob, threads_)
        assert eng.threads == threads_
        runs[label] = _run_epochs(eng, theta0, data, Y, 3, lr, w)
    for label in ("sparse", "dense"):
        theta, costs = runs[label]
        assert theta.dtype == np.dtype(dtype)
        _close(costs, runs["reference"][1], dtype)
        _close(theta, runs["reference"][0], dtype)
    _close(runs["sparse"][0], runs["dense"][0], dtype)


@pytest.mark.parametrize("name", ["logistic", "relu-softmax"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_full_batch_reads_the_rows_in_place_and_matches_dense(name, n_threads):
    dims, acts, X, Y, _, theta0 = _problem(name, np.float64, seed=3)
    m = X.shape[0]
    sparse = _engine("compiled", dims, acts, np.float64, m, m, "adam", 0.1, 1.0, n_threads)
    dense = _engine("compiled", dims, acts, np.float64, m, m, "adam", 0.1, 1.0, n_threads)
    theta_s, cost_s = _run_epochs(sparse, theta0, X, Y, 4, 0.01)
    theta_d, cost_d = _run_epochs(dense, theta0, X.toarray(), Y, 4, 0.01)
    _close(cost_s, cost_d, np.float64)
    _close(theta_s, theta_d, np.float64)
    assert sparse._buffers.Xb.size == 0       # nothing gathered, nothing allocated


def test_shuffled_batches_gather_into_a_buffer_of_the_largest_rows():
    dims, acts, X, Y, batch, theta0 = _problem("relu-softmax", np.float64)
    eng = _engine("compiled", dims, acts, np.float64, batch, X.shape[0], "gd", 0.0, 1.0)
    _run_epochs(eng, theta0, X, Y, 1, 0.05)
    lengths = np.sort(np.diff(X.indptr))
    assert eng._buffers.Xb.size == lengths[-batch:].sum() < X.nnz


def test_gradient_of_sparse_rows_matches_dense():
    dims, acts, X, Y, _, theta = _problem("deep", np.float64, seed=4)
    eng = _engine("compiled", dims, acts, np.float64, X.shape[0], X.shape[0], "gd", 0.2, 1.0)
    cost_s, grad_s = eng.gradient(theta, X, Y)
    cost_d, grad_d = eng.gradient(theta, X.toarray(), Y)
    np.testing.assert_allclose(cost_s, cost_d, rtol=1e-12)
    _close(grad_s, grad_d, np.float64)


def test_sparse_epoch_reports_the_diverging_batch():
    dims, acts, X, Y, batch, theta0 = _problem("relu-softmax", np.float64)
    X = X.copy()
    X.data[X.indptr[25]:X.indptr[26]] = np.inf        # sample 25 lies in batch 2
    for n_threads in (1, 2):
        eng = _engine("compiled", dims, acts, np.float64, batch, X.shape[0], "gd", 0.0, 1.0,
                      n_threads)
        state = TrainingState(theta0.copy())
        state.use_optimizer("gd")
        _, failed = eng.epoch(state, X, Y, np.empty(0, np.int64), 0.05)
        assert failed == 2 and state.t == 2 and np.isfinite(state.theta).all()


# ------------------------------------------------------------ prediction


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,parts", [(53, 1), (53, 2), (53, 3), (2, 3)])
def test_chunked_and_threaded_prediction_of_sparse_rows_matches_dense(dtype, m, parts):
    from deepnet_fast.kernels.training import predict_output
    from deepnet_fast.kernels.training_threaded import predict_output_threaded
    dims, acts, _, _, _, theta = _problem("deep", dtype, seed=2)
    X = awkward_csr(m, dims[0], dtype, seed=5)
    net = Architecture(tuple(dims), acts, 0.1, np.dtype(dtype)).kernel_network
    dense = predict_output(X.toarray(), theta, net, 7)
    sparse = predict_output_threaded(kernel_rows(X), theta, net, 7, parts)   # chunks of 7 rows
    assert sparse.shape == (dims[-1], m) and sparse.dtype == np.dtype(dtype)
    _close(sparse, dense, dtype)
    _close(predict_output(kernel_rows(X), theta, net, 7), dense, dtype)


def test_reference_prediction_densifies_chunk_by_chunk(monkeypatch):
    monkeypatch.setattr(engines, "PREDICT_CHUNK", 6)
    dims, acts, X, _, _, theta = _problem("relu-softmax", np.float64)
    arch = Architecture(tuple(dims), acts, 0.1, np.dtype(np.float64))
    np.testing.assert_allclose(engines.predict_output(arch, "reference", theta, X),
                               engines.predict_output(arch, "compiled", theta, X.toarray()),
                               rtol=1e-12)


# ------------------------------------------------------------ DeepNet


def _classification(m=120, n=40, seed=0, cls=sp.csr_matrix, dtype=np.float64):
    X = awkward_csr(m, n, dtype, seed, cls)
    y = (X.toarray()[:, :3].sum(axis=1) > 0).astype(int) + (X.toarray()[:, 3] > 0)
    return X, y


@pytest.mark.parametrize("cls", [sp.csr_matrix, sp.csr_array])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_deepnet_fit_predict_score_on_sparse_rows_equal_dense(cls, dtype, backend):
    X, y = _classification(cls=cls)
    w = np.random.default_rng(3).uniform(0.5, 1.5, X.shape[0])
    kwargs = {"epochs": 5, "learning_rate": 0.01, "batch_size": 32, "optimizer": "adam",
              "keep_prob": 0.9, "l2": 0.01, "verbose": 0, "sample_weight": w}
    sparse = dn.DeepNet([40, 16, 8, 3], "relu", "softmax", seed=0, dtype=dtype, backend=backend)
    dense = dn.DeepNet([40, 16, 8, 3], "relu", "softmax", seed=0, dtype=dtype)
    hs = sparse.fit(X, y, **kwargs)
    hd = dense.fit(X.toarray(), y, **kwargs)
    rtol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(hs.cost, hd.cost, rtol=rtol)
    np.testing.assert_allclose(hs.metrics["accuracy"], hd.metrics["accuracy"], rtol=rtol)
    for k, v in dense.parameters.items():
        _close(sparse.parameters[k], v, np.dtype(dtype).type)
    P = sparse.predict_proba(X)
    assert P.dtype == np.dtype(dtype)
    _close(P, dense.predict_proba(X.toarray()), np.dtype(dtype).type)
    np.testing.assert_array_equal(sparse.predict(X), dense.predict(X.toarray()))
    assert sparse.score(X, y) == dense.score(X.toarray(), y)
    np.testing.assert_allclose(sparse.cost(X, y), dense.cost(X.toarray(), y), rtol=rtol)


@pytest.mark.parametrize("hidden", [[], [7]])
def test_deepnet_validation_split_and_data_take_sparse_rows(hidden):
    X, y = _classification(m=90)
    y = (y > 0).astype(int)
    dims = [40, *hidden, 1]
    runs = []
    for data in (X, X.toarray()):
        net = dn.DeepNet(dims, "tanh", "sigmoid", seed=2)
        h1 = net.fit(data, y, epochs=3, learning_rate=0.1, batch_size=16, validation_split=0.2,
                     verbose=0)
        h2 = net.fit(data[:60], y[:60], epochs=3, learning_rate=0.1, batch_size=None,
                     validation_data=(data[60:], y[60:]), verbose=0)
        runs.append((h1.cost, h1.val_cost, h2.cost, h2.val_cost, net.parameters["W1"]))
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_threaded_fit_and_prediction_of_sparse_rows_match_one_thread(monkeypatch):
    X, y = _classification(m=100)
    one = dn.DeepNet([40, 12, 3], "relu", "softmax", seed=4)
    one.fit(X, y, epochs=3, learning_rate=0.01, batch_size=25, optimizer="adam", verbose=0)
    P1 = one.predict_proba(X)
    monkeypatch.setattr(threads, "SINGLE_THREAD_BELOW", 0)     # take the threaded path
    assert not threads.fit_threads([40, 12, 3], 25, "compiled", available=2).single
    split = dn.DeepNet([40, 12, 3], "relu", "softmax", seed=4)
    split.fit(X, y, epochs=3, learning_rate=0.01, batch_size=25, optimizer="adam", verbose=0)
    for k, v in one.parameters.items():
        np.testing.assert_allclose(split.parameters[k], v, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(split.predict_proba(X), P1, rtol=1e-12, atol=1e-15)


def test_sparse_fit_memory_is_bounded_by_the_nonzeros():
    # 2,000 samples of 200,000 features at 0.005%: 3.2 GB dense, 0.2 MB of
    # nonzeros; W1 (2 units) and its gradient, moments and copies ~16 MB.
    m, n = 2000, 200_000
    rng = np.random.default_rng(0)
    # Built from coordinates: sp.random draws its positions among all m·n (40 s).
    nnz = int(5e-5 * m * n)
    X = sp.csr_matrix((rng.random(nnz), (rng.integers(0, m, nnz), rng.integers(0, n, nnz))),
                      shape=(m, n))
    y = rng.integers(0, 2, m)
    net = dn.DeepNet([n, 2, 1], "relu", "sigmoid", seed=0)
    net.fit(X[:100], y[:100], epochs=1, batch_size=50, optimizer="adam", verbose=0)  # compile
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=2, batch_size=100, optimizer="adam", verbose=0)
        net.predict_proba(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    w1 = n * 2 * 8
    assert peak < 12 * w1 + 50 * X.nnz * 12 < 0.02 * m * n * 8, peak


# ------------------------------------------------------------ what is refused


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok", "bsr", "dia"])
def test_other_sparse_formats_are_refused_with_a_pointer_to_tocsr(fmt):
    X, y = _classification(m=20)
    net = dn.DeepNet([40, 3], output_activation="softmax", seed=0)
    with pytest.raises(TypeError, match=rf"sparse {fmt} matrix.*X.tocsr\(\)"):
        net.fit(X.asformat(fmt), y, epochs=1, verbose=0)
    net.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="tocsr"):
        net.predict(X.asformat(fmt))
    with pytest.raises(TypeError, match=r"validation_data\[0\].tocsr"):
        net.fit(X, y, epochs=1, verbose=0, validation_data=(X.asformat(fmt), y))


def test_sparse_values_and_structure_are_checked():
    X, y = _classification(m=20)
    net = dn.DeepNet([40, 3], output_activation="softmax", seed=0)
    bad = X.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.fit(bad, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="40 features"):
        net.fit(sp.csr_matrix(X.toarray()[:, :30]), y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="at least one sample"):
        net.predict(sp.csr_matrix((0, 40)))
    bad = X.copy()
    bad.indices[2] = 40                   # past the last column: would read out of bounds
    with pytest.raises(ValueError, match=r"column indices must lie in \[0, 40\)"):
        net.predict(bad)
    bad = X.copy()
    bad.indptr[5] = bad.indptr[6] + 1
    with pytest.raises(ValueError, match="never decrease"):
        net.predict(bad)
    bad.indptr = bad.indptr.astype(np.uint64)   # np.diff of these would wrap around
    with pytest.raises(ValueError, match="never decrease"):
        net.predict(bad)
    for indices in (X.indices[:, None], X.indices.astype(np.float64)):
        bad = X.copy()
        bad.indices = indices             # typed by Numba: a 2-D array would not compile
        with pytest.raises(ValueError, match="indices must be a 1-D integer array"):
            net.predict(bad)
        with pytest.raises(ValueError, match="indices must be a 1-D integer array"):
            net.fit(bad, y, epochs=1, verbose=0)
    big = X.astype(np.float64) * 1e300
    with pytest.raises(ValueError, match="do not fit in float32"):
        dn.DeepNet([40, 3], output_activation="softmax", dtype="float32").predict(big)


def test_sparse_rows_are_converted_only_as_far_as_needed():
    X, _ = _classification(m=20)
    assert check_rows(X, 40, np.dtype(np.float64), accept_sparse=True) is X
    f32 = check_rows(X, 40, np.dtype(np.float32), accept_sparse=True)
    assert f32.dtype == np.float32 and np.shares_memory(f32.indices, X.indices)
    counts = sp.csr_matrix((np.ones(X.nnz, dtype=np.int64), X.indices.astype(np.int64),
                            X.indptr.astype(np.int64)), shape=X.shape)
    checked = check_rows(counts, 40, np.dtype(np.float64), accept_sparse=True)
    assert checked.dtype == np.float64 and checked.indices.dtype == np.int32
    with pytest.raises(TypeError, match=r"dense array here.*toarray"):
        check_rows(X, 40, np.dtype(np.float64))


# ------------------------------------------------------------ estimators


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_classifier_on_sparse_rows_equals_dense(fmt):
    X, y = _classification(m=150)
    kwargs = {"hidden_layer_sizes": (10,), "max_iter": 5, "batch_size": 32, "random_state": 0}
    sparse = dn.DeepNetClassifier(**kwargs).fit(X.asformat(fmt), y)
    dense = dn.DeepNetClassifier(**kwargs).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(sparse.predict_proba(X.asformat(fmt)),
                               dense.predict_proba(X.toarray()), rtol=1e-10, atol=1e-14)
    assert sparse.score(X, y) == dense.score(X.toarray(), y)


def test_regressor_on_sparse_rows_with_early_stopping_equals_dense():
    X, _ = _classification(m=150)
    y = X.toarray()[:, :2].sum(axis=1)
    kwargs = {"hidden_layer_sizes": (8,), "max_iter": 6, "early_stopping": True,
              "random_state": 1}
    sparse = dn.DeepNetRegressor(**kwargs).fit(X, y)
    dense = dn.DeepNetRegressor(**kwargs).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse.validation_scores_, dense.validation_scores_, rtol=1e-10)
    np.testing.assert_allclose(sparse.predict(X), dense.predict(X.toarray()), rtol=1e-10,
                               atol=1e-14)
    assert dn.DeepNetRegressor().__sklearn_tags__().input_tags.sparse
