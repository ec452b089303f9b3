"""Backpropagation against centred finite differences, in float64."""

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import reference as R


def _relative_difference(g, g_num):
    return np.linalg.norm(g - g_num) / (np.linalg.norm(g) + np.linalg.norm(g_num))


def _numeric_gradients(X, Y, params, acts, eps=1e-6):
    num = {}
    for key, P in params.items():
        G = np.empty_like(P)
        for idx in np.ndindex(P.shape):
            old = P[idx]
            P[idx] = old + eps
            plus = R.compute_cost(R.forward(X, params, acts)[0], Y, acts[-1])
            P[idx] = old - eps
            minus = R.compute_cost(R.forward(X, params, acts)[0], Y, acts[-1])
            P[idx] = old
            G[idx] = (plus - minus) / (2 * eps)
        num["d" + key] = G
    return num


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("output,n_out", [("sigmoid", 1), ("sigmoid", 3), ("softmax", 4), ("identity", 2)])
def test_reference_backward_matches_finite_differences(hidden, output, n_out):
    rng = np.random.default_rng(0)
    dims = [4, 5, 3, n_out]
    params = R.initialize_parameters(dims, "xavier", seed=1)
    for l in range(1, 4):
        params[f"b{l}"] += rng.standard_normal(params[f"b{l}"].shape) * 0.1
    acts = [hidden, hidden, output]
    X = rng.standard_normal((4, 6))
    if output == "softmax":
        Y = np.eye(n_out)[:, rng.integers(0, n_out, 6)]
    elif output == "sigmoid":
        Y = (rng.random((n_out, 6)) > 0.5).astype(float)
    else:
        Y = rng.standard_normal((n_out, 6))
    AL, caches = R.forward(X, params, acts)
    grads = R.backward(AL, Y, caches, acts)
    numeric = _numeric_gradients(X, Y, params, acts)
    g = np.concatenate([grads[k].ravel() for k in sorted(numeric)])
    g_num = np.concatenate([numeric[k].ravel() for k in sorted(numeric)])
    assert _relative_difference(g, g_num) < 1e-7


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("hidden,output,n_out", [("relu", "softmax", 3), ("tanh", "sigmoid", 1),
                                                 ("leaky_relu", "identity", 2), ("sigmoid", "sigmoid", 2)])
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_gradient_check_is_small_for_a_correct_network(backend, hidden, output, n_out, l2):
    rng = np.random.default_rng(3)
    net = dn.DeepNet([5, 4, 3, n_out], hidden, output, init="xavier", seed=0, backend=backend,
                     dtype="float32")
    X = rng.standard_normal((8, 5))
    if output == "softmax":
        y = rng.integers(0, n_out, 8)
    elif output == "sigmoid":
        y = (rng.random((8, n_out)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((8, n_out))
    assert dn.gradient_check(net, X, y, l2=l2) < 1e-7


def test_gradient_check_flags_a_broken_derivative(monkeypatch):
    rng = np.random.default_rng(4)
    net = dn.DeepNet([5, 4, 3], "tanh", "softmax", seed=0, backend="reference")
    X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    assert dn.gradient_check(net, X, y) < 1e-7
    # tanh' = 1 - tanh², broken to 1 - tanh: backprop no longer follows the cost.
    monkeypatch.setitem(R.DERIVATIVES, "tanh", lambda dA, Z, s=None: dA * (1 - np.tanh(Z)))
    assert dn.gradient_check(net, X, y) > 1e-3


def test_gradient_check_rejects_non_networks():
    with pytest.raises(TypeError, match="net must be a DeepNet"):
        dn.gradient_check({"W1": 1}, np.zeros((2, 2)), np.zeros(2))
