"""Determinism, threads, concurrency, interrupts and extreme values."""

import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deepnet_fast as dn
from deepnet_fast import engines


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)
    return X, y


def _train(X, y, learning_rate=0.05, optimizer="adam", **kw):
    net = dn.DeepNet([20, 64, 32, 3], "relu", "softmax", seed=11, **kw)
    net.fit(X, y, epochs=3, learning_rate=learning_rate, batch_size=40, optimizer=optimizer,
            verbose=0)
    return net.parameters


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_identical_across_runs_and_thread_counts(data, dtype):
    X, y = data
    first = _train(X, y, dtype=dtype)
    again = _train(X, y, dtype=dtype)
    try:
        dn.set_num_threads(1)
        assert dn.get_num_threads() == 1
        # Plain gradient descent: Adam divides every gradient element by its
        # running RMS, so an element near 0 turns a rounding difference into a
        # full step (3.5e-4 relative in float32 after 24 steps at lr 0.005 on
        # an AMD EPYC family 26, whose OpenBLAS kernels sum in another order).
        one = _train(X, y, 0.05, "gd", dtype=dtype)
        dn.set_num_threads(2)
        two = _train(X, y, 0.05, "gd", dtype=dtype)
    finally:
        dn.set_num_threads(None)
    assert dn.get_num_threads() is None
    for k in first:
        np.testing.assert_array_equal(again[k], first[k])
        # Two threads sum each batch's gradient in two parts; the README
        # promises equality to rounding there, bitwise otherwise.
        np.testing.assert_allclose(one[k], two[k], rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=1e-6 if dtype == "float32" else 1e-13)


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        dn.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        dn.set_num_threads(1.5)


