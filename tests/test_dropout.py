"""Inverted dropout: identical masks in both backends, right keep rate, off at predict."""

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import reference as R
from deepnet_fast.kernels import dropout as kdrop


@pytest.mark.parametrize("keep_prob", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("seed,step,layer", [(0, 1, 1), (12345, 77, 3), (2**62, 10**6, 2)])
def test_masks_are_identical_in_both_backends(keep_prob, seed, step, layer):
    shape = (37, 53)
    ref = R.dropout_mask(shape, keep_prob, seed, step, layer)
    comp = kdrop.keep_mask(*shape, seed, step, layer, keep_prob)
    np.testing.assert_array_equal(comp, ref)


@pytest.mark.parametrize("keep_prob", [0.2, 0.5, 0.9])
def test_keep_fraction_matches_keep_prob(keep_prob):
    mask = R.dropout_mask((400, 500), keep_prob, seed=3, step=1, layer=1)
    # 200,000 Bernoulli draws: 5 standard deviations is under 0.006.
    assert abs(mask.mean() - keep_prob) < 5 * np.sqrt(keep_prob * (1 - keep_prob) / mask.size)


def test_masks_differ_across_steps_layers_and_seeds():
    base = R.dropout_mask((50, 50), 0.5, 1, 1, 1)
    for other in (R.dropout_mask((50, 50), 0.5, 1, 2, 1), R.dropout_mask((50, 50), 0.5, 1, 1, 2),
                  R.dropout_mask((50, 50), 0.5, 2, 1, 1)):
        assert 0.4 < np.mean(base != other) < 0.6


def test_forward_with_dropout_scales_kept_units():
    rng = np.random.default_rng(0)
    params = R.initialize_parameters([4, 30, 2], seed=0)
    X = rng.standard_normal((4, 9))
    AL, caches, masks = R.forward_with_dropout(X, params, ["relu", "softmax"], 0.7, 5, 1)
    A1_plain = R.activation_forward(caches[0].Z, "relu")
    A1_dropped = caches[1].A_prev
    np.testing.assert_allclose(A1_dropped, A1_plain * masks[0] / 0.7)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 1e-4)])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
def test_dropout_training_matches_reference(hidden, dtype, rtol):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 6))
    y = rng.integers(0, 3, 60)
    nets = [dn.DeepNet([6, 12, 8, 3], hidden, "softmax", seed=4, dtype=dtype, backend=b)
            for b in ("compiled", "reference")]
    hs = [n.fit(X, y, epochs=4, learning_rate=0.05, batch_size=16, keep_prob=0.6,
                optimizer="momentum", verbose=0) for n in nets]
    np.testing.assert_allclose(hs[0].cost, hs[1].cost, rtol=rtol)
    for k, v in nets[1].parameters.items():
        np.testing.assert_allclose(nets[0].parameters[k], v, rtol=rtol, atol=rtol * 1e-2)


def test_dropout_changes_training_but_not_prediction():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 2, 40)
    a = dn.DeepNet([5, 16, 1], seed=0)
    b = dn.DeepNet([5, 16, 1], seed=0)
    ha = a.fit(X, y, epochs=3, learning_rate=0.1, verbose=0)
    hb = b.fit(X, y, epochs=3, learning_rate=0.1, keep_prob=0.5, verbose=0)
    assert ha.cost[0] != hb.cost[0]
    # Prediction is deterministic: dropout is off outside training.
    np.testing.assert_array_equal(b.predict_proba(X), b.predict_proba(X))
    np.testing.assert_allclose(b.predict_proba(X)[:, 0],
                               R.forward(X.T, b.parameters, b.activations)[0][0], rtol=1e-12)


# ---------------------------------------------------------------- the step functions

from deepnet_fast import compiled as C  # noqa: E402


@pytest.mark.parametrize("keep_prob", [0.3, 1.0])
@pytest.mark.parametrize("seed,step,layer", [(0, 1, 1), (2**62, 10**6, 2)])
def test_compiled_dropout_mask_is_the_reference_mask(keep_prob, seed, step, layer):
    np.testing.assert_array_equal(C.dropout_mask((23, 41), keep_prob, seed, step, layer),
                                  R.dropout_mask((23, 41), keep_prob, seed, step, layer))


def _dropout_case(dtype, output="softmax", m=11, seed=0):
    rng = np.random.default_rng(seed)
    dims = [5, 9, 7, 3 if output == "softmax" else 1]
    params = R.initialize_parameters(dims, seed=seed, dtype=dtype)
    X = rng.standard_normal((dims[0], m)).astype(dtype)
    if output == "softmax":
        Y = np.eye(3, dtype=dtype)[:, rng.integers(0, 3, m)]
    else:
        Y = rng.integers(0, 2, (1, m)).astype(dtype)
    return X, Y, params, ["tanh", "leaky_relu", output]


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_compiled_dropout_steps_match_the_reference(dtype, rtol, output):
    X, Y, params, acts = _dropout_case(dtype, output)
    w = np.linspace(0.5, 2.0, X.shape[1]).astype(dtype)
    outs = {}
    for name, backend in (("ref", R), ("comp", C)):
        AL, caches, masks = backend.forward_with_dropout(X, params, acts, 0.6, 7, 3,
                                                         negative_slope=0.05)
        grads = backend.backward_with_dropout(AL, Y, caches, acts, masks, 0.6,
                                              negative_slope=0.05, sample_weight=w)
        outs[name] = AL, caches, masks, grads
    (ALr, cr, mr, gr), (ALc, cc, mc, gc) = outs["ref"], outs["comp"]
    assert ALc.dtype == np.dtype(dtype) and gc["dW1"].dtype == np.dtype(dtype)
    np.testing.assert_allclose(ALc, ALr, rtol=rtol)
    for a, b in zip(mc, mr):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(cc, cr):
        np.testing.assert_allclose(a.A_prev, b.A_prev, rtol=rtol, atol=rtol * 1e-3)
    assert sorted(gc) == sorted(gr)
    for k in gr:
        np.testing.assert_allclose(gc[k], gr[k], rtol=rtol, atol=rtol * 1e-3, err_msg=k)


