"""The threaded epoch (each batch split between threads) and the strided BLAS
product it is built on, against the reference and against NumPy."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import engines, threads
from deepnet_fast import params as flat
from deepnet_fast.architecture import Architecture
from deepnet_fast.config import FitConfig
from deepnet_fast.initialization import initialize_parameters
from deepnet_fast.kernels.blas import gemm
from deepnet_fast.state import TrainingState

CONFIGS = {
    # dims, activations, samples, batch: uneven shares, a last batch smaller
    # than the number of shares, one output row (a share with no dW rows);
    # layers split by samples (fewer units than samples) and by rows (wide),
    # dW split by rows and by columns.
    "relu-softmax": ([7, 9, 6, 3], ("relu", "relu", "softmax"), 43, 10),
    "wide-rows": ([6, 24, 17, 3], ("relu", "tanh", "softmax"), 41, 8),
    "tanh-sigmoid": ([5, 4, 1], ("tanh", "sigmoid"), 22, 7),
    "leaky-identity": ([6, 8, 2], ("leaky_relu", "identity"), 17, 17),
    "sigmoid-deep": ([4, 5, 5, 5, 2], ("sigmoid", "tanh", "relu", "softmax"), 31, 8),
    "no-hidden": ([5, 3], ("softmax",), 19, 6),
}


def _problem(name, dtype, seed=0):
    dims, acts, m, batch = CONFIGS[name]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, dims[0])).astype(dtype)
    if acts[-1] == "softmax":
        Y = np.eye(dims[-1], dtype=dtype)[rng.integers(0, dims[-1], m)]
    elif acts[-1] == "sigmoid":
        Y = (X[:, :1] > 0).astype(dtype)
    else:
        Y = X[:, :dims[-1]] * 0.5
    theta = flat.pack(initialize_parameters(dims, "xavier", seed=seed), dims, dtype)
    return dims, acts, X, Y, batch, theta


def _run_epochs(engine, theta, X, Y, epochs, lr, shuffle_seed):
    state = TrainingState(theta.copy())
    state.use_optimizer(engine.config.optimizer)
    rng = np.random.default_rng(shuffle_seed)
    costs = []
    for k in range(epochs):
        order = rng.permutation(X.shape[0]) if engine.batch_size < X.shape[0] else \
            np.empty(0, np.int64)
        c, failed = engine.epoch(state, X, Y, order, lr)
        assert failed == -1
        assert state.t == (k + 1) * engine.n_batches
        costs.append(c.copy())
    return state.theta, np.concatenate(costs)


def _engine(kind, dims, acts, dtype, batch, m, optimizer, l2, keep_prob, threads=1):
    arch = Architecture(tuple(dims), tuple(acts), 0.1, np.dtype(dtype))
    config = FitConfig(optimizer=optimizer, l2=l2, keep_prob=keep_prob)
    return engines.ENGINES[kind](arch, config, batch, m, 5, threads=threads)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("optimizer,l2,keep_prob", [("gd", 0.0, 1.0), ("adam", 0.3, 1.0),
                                                    ("momentum", 0.0, 0.8),
                                                    ("rmsprop", 0.1, 0.7)])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("n_threads", [2, 3])
def test_threaded_epochs_match_reference(name, optimizer, l2, keep_prob, dtype, rtol, n_threads,
                                         blas_library):
    dims, acts, X, Y, batch, theta0 = _problem(name, dtype)
    if acts[-1] == "identity" and keep_prob < 1:
        keep_prob = 1.0
    m = X.shape[0]
    ref = _engine("reference", dims, acts, dtype, batch, m, optimizer, l2, keep_prob)
    thr = _engine("compiled", dims, acts, dtype, batch, m, optimizer, l2, keep_prob, n_threads)
    assert thr.threads == n_threads
    lr = 0.05 if optimizer in ("gd", "momentum") else 0.005   # no chaotic divergence
    theta_r, cost_r = _run_epochs(ref, theta0, X, Y, 3, lr, 1)
    theta_t, cost_t = _run_epochs(thr, theta0, X, Y, 3, lr, 1)
    assert theta_t.dtype == np.dtype(dtype)
    np.testing.assert_allclose(cost_t, cost_r, rtol=rtol)
    np.testing.assert_allclose(theta_t, theta_r, rtol=rtol,
                               atol=rtol * np.abs(theta_r).max() * 1e-2)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_thread_counts_agree_to_rounding_and_repeat_bitwise(dtype, rtol):
    dims, acts, X, Y, batch, theta0 = _problem("relu-softmax", dtype, seed=3)
    m = X.shape[0]
    one = _run_epochs(_engine("compiled", dims, acts, dtype, batch, m, "adam", 0.1, 0.9),
                      theta0, X, Y, 2, 0.01, 2)[0]
    two = _run_epochs(_engine("compiled", dims, acts, dtype, batch, m, "adam", 0.1, 0.9, 2),
                      theta0, X, Y, 2, 0.01, 2)[0]
    again = _run_epochs(_engine("compiled", dims, acts, dtype, batch, m, "adam", 0.1, 0.9, 2),
                        theta0, X, Y, 2, 0.01, 2)[0]
    np.testing.assert_array_equal(two, again)
    np.testing.assert_allclose(two, one, rtol=rtol, atol=rtol * 1e-2)


def test_threaded_epoch_reports_the_diverging_batch_and_skips_its_update():
    dims, acts, X, Y, batch, theta0 = _problem("relu-softmax", np.float64)
    m = X.shape[0]
    eng = _engine("compiled", dims, acts, np.float64, batch, m, "gd", 0.0, 1.0, 2)
    state = TrainingState(theta0.copy())
    state.use_optimizer("gd")
    X = X.copy()
    X[25] = np.inf                         # sample 25 lies in batch 2
    costs, failed = eng.epoch(state, X, Y, np.empty(0, np.int64), 0.05)
    assert failed == 2 and state.t == 2
    assert np.isfinite(state.theta).all()
    # Batches 0 and 1 were applied, exactly as on one thread.
    ser = _engine("compiled", dims, acts, np.float64, batch, m, "gd", 0.0, 1.0, 1)
    one = TrainingState(theta0.copy())
    one.use_optimizer("gd")
    assert ser.epoch(one, X, Y, np.empty(0, np.int64), 0.05)[1] == 2
    np.testing.assert_allclose(state.theta, one.theta, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("sparse", [False, True])
def test_gradient_descent_updating_in_its_products_matches_the_gradient_path(name, n_threads,
                                                                            sparse):
    # Plain gradient descent without L2 writes W - lr dW in its products and
    # makes no gradient; momentum with beta 0 is the same step through the
    # gradient and the update loop.
    import scipy.sparse as sp
    dims, acts, X, Y, batch, theta0 = _problem(name, np.float64, seed=4)
    X[np.abs(X) < 0.7] = 0.0                  # sparse rows with empty ones
    if sparse:
        X = sp.csr_matrix(X)
    m = X.shape[0]
    arch = Architecture(tuple(dims), tuple(acts), 0.1, np.dtype(np.float64))
    keep_prob = 1.0 if acts[-1] == "identity" else 0.8
    fused, plain = (engines.ENGINES["compiled"](arch, config, batch, m, 5, threads=n_threads)
                    for config in (FitConfig(optimizer="gd", keep_prob=keep_prob),
                                   FitConfig(optimizer="momentum", beta=0.0,
                                             keep_prob=keep_prob)))
    # The gradient buffer (private to the engine) stays as it was when the
    # products update the parameters.
    fused._buffers.grad[:] = np.nan
    theta_f, cost_f = _run_epochs(fused, theta0, X, Y, 3, 0.1, 5)
    theta_p, cost_p = _run_epochs(plain, theta0, X, Y, 3, 0.1, 5)
    assert np.isnan(fused._buffers.grad).all()
    assert np.isfinite(plain._buffers.grad).all()
    assert not np.allclose(theta_f, theta0)
    np.testing.assert_allclose(cost_f, cost_p, rtol=1e-12)
    np.testing.assert_allclose(theta_f, theta_p, rtol=1e-12, atol=1e-14)


def test_fit_splits_large_batches_between_threads_and_matches_reference(monkeypatch):
    # Lower the size threshold so that a small network takes the threaded path.
    monkeypatch.setattr(threads, "SINGLE_THREAD_BELOW", 0)
    plan = threads.fit_threads([6, 8, 3], 16, "compiled", available=2)
    assert (plan.kernel_threads, plan.blas_threads) == (2, 1)
    assert threads.fit_threads([6, 8, 3], 16, "reference", available=2).blas_threads == 2
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 6))
    y = rng.integers(0, 3, 50)
    nets = [dn.DeepNet([6, 8, 3], "relu", "softmax", seed=1, backend=b)
            for b in ("compiled", "reference")]
    hist = [n.fit(X, y, epochs=4, learning_rate=0.05, batch_size=16, optimizer="adam",
                  verbose=0) for n in nets]
    np.testing.assert_allclose(hist[0].cost, hist[1].cost, rtol=1e-10)
    for k, v in nets[1].parameters.items():
        np.testing.assert_allclose(nets[0].parameters[k], v, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("m,parts", [(53, 2), (53, 3), (2, 3), (0, 2)])
def test_threaded_prediction_matches_one_thread(dtype, rtol, m, parts, blas_library):
    from deepnet_fast.kernels.training import predict_output
    from deepnet_fast.kernels.training_threaded import predict_output_threaded
    dims, acts, X, _, _, theta = _problem("sigmoid-deep", dtype, seed=2)
    X = np.vstack([X, X])[:m]
    net = Architecture(tuple(dims), acts, 0.1, np.dtype(dtype)).kernel_network
    args = (X, theta, net, 7)    # chunks of 7 rows
    split = predict_output_threaded(*args, parts)
    assert split.shape == (dims[-1], m) and split.dtype == np.dtype(dtype)
    np.testing.assert_allclose(split, predict_output(*args), rtol=rtol, atol=rtol * 1e-3)


def test_large_predictions_split_samples_and_match_reference(monkeypatch, blas_library):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((41, 6))
    y = rng.integers(0, 3, 41)
    net = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3)
    net.fit(X, y, epochs=3, learning_rate=0.1, batch_size=8, verbose=0)
    one = net.predict_proba(X)
    ref = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3, backend="reference")
    ref.fit(X, y, epochs=3, learning_rate=0.1, batch_size=8, verbose=0)
    monkeypatch.setattr(threads, "SINGLE_THREAD_BELOW", 0)     # take the threaded path
    assert not threads.fit_threads([6, 8, 3], 41, "compiled", available=2).single
    split = net.predict_proba(X)
    np.testing.assert_allclose(split, one, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(split, ref.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(net.predict(X), ref.predict(X))


def test_small_networks_stay_on_one_thread():
    plan = threads.fit_threads([64, 32, 10], 32, "compiled", available=2)
    assert plan.single and plan.kernel_threads == 1 and plan.blas_threads == 1
    big = threads.fit_threads([784, 256, 128, 10], 128, "compiled", available=2)
    assert not big.single and big.kernel_threads == 2 and big.blas_threads == 1


def _load(monkeypatch, *samples, cores=2):
    """/proc as seen by free_cores: (machine, own) runnable tasks per sample."""
    seq = iter(samples)
    monkeypatch.setattr(threads, "_running_tasks", lambda: next(seq))
    monkeypatch.setattr(threads, "FREE_CORES_TTL", 0.0)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(cores)),
                        raising=False)


def test_free_cores_counts_other_processes_not_this_ones_threads(monkeypatch):
    _load(monkeypatch, (3, 1), (3, 1), (3, 1))
    assert threads.free_cores() == 1            # two others busy on two cores: still 1
    _load(monkeypatch, (2, 1), (2, 1), (2, 1))
    assert threads.free_cores() == 1
    _load(monkeypatch, (3, 3), (3, 3), (3, 3))  # this process's own spinning threads
    assert threads.free_cores() == 2
    _load(monkeypatch, (2, 1), (1, 1), (2, 1))  # the fewest competitors over the samples
    assert threads.free_cores() == 2
    _load(monkeypatch, (5, 1), (5, 1), (5, 1), cores=8)
    assert threads.free_cores() == 4
    _load(monkeypatch, None)
    assert threads.free_cores() is None
    _load(monkeypatch, (1, 1))                  # none seen: one sample is enough
    assert threads.free_cores() == 2


def test_free_cores_answer_stands_for_a_while(monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "_running_tasks", lambda: calls.append(1) or (3, 1))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads, "_free_cores_seen", [float("-inf"), None])
    first = threads.free_cores()
    assert threads.free_cores() == first and len(calls) == 3     # read once, then reused
    monkeypatch.setattr(threads, "FREE_CORES_TTL", 0.0)
    threads.free_cores()
    assert len(calls) == 6


def test_running_tasks_reads_this_machine():
    tasks = threads._running_tasks()
    if tasks is None:
        pytest.skip("no /proc")
    machine, own = tasks
    assert machine >= own >= 1                  # the calling thread is running


def test_a_busy_machine_trains_a_large_network_on_the_free_cores(monkeypatch):
    big = [784, 256, 128, 10]
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    plan = threads.fit_threads(big, 128, "compiled")
    assert plan.single and plan.kernel_threads == 1
    monkeypatch.setattr(threads, "free_cores", lambda: None)     # no /proc: all threads
    assert threads.fit_threads(big, 128, "compiled").kernel_threads == numba.get_num_threads()
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    previous = dn.get_num_threads()
    try:
        dn.set_num_threads(2)                  # the user's choice is kept, load or not
        assert threads.fit_threads(big, 128, "compiled").kernel_threads == min(
            2, numba.config.NUMBA_NUM_THREADS)
    finally:
        dn.set_num_threads(previous)
    X = np.random.default_rng(0).standard_normal((300, 784))
    net = dn.DeepNet(big, "relu", "softmax", seed=0)
    one = net.predict_proba(X)                 # on the one free core: the one-thread kernel
    monkeypatch.setattr(threads, "free_cores", lambda: 2)
    np.testing.assert_allclose(net.predict_proba(X), one, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ gemm


def _views(rng, dtype):
    big = rng.standard_normal((40, 50)).astype(dtype)
    return [
        (big[:7, :9], big[10:19, 3:8]),                 # row blocks
        (big[:7, :9], big[3:8, 10:19].T),               # B a transposed block
        (big[:9, :7].T, big[10:19, :5]),                # A a transposed block
        (big[5:6, :9], big[:9, 1:2]),                   # a row times a column
        (big[:5, 2:3], big[30:31, :6]),                 # outer product, K = 1
        (np.ascontiguousarray(big[:4, :4]), np.asfortranarray(big[:4, :3])),
    ]


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_gemm_on_strided_views_matches_numpy_and_leaves_the_rest_alone(dtype, rtol,
                                                                      blas_library):
    rng = np.random.default_rng(0)
    for A, B in _views(rng, dtype):
        host = rng.standard_normal((30, 30)).astype(dtype)
        before = host.copy()
        C = host[2:2 + A.shape[0], 5:5 + B.shape[1]]
        expected = 0.5 * (A.astype(np.float64) @ B.astype(np.float64)) + 2.0 * C
        gemm(dtype(0.5), A, B, dtype(2.0), C)
        np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol)
        outside = np.ones(host.shape, bool)
        outside[2:2 + A.shape[0], 5:5 + B.shape[1]] = False
        np.testing.assert_array_equal(host[outside], before[outside])


def test_gemm_rejects_mismatched_shapes_and_unusable_strides(blas_library):
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="shapes do not match"):
        gemm(1.0, A, np.ones((5, 2)), 0.0, np.ones((3, 2)))
    with pytest.raises(ValueError, match="neither contiguous rows nor columns"):
        gemm(1.0, np.ones((6, 8))[::2, ::2], np.ones((4, 2)), 0.0, np.ones((3, 2)))
    with pytest.raises(ValueError, match="neither contiguous rows nor columns"):
        gemm(1.0, A, np.ones((4, 2)), 0.0, np.ones((2, 3)).T)


def test_two_threaded_fits_in_two_python_threads_match_sequential_fits():
    import threading

    rng = np.random.default_rng(6)
    data = [(rng.standard_normal((120, 10)), rng.integers(0, 4, 120)) for _ in range(2)]

    def train(X, y):
        net = dn.DeepNet([10, 16, 4], "relu", "softmax", seed=2)
        net.fit(X, y, epochs=3, learning_rate=0.05, batch_size=30, optimizer="adam", verbose=0)
        return net.parameters

    try:
        dn.set_num_threads(2)                  # every fit takes the threaded kernel
        sequential = [train(*d) for d in data]
        results = [None, None]
        barrier = threading.Barrier(2)

        def work(i):
            barrier.wait()
            results[i] = train(*data[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        dn.set_num_threads(None)
    for seq, par in zip(sequential, results):
        for k in seq:
            np.testing.assert_array_equal(par[k], seq[k])


def test_one_row_prediction_of_a_large_first_layer_runs_on_one_thread(monkeypatch):
    # Splitting one row's work between threads lost where a service waits
    # (see threads.SINGLE_THREAD_BELOW): even mnist-medium's 784x256 first
    # layer takes the one-thread kernel, with both cores free.
    monkeypatch.setattr(threads, "free_cores", lambda: 2)
    monkeypatch.setattr(threads, "_available", lambda: 2)
    net = dn.DeepNet([784, 256, 128, 10], output_activation="softmax", seed=0,
                     dtype=np.float32)
    X = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    threaded = []
    monkeypatch.setattr(threads.fit_threads, "__enter__",
                        lambda self: threaded.append(self) or self)
    got = net.predict_proba(X)
    assert threaded == []
    ref = dn.DeepNet([784, 256, 128, 10], output_activation="softmax", seed=0, dtype=np.float32,
                     backend="reference")
    np.testing.assert_allclose(got, ref.predict_proba(X), rtol=1e-4, atol=1e-6)


_FORK_SCRIPT = """
import os, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
import numba
import deepnet_fast as dn
dn.set_num_threads(2)
rng = np.random.default_rng(0)
X = rng.random((64, 8)); y = (X[:, 0] > .5).astype(int)
net = dn.DeepNet([8, 16, 1], seed=0)
net.fit(X, y, epochs=2, verbose=0)
if numba.threading_layer() != "omp":
    print("layer", numba.threading_layer()); sys.exit(0)
want = net.predict_proba(X)
pid = os.fork()
if pid == 0:
    assert np.array_equal(net.predict_proba(X), want)
    net.fit(X, y, epochs=1, verbose=0)          # on one thread here
    print("child trained", flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child", "signal" if os.WIFSIGNALED(status) else "exit", os.WEXITSTATUS(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_after_a_threaded_fit_trains_instead_of_being_terminated():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: no parallel region to fork from")
    out = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("layer"):
        pytest.skip(f"Numba's threading layer is not OpenMP here ({out.stdout.strip()})")
    assert "Terminating" not in out.stderr
    assert out.stdout.split() == ["child", "trained", "child", "exit", "0"]