def test_concurrent_predict_from_8_threads_matches_sequential(data):
    X, y = data
    net = dn.DeepNet([20, 64, 32, 3], "tanh", "softmax", seed=1)
    net.fit(X, y, epochs=2, learning_rate=0.05, batch_size=50, verbose=0)
    chunks = [X[i::8] for i in range(8)]
    expected = [net.predict_proba(c) for c in chunks]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(20):
            results[i] = net.predict_proba(chunks[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_two_models_trained_in_two_threads_do_not_interfere(data):
    X, y = data
    alone = [_train(X, y, dtype="float64"), _train(X[::-1], y[::-1], dtype="float64")]
    together = [None, None]

    def work(i, Xi, yi):
        together[i] = _train(Xi, yi, dtype="float64")

    ts = [threading.Thread(target=work, args=(0, X, y)),
          threading.Thread(target=work, args=(1, X[::-1], y[::-1]))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for a, b in zip(alone, together):
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_ctrl_c_keeps_the_last_completed_epoch(data, backend, monkeypatch):
    X, y = data
    ref = dn.DeepNet([20, 8, 3], "relu", "softmax", seed=3, backend=backend)
    ref.fit(X, y, epochs=2, learning_rate=0.1, batch_size=30, verbose=0)

    original = engines.ENGINES[backend].epoch
    calls = {"n": 0}

    def epoch(self, state, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            state.theta[:5] = 123.0  # half-done work that must be rolled back
            raise KeyboardInterrupt
        return original(self, state, *args, **kwargs)

    monkeypatch.setattr(engines.ENGINES[backend], "epoch", epoch)
    net = dn.DeepNet([20, 8, 3], "relu", "softmax", seed=3, backend=backend)
    with pytest.warns(RuntimeWarning, match="interrupted after 2 complete epochs"):
        history = net.fit(X, y, epochs=10, learning_rate=0.1, batch_size=30, verbose=0)
    assert history.interrupted and len(history.cost) == 2
    for k, v in ref.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_a_fit_that_stops_in_its_first_epoch_leaves_the_optimizer_as_it_was(data, backend,
                                                                           tmp_path, monkeypatch):
    """The moments and the optimizer they belong to go back together: a
    momentum-trained state stays momentum's after an Adam fit is interrupted
    in its first epoch (a divergence restores the same way)."""
    X, y = data
    kw = dict(learning_rate=0.05, batch_size=30, verbose=0)
    straight = dn.DeepNet([20, 8, 3], "relu", "softmax", seed=3, backend=backend)
    straight.fit(X, y, epochs=2, optimizer="momentum", **kw)
    straight.fit(X, y, epochs=1, warm_start=True, **kw)
    net = dn.DeepNet([20, 8, 3], "relu", "softmax", seed=3, backend=backend)
    net.fit(X, y, epochs=2, optimizer="momentum", **kw)
    original = engines.ENGINES[backend].epoch

    def interrupted(self, state, *args, **kwargs):
        original(self, state, *args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engines.ENGINES[backend], "epoch", interrupted)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            net.fit(X, y, epochs=3, warm_start=True, optimizer="adam", **kw)
    state = net.training_state
    assert (state.optimizer, state.settings["optimizer"], state.s.size) == ("momentum",
                                                                            "momentum", 0)
    net.save(tmp_path / "m.npz", training_state=True)      # a consistent checkpoint
    net.fit(X, y, epochs=1, warm_start=True, **kw)          # continues momentum's moments
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("change, message", [
    (lambda s: setattr(s, "theta", np.zeros(3)), "theta"),
    (lambda s: setattr(s, "theta", s.theta.astype(np.float32)), "float64"),
    (lambda s: setattr(s, "v", np.zeros(2)), r"training_state\.v.*adam"),
    (lambda s: setattr(s, "t", -1), r"training_state\.t"),
])
def test_a_training_state_changed_by_hand_is_refused_before_a_kernel_reads_it(
        data, backend, change, message):
    X, y = data
    net = dn.DeepNet([20, 8, 3], "relu", "softmax", seed=3, backend=backend)
    net.fit(X, y, epochs=1, optimizer="adam", batch_size=30, verbose=0)
    change(net.training_state)
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=1, warm_start=True, batch_size=30, verbose=0)
    if "theta" in message or "float64" in message:
        with pytest.raises(ValueError, match=message):
            net.predict(X)


def test_the_shape_of_a_network_is_read_only():
    net = dn.DeepNet([4, 3, 2], "relu", "softmax", seed=0)
    for name, value in [("layer_dims", [200, 3, 2]), ("dtype", np.dtype("float32")),
                        ("activations", ("relu", "sigmoid")), ("output_activation", "sigmoid"),
                        ("hidden_activation", "tanh"), ("negative_slope", 0.5),
                        ("architecture", None)]:
        with pytest.raises(AttributeError):
            setattr(net, name, value)
    net.layer_dims[0] = 200                 # a copy: the network keeps its own
    assert net.layer_dims == [4, 3, 2] and net.architecture.layer_dims == (4, 3, 2)
    with pytest.raises(ValueError, match="4 features"):
        net.predict(np.ones((2, 200)))


def test_networks_pickled_before_the_read_only_shape_load():
    import pickle
    net = dn.DeepNet([4, 3, 2], ["tanh"], "softmax", seed=0)
    old = dict(net.__getstate__())
    old["architecture"] = old.pop("_architecture")
    old["hidden_activation"] = old.pop("_hidden_activation")
    old.update(layer_dims=[4, 3, 2], dtype=net.dtype, activations=net.activations,
               output_activation="softmax", negative_slope=0.01)
    back = dn.DeepNet.__new__(dn.DeepNet)
    back.__setstate__(old)
    X = np.random.default_rng(0).standard_normal((5, 4))
    np.testing.assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    assert back.hidden_activation == ("tanh",)
    again = pickle.loads(pickle.dumps(back))
    np.testing.assert_array_equal(again.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("part", ["indices", "indptr", "data"])
def test_sparse_rows_changed_during_a_fit_do_not_reach_the_kernels(backend, part):
    """A fit copies the CSR arrays it checked: a callback (or another thread)
    that rewrites the caller's matrix between epochs changes nothing."""
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    X = sp.random(60, 20, density=0.2, format="csr", random_state=0, dtype=np.float64)
    y = rng.integers(0, 2, 60)
    Xv = X[:10].copy()

    class Tamper(dn.Callback):
        def on_epoch_end(self, epoch, logs):
            for M in (X, Xv):
                if part == "indices":
                    M.indices[:] = 2**30
                elif part == "indptr":
                    M.indptr[1:] = M.indptr[-1]
                else:
                    M.data[:] = np.nan
            return False

    kw = dict(epochs=3, batch_size=8, learning_rate=0.1, verbose=0)
    clean = dn.DeepNet([20, 8, 1], seed=0, backend=backend)
    clean.fit(X.copy(), y, validation_data=(Xv.copy(), y[:10]), **kw)
    net = dn.DeepNet([20, 8, 1], seed=0, backend=backend)
    net.fit(X, y, validation_data=(Xv, y[:10]), callbacks=[Tamper()], **kw)
    for k, v in clean.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_moments_that_share_memory_with_the_parameters_are_refused(backend, data):
    X, y = data
    net = dn.DeepNet([20, 8, 3], "relu", "softmax", seed=3, backend=backend)
    net.fit(X, y, epochs=1, optimizer="momentum", batch_size=30, verbose=0)
    net.training_state.v = net.training_state.theta
    with pytest.raises(ValueError, match="share memory"):
        net.fit(X, y, epochs=1, warm_start=True, batch_size=30, verbose=0)


def test_an_epoch_refuses_operands_that_do_not_fit_its_buffers(data):
    from deepnet_fast.architecture import Architecture
    from deepnet_fast.config import FitConfig
    from deepnet_fast.state import TrainingState
    X, y = data
    arch = Architecture((20, 8, 3), ("relu", "softmax"), 0.01, np.dtype(np.float64))
    engine = engines.ENGINES["compiled"](arch, FitConfig(), 30, 300)
    state = TrainingState(np.zeros(arch.n_parameters))
    state.use_optimizer("gd")
    Y = np.eye(3)[y % 3]
    no_order = np.empty(0, np.int64)
    for args, what in [((np.ones((300, 21)), Y, no_order), "X of shape"),
                       ((np.ones((301, 20)), np.eye(3)[np.zeros(301, int)], no_order), "X of"),
                       ((X, Y[:, :2].copy(), no_order), "Y of shape"),
                       ((X, Y, np.arange(299)), "an order of 299 rows"),
                       ((X, Y, np.arange(300) + 1), "an order of 300 rows")]:
        with pytest.raises(ValueError, match=what):
            engine.epoch(state, *args, 0.1)
    # The same arrays, reshaped in place after an epoch that took them: checked again.
    Xs, Ys = X.copy(), Y.copy()
    engine.epoch(state, Xs, Ys, no_order, 0.1)
    Xs.shape = (600, 10)
    with pytest.raises(ValueError, match="X of shape"):
        engine.epoch(state, Xs, Ys, no_order, 0.1)
    Xs.shape, Ys.shape = (300, 20), (100, 9)
    with pytest.raises(ValueError, match="Y of shape"):
        engine.epoch(state, Xs, Ys, no_order, 0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softmax"])
def test_no_warnings_or_nan_for_huge_inputs(activation, dtype):
    Z = np.array([[-1e4, -1e3, 0.0, 1e3, 1e4]], dtype=dtype).repeat(3, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for module in (dn.compiled, dn.reference):
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                A = module.activation_forward(Z, activation)
            assert np.all(np.isfinite(A))
            out = "identity" if activation == "tanh" else activation
            Y = np.zeros_like(A)
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                assert np.isfinite(module.compute_cost(A, Y, out))


finite_floats = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    n_in=st.integers(1, 6), n_hidden=st.integers(1, 6), m=st.integers(1, 12),
    output=st.sampled_from(["sigmoid", "softmax", "identity"]),
    hidden=st.sampled_from(["sigmoid", "tanh", "relu", "leaky_relu", "identity"]),
    data=st.data(),
)
def test_property_compiled_matches_reference_or_raises(dtype, n_in, n_hidden, m, output, hidden, data):
    n_out = data.draw(st.integers(2 if output == "softmax" else 1, 4))
    X = data.draw(hnp.arrays(dtype, (n_in, m), elements=finite_floats))
    params = dn.reference.initialize_parameters([n_in, n_hidden, n_out], seed=0, dtype=dtype)
    acts = [hidden, output]
    with np.errstate(all="ignore"):
        want, _ = dn.reference.forward(X, params, acts)
    got, _ = dn.compiled.forward(X, params, acts)
    assert got.dtype == np.dtype(dtype) and got.shape == (n_out, m)
    finite = np.isfinite(want)
    # Where the reference is finite the compiled result is too, and close.
    assert np.all(np.isfinite(got[finite]))
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol * (1 + np.abs(want[finite]).max(initial=0)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                 elements=st.floats(allow_nan=True, allow_infinity=True)),
    backend=st.sampled_from(["compiled", "reference"]),
)
def test_property_fit_gives_result_or_documented_error(X, backend):
    net = dn.DeepNet([3, 4, 1], seed=0, backend=backend)
    y = np.zeros(X.shape[0]) if X.ndim else np.zeros(1)
    try:
        history = net.fit(X, y, epochs=2, learning_rate=0.1, verbose=0)
    except (ValueError, TypeError, dn.DivergenceError):
        return
    assert all(np.isfinite(history.cost))
    assert all(np.isfinite(p).all() for p in net.parameters.values())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint64])
def test_all_within_checks_an_index_range(dtype):
    from deepnet_fast.kernels.training import all_within
    order = np.random.default_rng(0).permutation(50).astype(dtype)
    assert all_within(order, 50) and not all_within(order, 49)
    assert all_within(order[:0], 0)
    if dtype is not np.uint64:
        bad = order.copy()
        bad[7] = -1
        assert not all_within(bad, 50)
