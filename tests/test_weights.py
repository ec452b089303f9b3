"""Sample and class weights, and the ReLU output layer, on both backends,
against independent computations (repeated or removed rows, the weighted
formulas, finite differences)."""

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import compiled as C
from deepnet_fast import reference as R

from .helpers import assert_close

BACKENDS = ["compiled", "reference"]


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    return X, rng.integers(0, 3, n), rng


def _net(backend, dtype="float64", output="softmax", units=3):
    return dn.DeepNet([5, 6, units], "tanh", output, seed=0, dtype=dtype, backend=backend)


def _same(a, b, rtol=1e-12):
    for k, v in a.parameters.items():
        np.testing.assert_allclose(b.parameters[k], v, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_weights_equal_repeated_rows(backend):
    X, y, rng = _data()
    w = rng.integers(0, 4, X.shape[0]).astype(float)
    kw = dict(epochs=5, learning_rate=0.1, verbose=0, l2=0.3)
    weighted = _net(backend)
    h = weighted.fit(X, y, sample_weight=w, **kw)
    repeated = _net(backend)
    h_rep = repeated.fit(np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int)), **kw)
    np.testing.assert_allclose(h.cost, h_rep.cost, rtol=1e-12)
    _same(weighted, repeated)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weights_equal_removed_rows(backend):
    X, y, rng = _data()
    keep = rng.random(X.shape[0]) < 0.6
    kw = dict(epochs=5, learning_rate=0.1, verbose=0, optimizer="adam")
    weighted = _net(backend)
    weighted.fit(X, y, sample_weight=keep.astype(float), **kw)
    removed = _net(backend)
    removed.fit(X[keep], y[keep], **kw)
    _same(weighted, removed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_of_zero_weights_makes_no_update(backend):
    X, y, _ = _data(24)
    w = np.ones(24)
    w[8:16] = 0
    kw = dict(epochs=3, learning_rate=0.1, batch_size=8, shuffle=False, verbose=0)
    weighted = _net(backend)
    h = weighted.fit(X, y, sample_weight=w, **kw)
    skipped = _net(backend)
    h_skip = skipped.fit(np.vstack([X[:8], X[16:]]), np.concatenate([y[:8], y[16:]]), **kw)
    np.testing.assert_allclose(h.cost, h_skip.cost, rtol=1e-12)
    _same(weighted, skipped)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output,units", [("softmax", 3), ("sigmoid", 1), ("identity", 2),
                                          ("relu", 2)])
def test_weighted_training_compiled_matches_reference(dtype, output, units):
    X, y, rng = _data(50)
    if output == "sigmoid":
        y = (y > 0).astype(int)
    elif output in ("identity", "relu"):
        y = np.abs(X[:, :2])
    w = rng.random(X.shape[0]) * 3
    kw = dict(epochs=4, learning_rate=0.05, batch_size=16, optimizer="adam", l2=0.2,
              keep_prob=0.9, verbose=0, sample_weight=w)
    nets = [_net(b, dtype, output, units) for b in BACKENDS]
    hist = [n.fit(X, y, **kw) for n in nets]
    tol = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(hist[0].cost, hist[1].cost, rtol=tol)
    for k, v in nets[1].parameters.items():
        assert_close(nets[0].parameters[k], v, np.dtype(dtype), scale=np.abs(v).max())


@pytest.mark.parametrize("module", [C, R])
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity", "relu"])
def test_weighted_cost_is_the_weighted_mean_of_the_example_losses(module, output):
    rng = np.random.default_rng(1)
    AL = rng.random((3, 7)) * 0.9 + 0.05
    if output == "softmax":
        AL /= AL.sum(axis=0)
    Y = (rng.random((3, 7)) > 0.5).astype(float)
    w = rng.random(7)
    per_example = [module.compute_cost(AL[:, [j]], Y[:, [j]], output) for j in range(7)]
    want = float(np.dot(per_example, w) / w.sum())
    assert module.compute_cost(AL, Y, output, sample_weight=w) == pytest.approx(want, rel=1e-12)
    assert module.compute_cost(AL, Y, output, sample_weight=np.ones(7)) == pytest.approx(
        module.compute_cost(AL, Y, output), rel=1e-12)


@pytest.mark.parametrize("module", [C, R])
@pytest.mark.parametrize("output,units", [("softmax", 3), ("sigmoid", 2), ("identity", 2),
                                          ("relu", 2)])
