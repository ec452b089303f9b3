"""The training session's guarantees, on every path that trains: finite
parameters always, one fit per network at a time, Ctrl-C at any moment, and
a shuffle stream that continues across warm starts."""

import threading
import warnings

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import session as session_module
from deepnet_fast.callbacks import Callback

BACKENDS = ["compiled", "reference"]


def _data(n=64, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


def _finite(net):
    return all(np.isfinite(p).all() for p in net.parameters.values())


# ---------------------------------------------------------------- finite parameters


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,rate", [("float32", 3e38), ("float64", 1e307)])
def test_an_update_that_overflows_raises_and_keeps_the_last_finite_parameters(backend, dtype,
                                                                              rate):
    # Full batch, one epoch: the gradient is finite (~1e6), the update is not.
    X, _ = _data()
    X, y = X * 1e3, X[:, 0] * 1e3
    net = dn.DeepNet([5, 8, 1], "relu", "identity", seed=0, dtype=dtype, backend=backend)
    before = net.parameters
    with pytest.raises(dn.DivergenceError, match="parameters became NaN or infinite"):
        net.fit(X, y, epochs=1, learning_rate=rate, verbose=0)
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)
    assert np.isfinite(net.predict_proba(X)).all()
    assert net.history_ is None        # nothing trained: as before the fit


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_after_some_epochs_keeps_the_last_finite_epoch(backend):
    X, _ = _data()
    y = X[:, 0]
    net = dn.DeepNet([5, 8, 1], "relu", "identity", seed=0, dtype="float32", backend=backend)
    ref = dn.DeepNet([5, 8, 1], "relu", "identity", seed=0, dtype="float32", backend=backend)
    ref.fit(X, y, epochs=3, learning_rate=0.1, verbose=0)
    net.fit(X, y, epochs=3, learning_rate=0.1, verbose=0)
    with pytest.raises(dn.DivergenceError):
        net.fit(X * 1e3, y * 1e3, epochs=5, learning_rate=3e38, verbose=0, warm_start=True)
    for k, v in ref.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("dtype,rate", [("float32", 1e39), ("float64", 1e309)])
def test_a_learning_rate_beyond_the_dtype_is_refused(dtype, rate):
    X, y = _data()
    net = dn.DeepNet([5, 3, 1], seed=0, dtype=dtype)
    # 1e309 is inf in float64: refused as not finite; 1e39 overflows float32.
    with pytest.raises(ValueError, match="learning_rate"):
        net.fit(X, y, epochs=1, learning_rate=rate, verbose=0)


def test_a_schedule_beyond_the_dtype_is_refused():
    X, y = _data()
    net = dn.DeepNet([5, 3, 1], seed=0, dtype="float32")
    with pytest.raises(ValueError, match="does not fit in the model's dtype float32"):
        net.fit(X, y, epochs=3, learning_rate=0.1, lr_schedule=lambda e, a: a * 1e40 ** e,
                verbose=0)


def test_estimator_divergence_leaves_a_finite_network():
    X, _ = _data()
    reg = dn.DeepNetRegressor((8,), learning_rate=3e38, dtype="float32", optimizer="gd",
                              batch_size=None, max_iter=3, random_state=0)
    with pytest.raises(dn.DivergenceError):
        reg.fit(X * 1e3, X[:, 0] * 1e3)
    assert _finite(reg.net_)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_refused_everywhere(bad, tmp_path):
    net = dn.DeepNet([3, 2, 1], seed=0)
    params = net.parameters
    params["W1"][0, 0] = bad
    with pytest.raises(ValueError, match=r"parameters\['W1'\] must hold finite"):
        net.set_parameters(params)
    with pytest.raises(ValueError, match=r"init\['W1'\] must hold finite"):
        dn.DeepNet([3, 2, 1], init=params)
    assert _finite(net)
    # A model that somehow holds one cannot be written either.
    net.training_state.theta[0] = bad
    with pytest.raises(ValueError, match="W1"):
        net.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_init_dict_of_text_or_complex_is_refused():
    net = dn.DeepNet([2, 1], seed=0)
    for value in (np.array([["0.5", "1"]]), np.array([[1 + 2j, 0]])):
        with pytest.raises(TypeError, match=r"init\['W1'\] must hold real numbers"):
            dn.DeepNet([2, 1], init={"W1": value, "b1": np.zeros((1, 1))})
    with pytest.raises(ValueError, match=r"init\['b1'\] must have shape \(1, 1\)"):
        dn.DeepNet([2, 1], init={"W1": np.ones((1, 2)), "b1": [0.0, 1.0]})
    assert net.parameters["W1"].shape == (1, 2)


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70])
def test_seeds_out_of_range_are_refused_naming_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        dn.DeepNet([2, 1], seed=seed)


