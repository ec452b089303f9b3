"""Every compiled step function against the NumPy reference on the same inputs."""

import numpy as np
import pytest

from deepnet_fast import compiled as C
from deepnet_fast import reference as R

from .helpers import ACTIVATIONS, DTYPES, assert_close

SHAPES = [(5, 7), (1, 9), (6, 1), (1, 1), (33, 65)]  # (units, m): one unit, m = 1, odd sizes


def _noncontiguous(a):
    """The same values in a strided, non-contiguous array."""
    big = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    big[:, ::2] = a
    view = big[:, ::2]
    assert not view.flags.c_contiguous or a.shape[1] == 1
    return view


def test_both_backends_export_the_same_step_functions_with_the_same_signatures():
    import inspect
    assert C.__all__ == R.__all__
    for name in R.__all__:
        assert inspect.signature(getattr(C, name)) == inspect.signature(getattr(R, name)), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_forward_matches_reference(activation, shape, dtype, rng):
    Z = (rng.standard_normal(shape) * 4).astype(dtype)
    got = C.activation_forward(Z, activation)
    assert_close(got, R.activation_forward(Z, activation), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_backward_matches_reference(activation, shape, dtype, rng):
    Z = (rng.standard_normal(shape) * 3).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    got = C.activation_backward(dA, Z, activation)
    want = R.activation_backward(dA, Z, activation)
    assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softmax"])
def test_activation_extremes_are_finite_and_match(activation, dtype):
    Z = np.array([[-1e4, -800.0, -100.0, -30.0, 0.0, 30.0, 100.0, 800.0, 1e4]], dtype=dtype)
    Z = np.vstack([Z, Z[:, ::-1]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        want = R.activation_forward(Z, activation)
    got = C.activation_forward(Z, activation)
    assert np.all(np.isfinite(got))
    assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_derivative_of_saturated_units_matches_reference_and_sech2(dtype):
    """Where tanh nears ±1, 1 - tanh² cancels: a few ulp between two tanh
    implementations gave 1e-3 relative in float32 at |z| ~ 5. Both backends
    take the derivative from Z, each within a few ulp of sech²."""
    Z = np.linspace(-40, 40, 8001).astype(dtype).reshape(1, -1)
    dA = np.ones_like(Z)
    got = C.activation_backward(dA, Z, "tanh")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        want = R.activation_backward(dA, Z, "tanh")
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    exact = 1 / np.cosh(Z.astype(np.float64)) ** 2 if dtype == np.float32 else None
    if exact is not None:      # float64 is exact enough to judge float32 by
        tiny = np.finfo(dtype).tiny
        for d in (got, want):
            normal = exact > tiny
            np.testing.assert_allclose(d[normal], exact[normal], rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("module", [C, R], ids=["compiled", "reference"])
def test_l2_cost_of_huge_float32_weights_is_summed_in_float64(module):
    P = R.initialize_parameters([3, 4, 2], seed=0)
    P32 = {k: (v * 1e20).astype(np.float32) for k, v in P.items()}
    want = 0.1 / 10 * sum(float(np.sum(P32[k].astype(np.float64) ** 2)) for k in ("W1", "W2"))
    assert np.isfinite(want) and want > float(np.finfo(np.float32).max) / 1e3
    np.testing.assert_allclose(module.l2_cost(P32, 0.1, 5), want, rtol=1e-12)


@pytest.mark.parametrize("module", [C, R], ids=["compiled", "reference"])
def test_l2_gradient_is_the_derivative_of_l2_cost(module, rng):
    """dW + (λ/m) W, by central differences of l2_cost in float64; the other
    entries pass through, the inputs are not modified."""
    P = module.initialize_parameters([3, 4, 2], seed=1)
    G = {f"d{k}": rng.standard_normal(v.shape) for k, v in P.items()}
    G["dA0"] = rng.standard_normal((3, 5))
    before = {k: v.copy() for k, v in G.items()}
    got = module.l2_gradient(G, P, 0.7, 5)
    eps = 1e-6
    for l in (1, 2):
        W = P[f"W{l}"]
        numeric = np.empty_like(W)
        for idx in np.ndindex(W.shape):
            shifted = [dict(P, **{f"W{l}": W.copy()}) for _ in range(2)]
            shifted[0][f"W{l}"][idx] += eps
            shifted[1][f"W{l}"][idx] -= eps
            numeric[idx] = (module.l2_cost(shifted[0], 0.7, 5)
                            - module.l2_cost(shifted[1], 0.7, 5)) / (2 * eps)
        np.testing.assert_allclose(got[f"dW{l}"] - G[f"dW{l}"], numeric, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(got[f"db{l}"], G[f"db{l}"])
    np.testing.assert_array_equal(got["dA0"], G["dA0"])
    for k, v in before.items():
        np.testing.assert_array_equal(G[k], v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_gradient_matches_reference_and_keeps_the_parameters_dtype(dtype, rng):
    P = {k: v.astype(dtype) for k, v in R.initialize_parameters([4, 3, 1], seed=2).items()}
    G = {f"d{k}": rng.standard_normal(v.shape) for k, v in P.items()}    # float64 gradients
    got, want = C.l2_gradient(G, P, 0.3, 7), R.l2_gradient(G, P, 0.3, 7)
    for k in ("dW1", "dW2", "db1", "db2"):
        assert got[k].dtype == want[k].dtype == dtype
        assert_close(got[k], want[k], dtype)
    assert_close(got["dW1"], G["dW1"].astype(dtype) + dtype(0.3 / 7) * P["W1"], dtype)


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.5])
def test_leaky_relu_slope_is_respected(slope, rng):
    Z = rng.standard_normal((4, 6))
    dA = rng.standard_normal((4, 6))
    want = np.where(Z > 0, Z, slope * Z)
    assert_close(C.activation_forward(Z, "leaky_relu", negative_slope=slope), want, np.float64)
    assert_close(R.activation_forward(Z, "leaky_relu", negative_slope=slope), want, np.float64)
    assert_close(C.activation_backward(dA, Z, "leaky_relu", negative_slope=slope),
                 R.activation_backward(dA, Z, "leaky_relu", negative_slope=slope), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,m", [(4, 3, 5), (1, 7, 1), (6, 1, 9), (20, 300, 17)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_linear_forward_matches_reference(n, k, m, contiguous, dtype, rng):
    A = rng.standard_normal((k, m)).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal((n, 1)).astype(dtype)
    if not contiguous:
        A = _noncontiguous(A)
        W = np.asfortranarray(W)
    assert_close(C.linear_forward(A, W, b), R.linear_forward(A, W, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,m", [(4, 3, 5), (1, 7, 1), (6, 1, 9), (20, 300, 17)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_linear_backward_matches_reference(n, k, m, contiguous, dtype, rng):
    dZ = rng.standard_normal((n, m)).astype(dtype)
    A = rng.standard_normal((k, m)).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    if not contiguous:
        dZ, A = _noncontiguous(dZ), _noncontiguous(A)
    for got, want in zip(C.linear_backward(dZ, A, W), R.linear_backward(dZ, A, W)):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_activation_forward_and_backward_match_reference(activation, dtype, rng):
    A = rng.standard_normal((8, 11)).astype(dtype)
    W = rng.standard_normal((5, 8)).astype(dtype)
    b = rng.standard_normal((5, 1)).astype(dtype)
    A_c, cache_c = C.linear_activation_forward(A, W, b, activation)
    A_r, cache_r = R.linear_activation_forward(A, W, b, activation)
    assert_close(A_c, A_r, dtype)
    assert_close(cache_c.Z, cache_r.Z, dtype)
    for field in ("A_prev", "W", "b"):
        np.testing.assert_array_equal(getattr(cache_c, field), getattr(cache_r, field))
    dA = rng.standard_normal(A_r.shape).astype(dtype)
    for got, want in zip(C.linear_activation_backward(dA, cache_c, activation),
                         R.linear_activation_backward(dA, cache_r, activation)):
        assert_close(got, want, dtype)


def _problem(rng, dims, output, m, dtype):
    X = rng.standard_normal((dims[0], m)).astype(dtype)
    if output == "softmax":
        Y = np.eye(dims[-1], dtype=dtype)[:, rng.integers(0, dims[-1], m)]
    elif output == "sigmoid":
        Y = (rng.random((dims[-1], m)) > 0.5).astype(dtype)
    else:
        Y = rng.standard_normal((dims[-1], m)).astype(dtype)
    return X, Y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("output,n_out", [("sigmoid", 1), ("softmax", 4), ("identity", 2)])
@pytest.mark.parametrize("m", [1, 13])
def test_network_forward_cost_backward_match_reference(hidden, output, n_out, m, dtype, rng):
    dims = [6, 5, 3, n_out]
    params = R.initialize_parameters(dims, "xavier", seed=3, dtype=dtype)
    acts = [hidden, hidden, output]
    X, Y = _problem(rng, dims, output, m, dtype)
    AL_c, caches_c = C.forward(X, params, acts)
    AL_r, caches_r = R.forward(X, params, acts)
    assert_close(AL_c, AL_r, dtype)
    for cc, cr in zip(caches_c, caches_r):
        assert_close(cc.Z, cr.Z, dtype)
    cost_c, cost_r = C.compute_cost(AL_c, Y, output), R.compute_cost(AL_r, Y, output)
    assert isinstance(cost_c, float)
    np.testing.assert_allclose(cost_c, cost_r, rtol=10 * (1e-10 if dtype == np.float64 else 1e-4))
    g_c = C.backward(AL_c, Y, caches_c, acts)
    g_r = R.backward(AL_r, Y, caches_r, acts)
    assert set(g_c) == set(g_r) == {f"d{p}{l}" for l in range(1, 4) for p in "Wb"} | {"dA0", "dA1", "dA2"}
    for key in g_r:
        # dZ[L] = AL - Y in the compiled path against the reference's dA[L]·g'(Z[L]):
        # equal up to rounding, so compare with the scale of each gradient.
        assert_close(g_c[key], g_r[key], dtype, scale=np.max(np.abs(g_r[key])) * 100)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
def test_compute_cost_is_finite_for_saturated_outputs(output, dtype):
    AL = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]], dtype=dtype)
    Y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        want = R.compute_cost(AL, Y, output)
    got = C.compute_cost(AL, Y, output)
    assert np.isfinite(got) and np.isfinite(want)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_compute_cost_of_a_non_finite_output_is_nan_where_the_target_is_zero(output, bad, dtype):
    # The kernels skip the log of an entry whose target is 0, but such an
    # entry must still make the cost NaN when its output is (divergence).
    AL = np.array([[0.2, 0.7], [0.8, 0.3]], dtype=dtype)
    Y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    assert np.isfinite(C.compute_cost(AL, Y, output))
    AL[0, 0] = bad                      # Y[0, 0] == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(R.compute_cost(AL, Y, output))
    assert np.isnan(C.compute_cost(AL, Y, output))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output,y", [("softmax", 1.0), ("sigmoid", 0.5)])
def test_compute_cost_of_a_nan_output_is_nan_where_the_target_is_not_zero(output, y, dtype):
    # The log's clip at the smallest normal number must not turn NaN into log(tiny).
    AL = np.array([[np.nan, 0.3], [0.5, 0.7]], dtype=dtype)
    Y = np.array([[y, 0.0], [1.0 - y, 1.0]], dtype=dtype)
    with np.errstate(invalid="ignore"):
        assert np.isnan(R.compute_cost(AL, Y, output))
    assert np.isnan(C.compute_cost(AL, Y, output))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_of_soft_targets_matches_reference(soft, dtype, rng):
    AL = rng.random((4, 9)).astype(dtype) + 0.05
    AL /= AL.sum(axis=0)
    Y = np.eye(4, dtype=dtype)[:, rng.integers(0, 4, 9)]
    if soft:
        Y = (0.8 * Y + 0.05).astype(dtype)      # no zero entry: every log counts
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for output in ("softmax", "sigmoid"):      # costs are float64 whatever the dtype
        np.testing.assert_allclose(C.compute_cost(AL, Y, output), R.compute_cost(AL, Y, output),
                                   rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
def test_optimizer_updates_match_reference(optimizer, dtype, rng):
    dims = [4, 3, 2]
    params = R.initialize_parameters(dims, seed=0, dtype=dtype)
    v_r, s_r = R.initialize_optimizer_state(params)
    v_c, s_c = C.initialize_optimizer_state(params)
    p_r = p_c = params
    for t in range(1, 6):
        grads = {f"d{k}": rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}
        p_r, v_r, s_r = R.update_parameters_with_optimizer(p_r, grads, v_r, s_r, t, 0.01, optimizer)
        p_c, v_c, s_c = C.update_parameters_with_optimizer(p_c, grads, v_c, s_c, t, 0.01, optimizer)
    for key in params:
        assert_close(p_c[key], p_r[key], dtype)
        assert_close(v_c["d" + key], v_r["d" + key], dtype)
        assert_close(s_c["d" + key], s_r["d" + key], dtype)


def test_adam_first_step_matches_hand_computation():
    # One Adam step from zero moments moves every parameter by -α·sign(g)·|g|/(|g| + ε).
    params = {"W1": np.array([[1.0, -2.0]]), "b1": np.array([[0.5]])}
    grads = {"dW1": np.array([[0.3, -0.1]]), "db1": np.array([[2.0]])}
    v, s = R.initialize_optimizer_state(params)
    for mod in (R, C):
        new, _, _ = mod.update_parameters_with_optimizer(params, grads, v, s, 1, 0.1, "adam",
                                                         epsilon=1e-8)
        for k in params:
            g = grads["d" + k]
            np.testing.assert_allclose(new[k], params[k] - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_parameters_matches_reference_and_keeps_inputs(dtype, rng):
    params = R.initialize_parameters([3, 4, 1], seed=1, dtype=dtype)
    before = {k: v.copy() for k, v in params.items()}
    grads = {f"d{k}": rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}
    new_c = C.update_parameters(params, grads, 0.05)
    new_r = R.update_parameters(params, grads, 0.05)
    for k in params:
        assert new_c[k].dtype == np.dtype(dtype)
        assert_close(new_c[k], new_r[k], dtype)
        np.testing.assert_array_equal(params[k], before[k])


@pytest.mark.parametrize("output,n_out", [("sigmoid", 1), ("softmax", 3), ("identity", 2)])
def test_predict_matches_reference(output, n_out, rng):
    dims = [5, 4, n_out]
    params = R.initialize_parameters(dims, seed=2)
    X = rng.standard_normal((5, 20))
    acts = ["relu", output]
    got, want = C.predict(X, params, acts), R.predict(X, params, acts)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    expected_shape = {"sigmoid": (1, 20), "softmax": (20,), "identity": (2, 20)}[output]
    assert got.shape == expected_shape


@pytest.mark.parametrize("init,scale", [("he", lambda n: np.sqrt(2 / n)),
                                        ("xavier", lambda n: np.sqrt(1 / n)),
                                        ("small", lambda n: 0.01)])
def test_initialization_scales_and_seed(init, scale):
    dims = [400, 300, 2]
    p = R.initialize_parameters(dims, init, seed=7)
    q = C.initialize_parameters(dims, init, seed=7, dtype=np.float32)
    np.testing.assert_allclose(np.std(p["W1"]), scale(400), rtol=0.02)
    np.testing.assert_array_equal(p["b1"], 0)
    np.testing.assert_array_equal(q["W1"], p["W1"].astype(np.float32))
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(p["W1"], rng.standard_normal((300, 400)) * scale(400))
    assert not np.array_equal(p["W1"], R.initialize_parameters(dims, init, seed=8)["W1"])


@pytest.mark.parametrize("module", [C, R], ids=["compiled", "reference"])
def test_momentum_and_rmsprop_first_step_match_hand_computation(module):
    params = {"W1": np.array([[1.0, -2.0]]), "b1": np.array([[0.5]])}
    grads = {"dW1": np.array([[0.3, -0.1]]), "db1": np.array([[2.0]])}
    v, s = R.initialize_optimizer_state(params)
    mom, v1, _ = module.update_parameters_with_optimizer(params, grads, v, s, 1, 0.1, "momentum", beta=0.9)
    rms, _, s1 = module.update_parameters_with_optimizer(params, grads, v, s, 1, 0.1, "rmsprop",
                                                         beta2=0.999, epsilon=1e-8)
    for k in params:
        g = grads["d" + k]
        # momentum from v = 0: v = 0.1 g, P -= α v
        np.testing.assert_allclose(v1["d" + k], 0.1 * g, rtol=1e-12)
        np.testing.assert_allclose(mom[k], params[k] - 0.1 * 0.1 * g, rtol=1e-12)
        # RMSprop from s = 0: s = 0.001 g², P -= α g / (√s + ε)
        np.testing.assert_allclose(s1["d" + k], 0.001 * g * g, rtol=1e-12)
        np.testing.assert_allclose(rms[k], params[k] - 0.1 * g / (np.sqrt(0.001) * np.abs(g) + 1e-8),
                                   rtol=1e-12)


@pytest.mark.parametrize("activation", [a for a in ACTIVATIONS if a != "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_scale", [1.0, 0.8])
def test_in_place_derivative_kernel_matches_reference_derivative(activation, dtype, a_scale):
    # The training loop turns dA into dZ in place with scale_by_derivative,
    # reading g(z) back from A = g(z) / a_scale (dropout's keep_prob).
    from deepnet_fast.kernels import activations as kact
    rng = np.random.default_rng(7)
    Z = (rng.standard_normal((13, 37)) * 3).astype(dtype)
    dA = rng.standard_normal((13, 37)).astype(dtype)
    A = (R.ACTIVATIONS[activation](Z, 0.01) / dtype(a_scale)).astype(dtype)
    expected = R.DERIVATIVES[activation](dA, Z, 0.01)
    got = dA.copy()
    kact.scale_by_derivative(got, A, kact.CODES[activation], dtype(0.01),
                             np.asarray(a_scale, dtype)[()])
    assert_close(got, expected.astype(dtype), dtype, scale=np.abs(expected).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
def test_optimizer_takes_grads_and_moments_in_each_parameters_dtype(optimizer, dtype, rng):
    # Gradients and moments of the other float dtype, Fortran-ordered or strided,
    # are converted to the parameter's dtype by both backends, which then agree.
    params = R.initialize_parameters([4, 3, 2], seed=0, dtype=dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    grads = {f"d{k}": np.asfortranarray(rng.standard_normal(p.shape).astype(other))
             for k, p in params.items()}
    v = {f"d{k}": _noncontiguous(rng.standard_normal(p.shape).astype(other)) for k, p in params.items()}
    s = {f"d{k}": _noncontiguous(rng.random(p.shape).astype(other)) for k, p in params.items()}
    p_r, v_r, s_r = R.update_parameters_with_optimizer(params, grads, v, s, 3, 0.01, optimizer)
    p_c, v_c, s_c = C.update_parameters_with_optimizer(params, grads, v, s, 3, 0.01, optimizer)
    for key in params:
        assert_close(p_c[key], p_r[key], dtype)
        if optimizer in ("momentum", "adam"):
            assert_close(v_c["d" + key], v_r["d" + key], dtype)
        if optimizer in ("rmsprop", "adam"):
            assert_close(s_c["d" + key], s_r["d" + key], dtype)


@pytest.mark.parametrize("module", [C, R], ids=["compiled", "reference"])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop"])
def test_moments_an_optimizer_does_not_use_are_returned_as_given(optimizer, module):
    params = R.initialize_parameters([3, 2], seed=0)
    grads = {f"d{k}": np.ones_like(p) for k, p in params.items()}
    v, s = R.initialize_optimizer_state(params)
    unused = object()
    v = unused if optimizer in ("gd", "rmsprop") else v
    s = unused if optimizer in ("gd", "momentum") else s
    _, new_v, new_s = module.update_parameters_with_optimizer(params, grads, v, s, 1, 0.1, optimizer)
    assert (new_v is unused) == (v is unused)
    assert (new_s is unused) == (s is unused)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("module", [C, R], ids=["compiled", "reference"])
def test_matrix_inputs_are_used_as_plain_arrays(module, rng):
    dims, acts = [4, 3, 2], ["tanh", "softmax"]
    params = R.initialize_parameters(dims, seed=0)
    X, Y = _problem(rng, dims, "softmax", 5, np.float64)
    AL, caches = module.forward(np.matrix(X), params, acts)
    AL_plain, caches_plain = module.forward(X, params, acts)
    assert type(AL) is np.ndarray
    np.testing.assert_array_equal(AL, AL_plain)
    grads = module.backward(AL, np.matrix(Y), caches, acts)
    for key, g in module.backward(AL_plain, Y, caches_plain, acts).items():
        assert type(grads[key]) is np.ndarray
        np.testing.assert_array_equal(grads[key], g)