def test_weighted_backward_matches_finite_differences(module, output, units):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 9))
    Y = np.eye(units)[:, rng.integers(0, units, 9)] if output == "softmax" else \
        (rng.random((units, 9)) > 0.5).astype(float)
    if output == "relu":
        Y = rng.random((units, 9)) * 2
    w = rng.random(9) * 2
    params = R.initialize_parameters([4, 5, units], seed=3)
    acts = ["tanh", output]

    def cost(p):
        AL, _ = R.forward(X, p, acts)
        return R.compute_cost(AL, Y, output, sample_weight=w)

    AL, caches = module.forward(X, params, acts)
    grads = module.backward(AL, Y, caches, acts, sample_weight=w)
    eps = 1e-6
    for key in ("W1", "b2", "W2"):
        numeric = np.zeros_like(params[key])
        for idx in np.ndindex(params[key].shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[key][idx] += eps
            minus[key][idx] -= eps
            numeric[idx] = (cost(plus) - cost(minus)) / (2 * eps)
        np.testing.assert_allclose(grads[f"d{key}"], numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bad,message", [
    (np.ones(3), "one weight per"), (-np.ones(9), "must not be negative"),
    (np.zeros(9), "must not be all zero"), (np.full(9, np.nan), "NaN"),
])
def test_bad_sample_weights_are_refused_alike(bad, message):
    rng = np.random.default_rng(0)
    AL, Y = rng.random((1, 9)), (rng.random((1, 9)) > 0.5).astype(float)
    for module in (C, R):
        with pytest.raises(ValueError, match=message):
            module.compute_cost(AL, Y, sample_weight=bad)
    X, y, _ = _data(9)
    with pytest.raises(ValueError, match=message):
        _net("compiled").fit(X, y, sample_weight=bad, verbose=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_balanced_class_weight_equals_scikit_learns_sample_weights(backend):
    from sklearn.utils.class_weight import compute_sample_weight
    X, y, _ = _data(60)
    y = np.where(y == 2, 1, y)         # unbalanced: classes 0 and 1 of 3 units
    kw = dict(epochs=3, learning_rate=0.1, batch_size=20, verbose=0)
    a = _net(backend)
    a.fit(X, y, class_weight="balanced", **kw)
    b = _net(backend)
    b.fit(X, y, sample_weight=compute_sample_weight("balanced", y), **kw)
    _same(a, b)
    c = _net(backend)
    c.fit(X, y, class_weight={1: 2.5}, sample_weight=np.full(60, 2.0), **kw)
    d = _net(backend)
    d.fit(X, y, sample_weight=np.where(y == 1, 5.0, 2.0), **kw)
    _same(c, d)


def test_class_weight_is_refused_where_it_has_no_meaning():
    X, _, _ = _data()
    with pytest.raises(ValueError, match="classification outputs"):
        dn.DeepNet([5, 3, 1], "relu", "identity").fit(X, X[:, 0], class_weight="balanced",
                                                      verbose=0)
    with pytest.raises(ValueError, match="multi-label"):
        dn.DeepNet([5, 3, 2]).fit(X, (X[:, :2] > 0).astype(int), class_weight="balanced",
                                  verbose=0)
    with pytest.raises(ValueError, match="class indices"):
        _net("compiled").fit(X, np.zeros(len(X), int), class_weight={7: 1.0}, verbose=0)


def test_dask_input_refuses_weights():
    da = pytest.importorskip("dask.array")
    X, y, _ = _data()
    with pytest.raises(ValueError, match="not supported with dask"):
        _net("compiled").fit(da.from_array(X), da.from_array(y), sample_weight=np.ones(40),
                             verbose=0)


def test_estimators_take_sample_and_class_weights():
    from sklearn.utils.class_weight import compute_sample_weight
    X, y, rng = _data(80)
    labels = np.array(["a", "b", "c"])[y]
    kw = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0, batch_size=None)
    balanced = dn.DeepNetClassifier(class_weight="balanced", **kw).fit(X, labels)
    explicit = dn.DeepNetClassifier(**kw).fit(X, labels,
                                              sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_allclose(balanced.loss_curve_, explicit.loss_curve_, rtol=1e-12)
    w = rng.integers(0, 3, 80)
    reg = dn.DeepNetRegressor(**kw).fit(X, X[:, 0], sample_weight=w)
    rep = dn.DeepNetRegressor(**kw).fit(np.repeat(X, w, axis=0), np.repeat(X[:, 0], w))
    np.testing.assert_allclose(reg.loss_curve_, rep.loss_curve_, rtol=1e-12)


# ---------------------------------------------------------------- ReLU output


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relu_output_trains_alike_on_both_backends(dtype):
    X, _, _ = _data(60)
    y = np.abs(X[:, 0]) + 0.5 * np.abs(X[:, 1])       # non-negative targets
    nets = [dn.DeepNet([5, 8, 1], "relu", "relu", seed=1, dtype=dtype, backend=b)
            for b in BACKENDS]
    hist = [n.fit(X, y, epochs=150, learning_rate=0.05, batch_size=20, verbose=0) for n in nets]
    tol = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(hist[0].cost, hist[1].cost, rtol=tol)
    assert hist[0].cost[-1] < hist[0].cost[0]
    assert (nets[0].predict(X) >= 0).all() and nets[0].score(X, y) > 0


def test_relu_output_gradient_check_and_target_range():
    X, _, _ = _data(12)
    y = np.abs(X[:, :2])
    net = dn.DeepNet([5, 4, 2], "tanh", "relu", seed=0)
    assert dn.gradient_check(net, X, y) < 1e-7
    with pytest.raises(ValueError, match=r"must lie in \[0, inf\]"):
        net.fit(X, -y, verbose=0)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_threaded_weighted_epoch_matches_reference(dtype, tol):
    from deepnet_fast import engines
    from deepnet_fast.architecture import Architecture
    from deepnet_fast.config import FitConfig
    from deepnet_fast.state import TrainingState

    rng = np.random.default_rng(5)
    m, dims = 41, (6, 9, 3)
    X = rng.standard_normal((m, 6)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, m)]
    w = (rng.random(m) * 2).astype(dtype)
    w[8:16] = 0                                   # one whole batch of zero weight
    arch = Architecture(dims, ("relu", "softmax"), 0.01, np.dtype(dtype))
    config = FitConfig(optimizer="adam", l2=0.2)
    theta = dn.params.pack(R.initialize_parameters(list(dims), seed=1), list(dims), dtype)
    results = []
    for kind, threads in (("reference", 1), ("compiled", 2), ("compiled", 1)):
        engine = engines.ENGINES[kind](arch, config, 8, m, 0, threads=threads)
        state = TrainingState(theta.copy())
        state.use_optimizer("adam")
        costs, failed = engine.epoch(state, X, Y, rng.permutation(m) * 0 + np.arange(m), 0.01,
                                     w)
        assert failed == -1
        results.append((engine.epoch_cost(costs), state.theta))
    for cost, th in results[1:]:
        np.testing.assert_allclose(cost, results[0][0], rtol=tol)
        np.testing.assert_allclose(th, results[0][1], rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("dtype,scales", [("float64", (1e-200, 3.0, 1e300)),
                                          ("float32", (1e-20, 3.0, 1e33))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_far_from_one_train_as_the_same_weights_near_one(backend, dtype, scales):
    """Without L2, weights enter only ratios: weights far from 1 (but within
    check_weight_range) train bit for bit as the same weights times the power
    of two that brings them near 1, and equal weights as no weights."""
    X, y, rng = _data()
    fit = dict(epochs=2, batch_size=8, learning_rate=0.1, verbose=0)
    plain = _net(backend, dtype)
    history = plain.fit(X, y, **fit)
    spread = rng.uniform(0.5, 1.0, X.shape[0])
    for scale in scales:
        for base in (np.ones(X.shape[0]), spread):
            w = (base * scale).astype(dtype)
            e = int(np.frexp(w.max())[1])
            near_one = np.ldexp(w, -e)
            assert np.array_equal(np.ldexp(near_one, e), w)      # a power of two apart
            net = _net(backend, dtype)
            got = net.fit(X, y, sample_weight=w, **fit)
            ref = _net(backend, dtype)
            assert got.cost == ref.fit(X, y, sample_weight=near_one, **fit).cost, scale
            _same(ref, net, rtol=0)
            if base is not spread:
                np.testing.assert_allclose(got.cost, history.cost,
                                           rtol=1e-12 if dtype == "float64" else 1e-5)


@pytest.mark.parametrize("dtype,weight,message", [
    ("float64", 1e-310, r"sample_weight must hold 0 or weights of at least 2.22507e-308"),
    ("float64", 1e308, r"sample_weight sums to more than float64 losses can be weighted by \(1.75"),
    ("float32", 1e-40, r"sample_weight must hold 0 or weights of at least 1.17549e-38"),
    ("float32", 1e38, r"sample_weight sums to more than float32 losses can be weighted by \(3.32"),
])
@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_beyond_the_float_range_are_refused(backend, dtype, weight, message):
    """Subnormal weights have sums without a finite reciprocal, huge ones
    overflow once multiplied by a loss: both made training diverge on NaN."""
    X, y, _ = _data()
    net = _net(backend, dtype)
    before = net.parameters
    w = np.ones(X.shape[0])
    w[::2] = weight            # beside weights 1: one subnormal weight is enough
    if weight > 1:
        w[1::2] = weight
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=1, verbose=0, sample_weight=w)
    _same(net, _net(backend, dtype), rtol=0)
    assert all(np.array_equal(v, net.parameters[k]) for k, v in before.items())


@pytest.mark.parametrize("module", [C, R])
@pytest.mark.parametrize("scale", [1e-200, 1e300])
def test_step_functions_take_weights_far_from_one(module, scale):
    rng = np.random.default_rng(3)
    AL = rng.uniform(0.05, 0.95, (2, 6))
    Y = (rng.uniform(size=(2, 6)) > 0.5).astype(float)
    w = rng.uniform(0.5, 1.0, 6) * scale
    near_one = np.ldexp(w, -int(np.frexp(w.max())[1]))
    cost = module.compute_cost(AL, Y, "sigmoid", sample_weight=w)
    assert cost == module.compute_cost(AL, Y, "sigmoid", sample_weight=near_one)
    np.testing.assert_array_equal(module.cost_gradient(AL, Y, "sigmoid", sample_weight=w),
                                  module.cost_gradient(AL, Y, "sigmoid", sample_weight=near_one))
    for bad in (1e-310, 1e308):
        with pytest.raises(ValueError, match="sample_weight"):
            module.compute_cost(AL, Y, "sigmoid", sample_weight=np.full(6, bad))
