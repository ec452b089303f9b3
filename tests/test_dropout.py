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