@pytest.mark.parametrize("value", [None, 5, 1.5])
def test_hidden_activation_of_the_wrong_kind_names_the_argument(value):
    with pytest.raises(TypeError, match="hidden_activation must be"):
        dn.DeepNet([2, 3, 1], hidden_activation=value)


# ---------------------------------------------------------------- one fit at a time


class _Gate(Callback):
    """Holds the fit after its first epoch until released."""

    def __init__(self):
        self.inside, self.release = threading.Event(), threading.Event()

    def on_epoch_end(self, epoch, logs):
        self.inside.set()
        assert self.release.wait(30)
        return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_fit_of_the_same_network_raises_at_once(backend):
    X, y = _data()
    net = dn.DeepNet([5, 8, 1], seed=0, backend=backend)
    gate = _Gate()
    errors = []

    def first():
        try:
            net.fit(X, y, epochs=3, learning_rate=0.1, verbose=0, callbacks=[gate])
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert gate.inside.wait(60)
        with pytest.raises(RuntimeError, match="being fitted in another thread"):
            net.fit(X, y, epochs=1, verbose=0)
        with pytest.raises(RuntimeError, match="being fitted in another thread"):
            net.partial_fit(X, y)
        # Predicting meanwhile is allowed and sees finite parameters.
        assert np.isfinite(net.predict_proba(X)).all()
    finally:
        gate.release.set()
        thread.join(60)
    assert not errors and len(net.history_.cost) == 3
    # Once the first fit is over, fitting works again.
    assert len(net.fit(X, y, epochs=2, verbose=0)) == 2


def test_networks_stay_picklable_with_their_lock():
    import pickle
    X, y = _data()
    net = dn.DeepNet([5, 4, 1], seed=0)
    net.fit(X, y, epochs=2, verbose=0, batch_size=16, optimizer="adam")
    copy = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(copy.predict_proba(X), net.predict_proba(X))
    assert len(copy.fit(X, y, epochs=1, verbose=0, warm_start=True)) == 1


# ---------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_during_set_up_returns_an_interrupted_history(backend, monkeypatch):
    X, y = _data()
    net = dn.DeepNet([5, 4, 1], seed=0, backend=backend)
    before = net.parameters

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # The thread-pool set-up of the first fit (it escaped as a bare
    # KeyboardInterrupt before), and the engine's allocation.
    for target in ("training_threads", "ENGINES"):
        if target == "ENGINES":
            monkeypatch.setitem(session_module.ENGINES, backend, interrupted)
        else:
            monkeypatch.setattr(session_module.compilation, "training_threads", interrupted)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            history = net.fit(X, y, epochs=5, verbose=0)
        assert history.interrupted and len(history) == 0
        for k, v in before.items():
            np.testing.assert_array_equal(net.parameters[k], v)
        monkeypatch.undo()


def test_ctrl_c_before_the_session_exists_returns_an_interrupted_history(monkeypatch):
    X, y = _data()
    net = dn.DeepNet([5, 4, 1], seed=0)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(session_module.TrainingSession, "local", interrupted)
    with pytest.warns(RuntimeWarning, match="during set-up"):
        history = net.fit(X, y, epochs=5, verbose=0)
    assert history.interrupted and len(history) == 0


class _Interrupt(Callback):
    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, epoch, logs):
        if epoch == self.at:
            raise KeyboardInterrupt
        return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_in_a_callback_keeps_the_completed_epochs(backend):
    X, y = _data()
    kw = dict(learning_rate=0.1, batch_size=16, optimizer="adam", verbose=0)
    ref = dn.DeepNet([5, 4, 1], seed=0, backend=backend)
    ref.fit(X, y, epochs=3, **kw)
    net = dn.DeepNet([5, 4, 1], seed=0, backend=backend)
    with pytest.warns(RuntimeWarning, match="interrupted after 3 complete epochs"):
        history = net.fit(X, y, epochs=10, callbacks=[_Interrupt(2)], **kw)
    assert history.interrupted and len(history) == 3
    for k, v in ref.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)
    # Continuing gives exactly the uninterrupted run.
    net.fit(X, y, epochs=2, warm_start=True, **kw)
    ref.fit(X, y, epochs=2, warm_start=True, **kw)
    for k, v in ref.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