@pytest.mark.parametrize("backend", [R, C])
def test_dropout_gradients_match_finite_differences(backend):
    """With the masks fixed (same seed and step), the cost is a smooth function
    of the parameters away from relu kinks: backward_with_dropout is its
    gradient."""
    X, Y, params, acts = _dropout_case("float64")
    acts = ["tanh", "sigmoid", "softmax"]

    def cost(p):
        AL, _, _ = backend.forward_with_dropout(X, p, acts, 0.7, 3, 2)
        return backend.compute_cost(AL, Y, "softmax")

    AL, caches, masks = backend.forward_with_dropout(X, params, acts, 0.7, 3, 2)
    grads = backend.backward_with_dropout(AL, Y, caches, acts, masks, 0.7)
    eps = 1e-6
    for key in ("W1", "b2", "W3"):
        P = params[key]
        numeric = np.empty_like(P)
        for idx in np.ndindex(P.shape):
            plus = {**params, key: P.copy()}
            minus = {**params, key: P.copy()}
            plus[key][idx] += eps
            minus[key][idx] -= eps
            numeric[idx] = (cost(plus) - cost(minus)) / (2 * eps)
        np.testing.assert_allclose(grads[f"d{key}"], numeric, rtol=1e-6, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("backend", [R, C])
@pytest.mark.parametrize("args, error, fragment", [
    (dict(keep_prob=0.0), ValueError, "keep_prob"),
    (dict(keep_prob=1.5), ValueError, "keep_prob"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=None), TypeError, "seed"),
    (dict(step=2**63), ValueError, "step"),
    (dict(step=1.5), TypeError, "step"),
])
def test_dropout_forward_arguments_are_checked(backend, args, error, fragment):
    X, _, params, acts = _dropout_case("float64")
    kw = {**dict(keep_prob=0.5, seed=1, step=1), **args}
    with pytest.raises(error, match=fragment):
        backend.forward_with_dropout(X, params, acts, kw["keep_prob"], kw["seed"], kw["step"])


@pytest.mark.parametrize("backend", [R, C])
@pytest.mark.parametrize("shape, layer, error, fragment", [
    ((3,), 1, TypeError, "shape"), ((3, -1), 1, ValueError, r"shape\[1\]"),
    ((3, 4), -2, ValueError, "layer"), ((3, 4), 2**63, ValueError, "layer")])
def test_dropout_mask_arguments_are_checked(backend, shape, layer, error, fragment):
    with pytest.raises(error, match=fragment):
        backend.dropout_mask(shape, 0.5, 1, 1, layer)


@pytest.mark.parametrize("backend", [R, C])
def test_dropout_backward_checks_the_masks(backend):
    X, Y, params, acts = _dropout_case("float64")
    AL, caches, masks = backend.forward_with_dropout(X, params, acts, 0.5, 1, 1)
    with pytest.raises(TypeError, match="masks"):
        backend.backward_with_dropout(AL, Y, caches, acts, masks[:1], 0.5)
    with pytest.raises(ValueError, match=r"masks\[1\]"):
        backend.backward_with_dropout(AL, Y, caches, acts, [masks[0], masks[1][:, :-1]], 0.5)
    with pytest.raises(ValueError, match="keep_prob"):
        backend.backward_with_dropout(AL, Y, caches, acts, masks, 0.0)


@pytest.mark.parametrize("dtype,keep_prob", [(np.float32, 1e-39), (np.float64, 1e-320)])
def test_a_keep_prob_whose_inverse_overflows_drops_units_to_zero_as_the_reference(dtype,
                                                                                   keep_prob):
    rng = np.random.default_rng(0)
    X = rng.random((4, 5)).astype(dtype)
    P = {"W1": rng.standard_normal((3, 4)).astype(dtype), "b1": np.zeros((3, 1), dtype),
         "W2": rng.standard_normal((1, 3)).astype(dtype), "b2": np.zeros((1, 1), dtype)}
    with np.errstate(over="ignore", invalid="ignore"):
        want, _, want_masks = R.forward_with_dropout(X, P, ["relu", "sigmoid"], keep_prob, 1, 1)
    got, _, masks = C.forward_with_dropout(X, P, ["relu", "sigmoid"], keep_prob, 1, 1)
    np.testing.assert_array_equal(masks[0], want_masks[0])
    assert not masks[0].any()               # every unit dropped
    np.testing.assert_array_equal(got, want)
    assert not np.isnan(got).any()
