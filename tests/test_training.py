"""Whole training runs: compiled against reference, learning, continuing, stopping."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import deepnet_fast as dn
from deepnet_fast import schedules


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def _pair(dims, hidden, output, **kw):
    return [dn.DeepNet(dims, hidden, output, seed=0, backend=b, **kw)
            for b in ("compiled", "reference")]


def _toy(rng, m, dims, output):
    X = rng.standard_normal((m, dims[0]))
    if output == "softmax":
        y = rng.integers(0, dims[-1], m)
    elif output == "sigmoid":
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    else:
        y = X[:, :dims[-1]] @ np.ones((dims[-1], dims[-1])) * 0.5
    return X, y


@pytest.mark.parametrize("hidden,output,n_out", [("relu", "sigmoid", 1), ("tanh", "softmax", 3),
                                                 ("leaky_relu", "identity", 2)])
def test_full_batch_history_matches_reference_after_100_iterations(hidden, output, n_out):
    rng = np.random.default_rng(0)
    dims = [7, 6, 5, n_out]
    X, y = _toy(rng, 40, dims, output)
    comp, ref = _pair(dims, hidden, output)
    h_c = comp.fit(X, y, epochs=100, learning_rate=0.05, verbose=0)
    h_r = ref.fit(X, y, epochs=100, learning_rate=0.05, verbose=0)
    np.testing.assert_allclose(h_c.cost, h_r.cost, rtol=1e-9)
    for k, v in ref.parameters.items():
        np.testing.assert_allclose(comp.parameters[k], v, rtol=1e-9, atol=1e-12)
    assert h_c.cost[-1] < h_c.cost[0]


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_minibatch_optimizers_match_reference(optimizer, dtype, rtol):
    rng = np.random.default_rng(1)
    dims = [6, 8, 4]
    X, y = _toy(rng, 50, dims, "softmax")
    comp, ref = _pair(dims, "relu", "softmax", dtype=dtype)
    kw = dict(epochs=5, learning_rate=0.01, batch_size=16, optimizer=optimizer, verbose=0)
    h_c, h_r = comp.fit(X, y, **kw), ref.fit(X, y, **kw)
    np.testing.assert_allclose(h_c.cost, h_r.cost, rtol=rtol)
    for k, v in ref.parameters.items():
        assert comp.parameters[k].dtype == np.dtype(dtype)
        np.testing.assert_allclose(comp.parameters[k], v, rtol=rtol, atol=rtol * 1e-2)


def test_l2_and_schedule_match_reference():
    rng = np.random.default_rng(2)
    dims = [5, 6, 1]
    X, y = _toy(rng, 30, dims, "sigmoid")
    comp, ref = _pair(dims, "tanh", "sigmoid")
    kw = dict(epochs=20, learning_rate=0.2, l2=0.5, lr_schedule=schedules.InverseTimeDecay(0.1),
              batch_size=8, verbose=0)
    h_c, h_r = comp.fit(X, y, **kw), ref.fit(X, y, **kw)
    np.testing.assert_allclose(h_c.cost, h_r.cost, rtol=1e-9)
    np.testing.assert_allclose(h_c.learning_rate, [0.2 / (1 + 0.1 * e) for e in range(20)])


def test_l2_cost_term_matches_hand_computation():
    net = dn.DeepNet([2, 2, 1], "relu", "identity", init={
        "W1": np.array([[1.0, 2.0], [0.0, -1.0]]), "b1": np.zeros((2, 1)),
        "W2": np.array([[3.0, 0.0]]), "b2": np.zeros((1, 1))})
    X, y = np.zeros((4, 2)), np.zeros(4)
    # Zero input and biases give zero output: the cost is the L2 term alone.
    h = net.fit(X, y, epochs=1, learning_rate=1e-9, l2=0.8, verbose=0)
    assert h.cost[0] == pytest.approx(0.8 / (2 * 4) * (1 + 4 + 1 + 9))


def test_digits_small_network_reaches_95_percent(digits):
    Xtr, Xte, ytr, yte = digits
    net = dn.DeepNet([64, 32, 10], "relu", "softmax", seed=0)
    history = net.fit(Xtr, ytr, epochs=60, learning_rate=0.1, batch_size=32, verbose=0)
    assert len(history) == 60 and history.cost[-1] < history.cost[0]
    assert net.score(Xte, yte) >= 0.95


def test_adam_on_digits_reaches_97_percent(digits):
    Xtr, Xte, ytr, yte = digits
    net = dn.DeepNet([64, 64, 10], "relu", "softmax", seed=0, dtype="float32")
    net.fit(Xtr, ytr, epochs=40, learning_rate=0.002, batch_size=32, optimizer="adam", verbose=0)
    assert net.score(Xte, yte) >= 0.97


def test_float32_training_stays_float32_and_matches_float64(digits):
    Xtr, _, ytr, _ = digits
    n32 = dn.DeepNet([64, 16, 10], "relu", "softmax", seed=1, dtype="float32")
    n64 = dn.DeepNet([64, 16, 10], "relu", "softmax", seed=1, dtype="float64")
    h32 = n32.fit(Xtr, ytr, epochs=5, learning_rate=0.05, batch_size=64, verbose=0)
    h64 = n64.fit(Xtr, ytr, epochs=5, learning_rate=0.05, batch_size=64, verbose=0)
    assert all(p.dtype == np.float32 for p in n32.parameters.values())
    assert n32.predict_proba(Xtr[:5]).dtype == np.float32
    np.testing.assert_allclose(h32.cost, h64.cost, rtol=1e-3)


def test_same_seed_gives_bitwise_identical_parameters(digits):
    Xtr, _, ytr, _ = digits
    runs = []
    for _ in range(2):
        net = dn.DeepNet([64, 16, 10], "relu", "softmax", seed=5)
        net.fit(Xtr, ytr, epochs=3, learning_rate=0.05, batch_size=50, optimizer="adam", verbose=0)
        runs.append(net.parameters)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_warm_start_continues_and_cold_start_restarts():
    rng = np.random.default_rng(3)
    dims = [4, 5, 1]
    X, y = _toy(rng, 40, dims, "sigmoid")
    a = dn.DeepNet(dims, seed=0)
    a.fit(X, y, epochs=10, learning_rate=0.1, verbose=0)
    a.fit(X, y, epochs=10, learning_rate=0.1, verbose=0, warm_start=True)
    b = dn.DeepNet(dims, seed=0)
    b.fit(X, y, epochs=20, learning_rate=0.1, verbose=0)
    for k, v in b.parameters.items():
        np.testing.assert_allclose(a.parameters[k], v, rtol=1e-12)
    c = dn.DeepNet(dims, seed=0)
    c.fit(X, y, epochs=10, learning_rate=0.1, verbose=0)
    c.fit(X, y, epochs=10, learning_rate=0.1, verbose=0)  # restarts from the same init
    d = dn.DeepNet(dims, seed=0)
    d.fit(X, y, epochs=10, learning_rate=0.1, verbose=0)
    for k, v in d.parameters.items():
        np.testing.assert_array_equal(c.parameters[k], v)


def test_partial_fit_equals_one_full_batch_step():
    rng = np.random.default_rng(4)
    dims = [3, 4, 2]
    X, y = _toy(rng, 20, dims, "softmax")
    a, b = dn.DeepNet(dims, output_activation="softmax", seed=0), dn.DeepNet(dims, output_activation="softmax", seed=0)
    costs = [a.partial_fit(X, y, learning_rate=0.1) for _ in range(3)]
    h = b.fit(X, y, epochs=3, learning_rate=0.1, verbose=0)
    np.testing.assert_allclose(costs, h.cost, rtol=1e-12)


def test_early_stopping_restores_the_best_parameters():
    rng = np.random.default_rng(5)
    # Few noisy samples and a big network: the validation cost turns up soon.
    X = rng.standard_normal((30, 10))
    y = rng.integers(0, 2, 30)
    Xv = rng.standard_normal((200, 10))
    yv = rng.integers(0, 2, 200)
    net = dn.DeepNet([10, 64, 64, 1], seed=0)
    h = net.fit(X, y, epochs=2000, learning_rate=0.1, validation_data=(Xv, yv),
                early_stopping=True, patience=5, verbose=0)
    assert h.stopped_epoch is not None and h.stopped_epoch < 1999
    assert h.best_epoch == int(np.argmin(h.val_cost))
    assert h.stopped_epoch == h.best_epoch + 5
    assert net.cost(Xv, yv) == pytest.approx(min(h.val_cost), rel=1e-12)
    assert len(h.metrics["val_accuracy"]) == len(h.cost)


def test_validation_split_holds_out_data():
    rng = np.random.default_rng(6)
    X, y = _toy(rng, 100, [4, 3, 1], "sigmoid")
    h = dn.DeepNet([4, 3, 1], seed=0).fit(X, y, epochs=3, validation_split=0.2, verbose=0)
    assert len(h.val_cost) == 3 and all(np.isfinite(h.val_cost))


def test_divergence_raises_and_keeps_last_finite_parameters():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 3)) * 100
    y = rng.standard_normal(50) * 1e3
    for backend in ("compiled", "reference"):
        net = dn.DeepNet([3, 8, 1], "relu", "identity", seed=0, backend=backend)
        with pytest.raises(dn.DivergenceError, match="diverged in epoch .*smaller learning rate") as err:
            net.fit(X, y, epochs=200, learning_rate=10.0, verbose=0)
        assert err.value.epoch >= 0
        assert all(np.isfinite(p).all() for p in net.parameters.values())
        assert len(net.history_.cost) == err.value.epoch


def test_history_exports(tmp_path):
    rng = np.random.default_rng(8)
    X, y = _toy(rng, 30, [3, 2, 1], "sigmoid")
    h = dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=4, validation_split=0.2, verbose=0)
    d = h.to_dict()
    assert d["epoch"] == [0, 1, 2, 3] and d["cost"] == h.cost and len(d["val_cost"]) == 4
    h.to_csv(tmp_path / "h.csv")
    rows = (tmp_path / "h.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "cost"] and len(rows) == 5
    assert float(rows[1].split(",")[1]) == pytest.approx(h.cost[0])


def test_an_extended_history_keeps_one_value_per_epoch_in_every_column(tmp_path):
    rng = np.random.default_rng(8)
    X, y = _toy(rng, 30, [3, 2, 1], "sigmoid")
    net = dn.DeepNet([3, 2, 1], seed=0)
    h = net.fit(X, y, epochs=3, verbose=0)                          # no validation
    h2 = net.fit(X, y, epochs=2, validation_split=0.2, warm_start=True, verbose=0)
    h.extend(h2)
    h.extend(net.fit(X, y, epochs=1, warm_start=True, verbose=0))
    d = h.to_dict()
    assert {k: len(v) for k, v in d.items()} == dict.fromkeys(d, 6)
    np.testing.assert_array_equal(d["val_cost"], [np.nan] * 3 + h2.val_cost + [np.nan])
    np.testing.assert_array_equal(d["val_accuracy"],
                                  [np.nan] * 3 + h2.metrics["val_accuracy"] + [np.nan])
    h.to_csv(tmp_path / "h.csv")
    assert len((tmp_path / "h.csv").read_text().strip().splitlines()) == 7


def test_plotting_to_a_file_leaves_the_pyplot_session_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(8)
    X, y = _toy(rng, 30, [3, 2, 1], "sigmoid")
    h = dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=4, verbose=0)
    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    fig = h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == h.cost
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_rows_reshaped_in_place_between_epochs_do_not_reach_the_fit(backend):
    rng = np.random.default_rng(3)
    X = rng.random((40, 4))
    y = (X[:, 0] > 0.5).astype(float)
    w = rng.random(40) + 0.5
    straight = dn.DeepNet([4, 3, 1], seed=0, backend=backend)
    straight.fit(X.copy(), y.copy(), epochs=3, batch_size=1, sample_weight=w.copy(), verbose=0)

    class Reshape(dn.Callback):
        def on_epoch_end(self, epoch, logs):
            X.shape, y.shape, w.shape = (80, 2), (4, 10), (2, 20)    # legal NumPy
    net = dn.DeepNet([4, 3, 1], seed=0, backend=backend)
    # The fit reads views of its own: the reshapes do not reach its epochs.
    net.fit(X, y, epochs=3, batch_size=1, sample_weight=w, verbose=0, callbacks=[Reshape()])
    np.testing.assert_array_equal(net.training_state.theta, straight.training_state.theta)
    # 2-D regression targets (given to the fit as they are) and validation data too.
    X.shape, y.shape = (40, 4), (40,)
    Y2, Xv, Yv = np.column_stack([y, 1 - y]), X[:10].copy(), np.zeros((10, 2))

    class ReshapeTargets(dn.Callback):
        def on_epoch_end(self, epoch, logs):
            Y2.shape, Xv.shape, Yv.shape = (2, 40), (20, 2), (2, 10)
    kw = dict(epochs=3, batch_size=4, verbose=0)
    straight = dn.DeepNet([4, 3, 2], output_activation="identity", seed=0, backend=backend)
    h = straight.fit(X, Y2.copy(), validation_data=(Xv.copy(), Yv.copy()), **kw)
    net = dn.DeepNet([4, 3, 2], output_activation="identity", seed=0, backend=backend)
    h2 = net.fit(X, Y2, validation_data=(Xv, Yv), callbacks=[ReshapeTargets()], **kw)
    np.testing.assert_array_equal(net.training_state.theta, straight.training_state.theta)
    assert h2.val_cost == h.val_cost


def test_verbose_prints_cost_lines(capsys):
    rng = np.random.default_rng(9)
    X, y = _toy(rng, 30, [3, 2, 1], "sigmoid")
    dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=20, verbose=1)
    out = capsys.readouterr().out
    assert "Cost after epoch 0:" in out and "Cost after epoch 19:" in out
    dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=20, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name,expected", [
    ("constant", [0.1, 0.1, 0.1]),
    ("inverse_time", [0.1, 0.05, 0.1 / 3]),
    ("exponential", [0.1, 0.1 * 0.96 ** 0.1, 0.1 * 0.96 ** 0.2]),
    ("step", [0.1, 0.1, 0.1]),
])
def test_named_schedules(name, expected):
    sched = schedules.get_schedule(name)
    np.testing.assert_allclose([sched(e, 0.1) for e in range(3)], expected)


@pytest.mark.parametrize("schedule", [schedules.ExponentialDecay(0.01, decay_steps=1),
                                      schedules.StepDecay(0.01, step_size=1),
                                      schedules.InverseTimeDecay(1e306)])
def test_a_decay_slows_to_the_smallest_normal_rate_and_does_not_abort(schedule):
    tiny = float(np.finfo(np.float64).tiny)
    assert schedule(400, 0.1) == tiny
    assert 0 < schedule(3, 0.1) < 0.1
    rng = np.random.default_rng(10)
    X, y = _toy(rng, 20, [3, 2, 1], "sigmoid")
    h = dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=200, lr_schedule=schedule, verbose=0)
    assert h.learning_rate[-1] == tiny


def test_a_decay_with_a_tiny_step_gives_the_smallest_rate_not_an_overflow_error():
    tiny = float(np.finfo(np.float64).tiny)
    assert schedules.InverseTimeDecay(2.0, 1e-320)(5, 0.1) == tiny
    assert schedules.InverseTimeDecay(0.0, 1e-320)(5, 0.1) == 0.1      # no decay at all
    assert schedules.StepDecay(0.5, 1e-320)(5, 0.1) == tiny
    assert schedules.ExponentialDecay(0.5, 1e-320)(5, 0.1) == tiny
    assert schedules.ExponentialDecay(0.5, 1e-320)(0, 0.1) == 0.1


def test_a_schedule_class_instead_of_an_instance_is_named():
    rng = np.random.default_rng(10)
    X, y = _toy(rng, 20, [3, 2, 1], "sigmoid")
    net = dn.DeepNet([3, 2, 1], seed=0)
    with pytest.raises(TypeError, match=r"lr_schedule must be a schedule, not the class "
                                        r"StepDecay: pass an instance such as StepDecay\(\)"):
        net.fit(X, y, epochs=3, lr_schedule=schedules.StepDecay, verbose=0)


def test_callable_schedule_is_used_and_checked():
    rng = np.random.default_rng(10)
    X, y = _toy(rng, 20, [3, 2, 1], "sigmoid")
    h = dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=3, lr_schedule=lambda e, a: a / (e + 1), verbose=0)
    np.testing.assert_allclose(h.learning_rate, [0.0075, 0.00375, 0.0025])
    with pytest.raises(ValueError, match="lr_schedule returned"):
        dn.DeepNet([3, 2, 1], seed=0).fit(X, y, epochs=3, lr_schedule=lambda e, a: -1.0, verbose=0)