def test_estimator_ctrl_c_keeps_the_completed_epochs(monkeypatch):
    X, y = _data()
    clf = dn.DeepNetClassifier((4,), max_iter=10, random_state=0)
    original = session_module.TrainingSession._step
    calls = {"n": 0}

    def step(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(session_module.TrainingSession, "_step", step)
    with pytest.warns(RuntimeWarning, match="interrupted after 2 complete epochs"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    assert _finite(clf.net_)


# ---------------------------------------------------------------- the shuffle stream


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_warm_started_epochs_continue_the_shuffle_stream(backend, optimizer):
    X, y = _data(n=50)
    kw = dict(learning_rate=0.05, batch_size=8, optimizer=optimizer, keep_prob=0.9,
              verbose=0)
    straight = dn.DeepNet([5, 6, 1], seed=3, backend=backend)
    h = straight.fit(X, y, epochs=10, **kw)
    stepwise = dn.DeepNet([5, 6, 1], seed=3, backend=backend)
    costs = [stepwise.fit(X, y, epochs=1, warm_start=True, **kw).cost[0] for _ in range(10)]
    assert costs == h.cost
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(stepwise.parameters[k], v)
    assert stepwise.training_state.t == straight.training_state.t == 10 * 7


def test_a_cold_fit_starts_the_stream_afresh():
    X, y = _data(n=50)
    net = dn.DeepNet([5, 6, 1], seed=3)
    first = net.fit(X, y, epochs=2, batch_size=8, verbose=0).cost
    assert net.fit(X, y, epochs=2, batch_size=8, verbose=0).cost == first


def test_fit_config_is_validated_once_and_frozen():
    config = dn.FitConfig(epochs=3, optimizer="adam", lr_schedule="step")
    assert callable(config.lr_schedule) and config.rule.moments == ("v", "s")
    with pytest.raises(AttributeError):
        config.epochs = 4
    with pytest.raises(ValueError, match="optimizer must be one of"):
        config.replace(optimizer="sgd")
    with pytest.raises(TypeError, match="early_stopping must be True or False"):
        dn.FitConfig(early_stopping="yes")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dn.FitConfig(batch_size=np.int64(4)).batch_size == 4


# ---------------------------------------------------------------- training metrics


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("output,units", [("sigmoid", 1), ("softmax", 3), ("identity", 2)])
def test_history_records_the_training_score_of_each_epoch(backend, output, units):
    # Full batch: epoch i's score is that of the parameters before its update,
    # i.e. the score of a network trained i epochs.
    rng = np.random.default_rng(11)
    X = rng.standard_normal((60, 5))
    y = {"sigmoid": (X[:, 0] > 0).astype(int), "softmax": rng.integers(0, 3, 60),
         "identity": X[:, :2] * 3}[output]
    name = "r2" if output == "identity" else "accuracy"
    kw = dict(learning_rate=0.1, verbose=0, l2=0.1)
    h = dn.DeepNet([5, 7, units], "tanh", output, seed=0, backend=backend).fit(X, y, epochs=4,
                                                                              **kw)
    assert len(h.metrics[name]) == 4
    for i in range(4):
        net = dn.DeepNet([5, 7, units], "tanh", output, seed=0, backend=backend)
        if i:
            net.fit(X, y, epochs=i, **kw)
        if name == "accuracy":
            assert h.metrics[name][i] == net.score(X, y)
        else:   # pooled over the outputs: 1 - SS_res / SS_tot
            P = net.predict_proba(X)
            want = 1 - np.sum((y - P) ** 2) / np.sum((y - y.mean(axis=0)) ** 2)
            assert h.metrics[name][i] == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_metric_decides_ties_as_numpy_argmax(dtype):
    from deepnet_fast.kernels.activations import SIGMOID, SOFTMAX
    from deepnet_fast.kernels.losses import metric_sum

    rng = np.random.default_rng(13)
    AL = rng.integers(0, 3, (4, 60)).astype(dtype)        # ties in most columns
    labels = rng.integers(0, 4, 60)
    Y = np.eye(4, dtype=dtype)[labels]                    # row per sample, read as Yᵀ
    w = rng.random(60).astype(dtype)
    right = AL.argmax(axis=0) == labels
    assert metric_sum(AL, Y.T, w[:0], SOFTMAX) == right.sum()
    assert metric_sum(AL, Y.T, w, SOFTMAX) == pytest.approx(np.sum(w * right), rel=1e-6)
    P = rng.random((3, 60)).astype(dtype)
    T = (rng.random((60, 3)) > 0.5).astype(dtype)
    right = np.all((P > 0.5) == (T.T > 0.5), axis=0)
    assert metric_sum(P, T.T, w[:0], SIGMOID) == right.sum()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block", [False, True])
def test_fused_softmax_output_equals_its_four_steps(dtype, weighted, block):
    """The training loop's softmax layer (one kernel) gives the loss, the
    metric and dZ of bias + softmax, cost_sum, metric_sum and output_delta."""
    from deepnet_fast.kernels.activations import SOFTMAX, bias_activation
    from deepnet_fast.kernels.losses import (cost_sum, metric_sum, output_delta,
                                             softmax_output)

    rng = np.random.default_rng(14)
    Z = (rng.integers(-3, 4, (10, 37)) * 2.0).astype(dtype)   # ties in many columns
    Z[:, :5] = rng.standard_normal((10, 5)) * 40              # saturated columns
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 37)].T.copy()
    Y[:, -1] = rng.dirichlet(np.ones(10))                      # a soft target
    b = rng.standard_normal((10, 1)).astype(dtype)
    w = rng.random(37).astype(dtype) if weighted else np.empty(0, dtype)
    scale = np.dtype(dtype).type(1 / 37)
    if block:   # a thread's block of samples: a strided view
        Z, Y = Z[:, 3:29], Y[:, 3:29]
        w = w[3:29] if weighted else w
    A = np.array(Z, order="C")       # a copy
    bias_activation(A, b, SOFTMAX, scale, A)
    want_loss, want_metric = cost_sum(A, Y, SOFTMAX, w), metric_sum(A, Y, w, SOFTMAX)
    output_delta(A, Y, scale, A, w, SOFTMAX, scale, SOFTMAX)
    dZ = Z.copy()
    loss, metric = softmax_output(dZ, b, Y, w, scale)
    # The same arithmetic, up to where LLVM contracts a product and a sum into
    # one FMA (dZ = (e/s - y)·scale, the polynomial of fast_log's logs).
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(dZ, A, rtol=8 * eps, atol=8 * eps * scale)
    assert metric == want_metric
    assert loss == pytest.approx(want_loss, rel=1e-6 if dtype == "float32" else 1e-13)
    assert loss > 0 and 0 < metric < Z.shape[1]


def test_training_score_is_weighted_like_the_cost():
    rng = np.random.default_rng(12)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, 40)
    w = rng.integers(0, 3, 40)
    a = dn.DeepNet([5, 6, 3], "relu", "softmax", seed=0).fit(X, y, epochs=3, verbose=0,
                                                             sample_weight=w)
    b = dn.DeepNet([5, 6, 3], "relu", "softmax", seed=0).fit(
        np.repeat(X, w, axis=0), np.repeat(y, w), epochs=3, verbose=0)
    np.testing.assert_allclose(a.metrics["accuracy"], b.metrics["accuracy"], rtol=1e-12)


def test_history_append_epoch_records_what_is_given():
    from deepnet_fast.history import History
    h = History()
    h.append_epoch(np.float32(0.5), 0.1, 0.01, accuracy=0.8, val_accuracy=None)
    h.append_epoch(0.25, 0.05, 0.02, val_cost=0.3, accuracy=0.9, val_accuracy=0.7)
    assert h.cost == [0.5, 0.25] and type(h.cost[0]) is float
    assert h.learning_rate == [0.1, 0.05] and h.time == [0.01, 0.02]
    # A column that starts late has NaN before: one value per epoch everywhere.
    np.testing.assert_array_equal(h.val_cost, [np.nan, 0.3])
    assert list(h.metrics) == ["accuracy", "val_accuracy"]
    np.testing.assert_array_equal(h.metrics["accuracy"], [0.8, 0.9])
    np.testing.assert_array_equal(h.metrics["val_accuracy"], [np.nan, 0.7])
    h.append_epoch(0.2, 0.05, 0.02, accuracy=None)            # missing after they started
    np.testing.assert_array_equal(h.val_cost, [np.nan, 0.3, np.nan])
    np.testing.assert_array_equal(h.metrics["accuracy"], [0.8, 0.9, np.nan])
    np.testing.assert_array_equal(h.metrics["val_accuracy"], [np.nan, 0.7, np.nan])
    h.append_epoch(0.1, 0.05, 0.02)
    d = h.to_dict()
    assert {k: len(v) for k, v in d.items()} == dict.fromkeys(d, 4)
    empty = History()
    empty.append_epoch(0.5, 0.1, 0.01, val_cost=None, accuracy=None)
    assert empty.val_cost == [] and empty.metrics == {}


def test_check_batch_size_takes_none_for_full_batches():
    assert session_module.check_batch_size(None, 20) == 20
    assert session_module.check_batch_size(20, 20) == 20
    with pytest.raises(ValueError, match=r"training samples \(20\); got 21"):
        session_module.check_batch_size(21, 20)
