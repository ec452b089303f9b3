"""Bad input gets a clear TypeError/ValueError naming the argument."""

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import compiled as C
from deepnet_fast import reference as R

X = np.random.default_rng(0).standard_normal((20, 4))
y = np.arange(20) % 3


def _net(**kw):
    return dn.DeepNet([4, 5, 3], output_activation="softmax", seed=0, **kw)


CONSTRUCTOR_CASES = [
    (dict(layer_dims=[4]), ValueError, "layer_dims must list the input size"),
    (dict(layer_dims=[4, 0, 3]), ValueError, r"layer_dims\[1\] must be a positive integer; got 0"),
    (dict(layer_dims=[4, 2.5, 3]), TypeError, r"layer_dims\[1\] must be a positive integer; got 2.5"),
    (dict(layer_dims="4,5"), TypeError, "layer_dims must be a sequence"),
    (dict(hidden_activation="swish"), ValueError, r"hidden_activation must be one of \['relu', 'leaky_relu', 'tanh', 'sigmoid', 'identity'\]; got 'swish'"),
    (dict(hidden_activation=["relu", "relu"]), ValueError, "one name or 1 names"),
    (dict(output_activation="tanh"), ValueError, r"output_activation must be one of \['sigmoid', 'softmax', 'identity', 'relu'\]"),
    (dict(init="glorot"), ValueError, r"init must be one of \['he', 'xavier', 'small'\]"),
    (dict(init={"W1": np.zeros((5, 4))}), ValueError, r"init is missing \['b1', 'W2', 'b2'\]"),
    (dict(init={"W1": np.zeros((5, 4)), "b1": np.zeros((5, 1)), "W2": np.zeros((3, 5)),
                "b2": np.zeros((3, 1)), "W3": np.zeros((1, 3)), "foo": 1}),
     ValueError, r"init has entries \['W3', 'foo'\] beyond W1..W2, b1..b2"),
    (dict(init={"W1": np.zeros((5, 3)), "b1": np.zeros((5, 1)), "W2": np.zeros((3, 5)), "b2": np.zeros((3, 1))}),
     ValueError, r"W1.*shape \(5, 4\)"),
    (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'; got 'float16'"),
    (dict(backend="gpu"), ValueError, r"backend must be one of \['compiled', 'reference'\]"),
    (dict(negative_slope=-0.1), ValueError, "negative_slope must be a finite number >= 0"),
    (dict(seed="x"), TypeError, r"seed must be an integer in \[0, 2\*\*63\) or None; got 'x'"),
]


@pytest.mark.parametrize("kwargs,exc,message", CONSTRUCTOR_CASES)
def test_constructor_rejects(kwargs, exc, message):
    args = dict(layer_dims=[4, 5, 3], output_activation="softmax")
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        dn.DeepNet(**args)


FIT_CASES = [
    (dict(X=X[:, :3]), ValueError, r"X must have 4 features \(columns\).*got shape \(20, 3\)"),
    (dict(X=X[0]), ValueError, r"X must be a 2-D array; got shape \(4,\)"),
    (dict(X=X[:0], y=y[:0]), ValueError, "X must contain at least one sample"),
    (dict(X=np.where(X > 1, np.nan, X)), ValueError, "X must not contain NaN or infinity"),
    (dict(X=np.where(X > 1, np.inf, X)), ValueError, "X must not contain NaN or infinity"),
    (dict(X=X.astype(object)), TypeError, "X must be a numeric array; got dtype object"),
    (dict(X=X + 1j), TypeError, "X must be real-valued; got complex"),
    (dict(X=[["a"] * 4] * 20), TypeError, "X must be a numeric array"),
    (dict(y=y[:10]), ValueError, "y must have 20 rows, one per sample of X"),
    (dict(y=y + 3), ValueError, r"y must hold class labels in 0..2 .*got labels from 3 to 5"),
    (dict(y=y - 1), ValueError, r"y must hold class labels in 0..2"),
    (dict(y=y + 0.5), ValueError, "integer class labels"),
    (dict(y=np.array(["a"] * 20)), TypeError, "y must be numeric.*DeepNetClassifier"),
    (dict(y=np.eye(3)[y] * 2), ValueError, r"y must lie in \[0, 1\] for a softmax output"),
    (dict(learning_rate=0), ValueError, "learning_rate must be a finite number > 0; got 0"),
    (dict(learning_rate=np.nan), ValueError, "learning_rate must be a finite number > 0; got nan"),
    (dict(learning_rate="fast"), TypeError, "learning_rate must be a real number"),
    (dict(epochs=0), ValueError, "epochs must be an integer >= 1; got 0"),
    (dict(epochs=2.0), TypeError, "epochs must be an integer"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1; got 0"),
    (dict(batch_size=21), ValueError, r"batch_size must be between 1 and the number of training samples \(20\); got 21"),
    (dict(optimizer="sgd"), ValueError, r"optimizer must be one of \['gd', 'momentum', 'rmsprop', 'adam'\]; got 'sgd'"),
    (dict(beta1=1.0), ValueError, "beta1 must be a finite number >= 0 and < 1"),
    (dict(keep_prob=0), ValueError, "keep_prob must be a finite number > 0 and <= 1"),
    (dict(l2=-1), ValueError, "l2 must be a finite number >= 0"),
    (dict(lr_schedule="cosine"), ValueError, r"lr_schedule must be one of \['constant'"),
    (dict(validation_split=1.0), ValueError, "validation_split must be a finite number >= 0 and < 1"),
    (dict(validation_data=X), TypeError, r"validation_data must be a tuple \(X_val, y_val\)"),
    (dict(validation_data=(X[:, :2], y)), ValueError, r"validation_data\[0\] must have 4 features"),
    (dict(patience=0), ValueError, "patience must be an integer >= 1"),
    (dict(y=np.ones((20, 3))), ValueError,
     r"y must hold one-hot rows or probabilities summing to 1 .*row sums from 3 to 3"),
    (dict(y=np.eye(3)[y][:, :2]), ValueError,
     r"y must have shape \(20, 3\) for 3 output unit\(s\) of a softmax output; got \(20, 2\)"),
    (dict(warm_start="no"), TypeError, "warm_start must be True or False; got 'no'"),
    (dict(sync_every=3), ValueError, "sync_every applies to dask input only"),
    (dict(workers=["w"], scale_learning_rate=True), ValueError,
     "workers, scale_learning_rate apply to dask input only"),
]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("kwargs,exc,message", FIT_CASES)
def test_fit_rejects(kwargs, exc, message, backend):
    args = dict(X=X, y=y, epochs=1, verbose=0)
    args.update(kwargs)
    net = _net(backend=backend)
    before = net.parameters
    with pytest.raises(exc, match=message):
        net.fit(args.pop("X"), args.pop("y"), **args)
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("callbacks,message", [
    (5, "callbacks must be a sequence of Callback objects; got int"),
    ("early", "callbacks must be a sequence of Callback objects; got str"),
    ([dn.callbacks.Callback(), 1], r"callbacks\[1\] must be a Callback .*int has none of on_train_begin, "
                                       "on_epoch_end, on_train_end"),
])
def test_fit_rejects_callbacks_that_are_not_callbacks(callbacks, message):
    net = _net()
    before = net.parameters
    with pytest.raises(TypeError, match=message):
        net.fit(X, y, epochs=1, verbose=0, callbacks=callbacks)
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)


def test_set_parameters_errors_name_parameters():
    with pytest.raises(ValueError, match=r"parameters is missing \['b1', 'W2', 'b2'\]"):
        _net().set_parameters({"W1": np.zeros((5, 4))})
    with pytest.raises(ValueError, match=r"parameters has entries \['W3'\] beyond"):
        _net().set_parameters({**_net().parameters, "W3": np.zeros((1, 3))})
    with pytest.raises(ValueError, match=r"parameters\['W1'\] must have shape \(5, 4\)"):
        _net().set_parameters({"W1": np.zeros((5, 3)), "b1": np.zeros((5, 1)),
                               "W2": np.zeros((3, 5)), "b2": np.zeros((3, 1))})
    with pytest.raises(TypeError, match="parameters must be a dict"):
        _net().set_parameters([np.zeros((5, 4))])


@pytest.mark.parametrize("epsilon,exc", [(0, ValueError), (-1, ValueError), (np.inf, ValueError),
                                         ("a", TypeError)])
def test_gradient_check_rejects_a_bad_epsilon(epsilon, exc):
    with pytest.raises(exc, match="epsilon must be a"):
        dn.gradient_check(_net(), X[:5], y[:5], epsilon=epsilon)


def test_sigmoid_labels_outside_0_1_are_refused():
    with pytest.raises(ValueError, match=r"y must lie in \[0, 1\] for a sigmoid output; got values from 0 to 2"):
        dn.DeepNet([4, 3, 1]).fit(X, y, epochs=1, verbose=0)


def test_integer_bool_readonly_noncontiguous_and_memmap_inputs_work(tmp_path):
    net = dn.DeepNet([4, 5, 1], seed=0)
    Xi = (X * 10).astype(np.int32)
    yb = (y > 0)
    assert net.fit(Xi, yb, epochs=2, verbose=0).cost
    ro = X.copy()
    ro.flags.writeable = False
    Xf = np.asfortranarray(X)
    Xs = np.repeat(X, 2, axis=0)[::2]
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=X.shape)
    mm[:] = X
    preds = [net.predict_proba(a) for a in (X, ro, Xf, Xs, mm)]
    for p in preds[1:]:
        np.testing.assert_array_equal(p, preds[0])


STEP_CASES = [
    (lambda M: M.linear_forward(np.zeros((3, 2)), np.zeros((4, 5)), np.zeros((4, 1))),
     ValueError, r"A_prev must have shape \(5, m\)"),
    (lambda M: M.linear_forward(np.zeros((5, 2)), np.zeros((4, 5)), np.zeros((3, 1))),
     ValueError, r"b must have shape \(4, 1\)"),
    (lambda M: M.linear_forward(np.zeros((5, 2), np.float32), np.zeros((4, 5)), np.zeros((4, 1), np.float32)),
     None, None),
    (lambda M: M.activation_forward(np.zeros((2, 2)), "gelu"), ValueError,
     r"activation must be one of \['relu', 'leaky_relu', 'tanh', 'sigmoid', 'identity', 'softmax'\]; got 'gelu'"),
    (lambda M: M.activation_forward(np.zeros(3), "relu"), ValueError, "Z must be a 2-D array"),
    (lambda M: M.activation_backward(np.zeros((2, 3)), np.zeros((2, 2)), "relu"), ValueError,
     r"dA must have shape \(2, 2\)"),
    (lambda M: M.compute_cost(np.zeros((1, 3)), np.zeros((1, 2))), ValueError, r"Y must have shape \(1, 3\)"),
    (lambda M: M.compute_cost(np.zeros((1, 3)), np.zeros((1, 3)), "tanh"), ValueError,
     r"activation must be one of \['sigmoid', 'softmax', 'identity', 'relu'\]"),
    (lambda M: M.linear_backward(np.zeros((4, 2)), np.zeros((5, 3)), np.zeros((4, 5))), ValueError,
     r"dZ must have shape \(4, 3\)"),
    (lambda M: M.forward(np.zeros((4, 2)), {"W1": np.zeros((3, 4))}, ["relu"]), ValueError, "missing 'b1'"),
    (lambda M: M.forward(np.zeros((4, 2)), {"W1": np.zeros((3, 4)), "b1": np.zeros((3, 1))}, ["relu", "relu"]),
     ValueError, r"activations must have one name per layer \(1\); got 2"),
    (lambda M: M.forward(np.zeros((4, 2)), {"W1": np.zeros((3, 4)), "b1": np.zeros((3, 1), np.float32)}, ["relu"]),
     TypeError, "share a dtype"),
    (lambda M: M.backward(np.zeros((1, 2)), np.zeros((1, 2)), [], ["sigmoid"]), TypeError, "caches must be"),
    (lambda M: M.update_parameters({"W1": np.zeros((2, 2)), "b1": np.zeros((2, 1))}, {"dW1": np.zeros((2, 2))}, 0.1),
     ValueError, "grads is missing 'db1'"),
    (lambda M: M.update_parameters({"W1": np.zeros((2, 2)), "b1": np.zeros((2, 1))},
                                   {"dW1": np.zeros((2, 2)), "db1": np.zeros((2, 1))}, -0.1),
     ValueError, "learning_rate must be a finite number > 0"),
    (lambda M: M.initialize_parameters([3, -1]), ValueError, r"layer_dims\[1\] must be a positive integer"),
    (lambda M: M.initialize_parameters([3, 2], seed=-1), ValueError,
     r"seed must be an integer in \[0, 2\*\*63\) or None; got -1"),
    (lambda M: M.initialize_parameters([3, 2], seed=1.5), TypeError, "seed must be an integer"),
    (lambda M: M.initialize_parameters([3, 2], seed=2**64), ValueError, "seed must be an integer"),
    (lambda M: M.forward(np.zeros((4, 2)), {"W1": np.zeros((3, 4)), "b1": np.zeros((3, 1)), 0: None},
                         ["relu"]), ValueError, r"parameters has the key 0; expected only 'W1'"),
    (lambda M: M.forward(np.zeros((4, 2)), {"W1": np.zeros((3, 4)), "b1": np.zeros((3, 1)),
                                            "b\u00b2": np.zeros((3, 1))}, ["relu"]),
     ValueError, "parameters has the key 'b\u00b2'"),
    (lambda M: M.predict(np.zeros((4, 2)), {"W1": np.zeros((1, 4)), "b1": np.zeros((1, 1)),
                                            "Wx": np.zeros((1, 1))}, ["sigmoid"]),
     ValueError, "parameters has the key 'Wx'"),
    (lambda M: M.update_parameters_with_optimizer(
        {"W1": np.zeros((2, 2)), "b1": np.zeros((2, 1))}, {"dW1": np.zeros((2, 2)), "db1": np.zeros((2, 1))},
        *M.initialize_optimizer_state({"W1": np.zeros((2, 2)), "b1": np.zeros((2, 1))}), 2**62, 0.1, "adam"),
     ValueError, r"t must be an integer in \[1, 2\*\*62\); got 4611686018427387904"),
]


@pytest.mark.parametrize("module", [C, R], ids=["compiled", "reference"])
@pytest.mark.parametrize("call,exc,message", STEP_CASES)
def test_step_functions_reject(call, exc, message, module):
    if exc is None:
        # Mixed float32 A_prev with float64 W: converted to W's dtype, no error.
        assert call(module).dtype == np.float64
        return
    with pytest.raises(exc, match=message):
        call(module)


# ---------------------------------------------------------------- step functions: both backends agree
# Every bad call below is refused by deepnet_fast.reference and deepnet_fast.compiled
# with the same exception type and the same message, which names the argument.

_P = {"W1": np.ones((3, 4)), "b1": np.zeros((3, 1))}
_G = {"dW1": np.full((3, 4), 0.1), "db1": np.full((3, 1), 0.1)}
_V, _S = R.initialize_optimizer_state(_P)
_A, _W, _B = np.ones((4, 2)), np.ones((3, 4)), np.zeros((3, 1))
_CACHE = (_A, _W, _B, np.ones((3, 2)))


def _step(M, **kw):
    args = dict(parameters=_P, grads=_G, v=_V, s=_S, t=1, learning_rate=0.01, optimizer="adam")
    args.update(kw)
    return M.update_parameters_with_optimizer(**args)


BAD_STEP_CALLS = [
    pytest.param(lambda M: M.update_parameters({"W1": _W, "b1": [[0.0]] * 3}, _G, 0.1),
                 TypeError, r"parameters\['b1'\] must be a numpy array; got \[\[0.0\]", id="b1-list-update"),
    pytest.param(lambda M: M.forward(_A, {"W1": _W, "b1": [[0.0]] * 3}, ["relu"]),
                 TypeError, r"parameters\['b1'\] must be a numpy array", id="b1-list-forward"),
    pytest.param(lambda M: M.forward(_A, {"W1": _W.tolist(), "b1": _B}, ["relu"]),
                 TypeError, r"parameters\['W1'\] must be a numpy array", id="W1-list-forward"),
    pytest.param(lambda M: M.update_parameters({"W1": _W.astype(np.int64), "b1": _B.astype(np.int64)}, _G, 0.1),
                 TypeError, r"parameters\['W1'\] must be a float32 or float64 array.*got dtype int64",
                 id="int64-parameters-update"),
    pytest.param(lambda M: M.forward(_A, {"W1": _W.astype(object), "b1": _B.astype(object)}, ["relu"]),
                 TypeError, r"parameters\['W1'\] must be a numeric array; got dtype object", id="object-parameters"),
    pytest.param(lambda M: M.update_parameters(_P, [_G["dW1"], _G["db1"]], 0.1),
                 TypeError, "grads must be a dict of gradients", id="grads-list"),
    pytest.param(lambda M: M.update_parameters(_P, {"dW1": _G["dW1"].astype(object), "db1": _G["db1"]}, 0.1),
                 TypeError, r"grads\['dW1'\] must be a numeric array", id="grads-object"),
    pytest.param(lambda M: M.update_parameters(_P, {"dW1": 0.1, "db1": _G["db1"]}, 0.1),
                 ValueError, r"grads\['dW1'\] must be a 2-D array; got shape \(\)", id="grads-scalar"),
    pytest.param(lambda M: _step(M, t=0), ValueError, "t must be an integer >= 1; got 0", id="adam-t0"),
    pytest.param(lambda M: _step(M, t=0, optimizer="gd"), ValueError, "t must be an integer >= 1; got 0",
                 id="gd-t0"),
    pytest.param(lambda M: _step(M, t=1.5), TypeError, "t must be an integer >= 1; got 1.5", id="t-float"),
    pytest.param(lambda M: _step(M, beta1=1.0), ValueError, "beta1 must be a finite number >= 0 and < 1; got 1",
                 id="beta1-one"),
    pytest.param(lambda M: _step(M, optimizer="momentum", beta=-0.5), ValueError,
                 "beta must be a finite number >= 0 and < 1; got -0.5", id="beta-negative"),
    pytest.param(lambda M: _step(M, beta2=np.nan), ValueError, "beta2 must be a finite number", id="beta2-nan"),
    pytest.param(lambda M: _step(M, optimizer="rmsprop", epsilon=0.0), ValueError,
                 "epsilon must be a finite number > 0; got 0", id="epsilon-zero"),
    pytest.param(lambda M: _step(M, optimizer="adagrad"), ValueError,
                 r"optimizer must be one of \['gd', 'momentum', 'rmsprop', 'adam'\]; got 'adagrad'", id="optimizer"),
    pytest.param(lambda M: _step(M, v={k: a.astype(object) for k, a in _V.items()}), TypeError,
                 r"v\['dW1'\] must be a numeric array", id="moments-object"),
    pytest.param(lambda M: M.linear_activation_forward(_A, _W, _B, "gelu"), ValueError,
                 r"activation must be one of \['relu', .*\]; got 'gelu'", id="layer-activation"),
    pytest.param(lambda M: M.linear_activation_forward(_A, _W, _B, "leaky_relu", negative_slope=-1),
                 ValueError, "negative_slope must be a finite number >= 0; got -1", id="layer-slope"),
    pytest.param(lambda M: M.linear_activation_forward(_A, _W, np.zeros((4, 1)), "relu"), ValueError,
                 r"b must have shape \(3, 1\); got \(4, 1\)", id="layer-b"),
    pytest.param(lambda M: M.activation_forward(np.zeros((0, 3)), "softmax"), ValueError,
                 r"Z must have at least one row \(one per unit\); got shape \(0, 3\)", id="softmax-0-rows"),
    pytest.param(lambda M: M.activation_forward(np.zeros((0, 3)), "relu"), ValueError,
                 r"Z must have at least one row", id="relu-0-rows"),
    pytest.param(lambda M: M.activation_backward(np.zeros((0, 3)), np.zeros((0, 3)), "softmax"), ValueError,
                 r"Z must have at least one row", id="softmax-backward-0-rows"),
    pytest.param(lambda M: M.linear_forward(np.zeros((0, 2)), np.zeros((3, 0)), _B), ValueError,
                 r"W must have at least one row and one column; got shape \(3, 0\)", id="W-0-columns"),
    pytest.param(lambda M: M.linear_backward(np.zeros((0, 2)), _A, np.zeros((0, 4))), ValueError,
                 r"W must have at least one row and one column; got shape \(0, 4\)", id="linear-backward-W-0-rows"),
    pytest.param(lambda M: M.forward(np.where(_A > 0, np.nan, _A), _P, ["relu"]), ValueError,
                 "X must not contain NaN or infinity", id="forward-nan-X"),
    pytest.param(lambda M: M.predict(np.full((4, 2), np.inf), _P, ["sigmoid"]), ValueError,
                 "X must not contain NaN or infinity", id="predict-inf-X"),
    pytest.param(lambda M: M.compute_cost(np.full((1, 2), 0.5), np.array([[1.0, np.nan]])), ValueError,
                 "Y must not contain NaN or infinity", id="cost-nan-Y"),
    pytest.param(lambda M: M.cost_gradient(np.full((1, 2), 0.5), np.array([[1.0, np.inf]])), ValueError,
                 "Y must not contain NaN or infinity", id="cost-gradient-inf-Y"),
    pytest.param(lambda M: M.backward(np.full((3, 2), 0.5), np.full((3, 2), np.nan), [_CACHE], ["sigmoid"]),
                 ValueError, "Y must not contain NaN or infinity", id="backward-nan-Y"),
    pytest.param(lambda M: M.compute_cost(np.zeros((0, 2)), np.zeros((0, 2))), ValueError,
                 r"AL must have at least one row", id="cost-0-outputs"),
    pytest.param(lambda M: M.linear_activation_backward(np.ones((3, 2)), (np.ones((4, 5)), _W, _B, np.ones((3, 2))),
                                                        "relu"),
                 ValueError, r"cache.A_prev must have shape \(4, 2\); got \(4, 5\)", id="cache-A_prev-columns"),
    pytest.param(lambda M: M.linear_activation_backward(np.ones((3, 2)), (_A, _W, _B, np.ones((2, 2))), "relu"),
                 ValueError, r"cache.Z must have shape \(3, 'any'\); got \(2, 2\)", id="cache-Z-rows"),
    pytest.param(lambda M: M.linear_activation_backward(np.ones((3, 2)), (_A, _W, np.zeros((3, 2)), np.ones((3, 2))),
                                                        "relu"),
                 ValueError, r"cache.b must have shape \(3, 1\)", id="cache-b"),
    pytest.param(lambda M: M.linear_activation_backward(np.ones((3, 2)), [_A, _W, _B, np.ones((3, 2))], "relu"),
                 TypeError, "cache must be a LayerCache", id="cache-list"),
    pytest.param(lambda M: M.backward(np.full((2, 2), 0.5), np.ones((2, 2)), [_CACHE], ["sigmoid"]), ValueError,
                 r"AL must have the shape of the output layer's caches\[0\].Z \(3, 2\); got \(2, 2\)",
                 id="backward-AL-vs-cache"),
    pytest.param(lambda M: M.backward(np.full((2, 2), 0.5), np.ones((2, 2)),
                                      [_CACHE, (np.ones((5, 2)), np.ones((2, 5)), np.zeros((2, 1)), np.ones((2, 2)))],
                                      ["relu", "sigmoid"]),
                 ValueError, r"caches\[1\].A_prev must have the shape of caches\[0\].Z \(3, 2\)",
                 id="backward-caches-chain"),
    pytest.param(lambda M: M.backward(np.full((3, 2), 0.5), np.ones((3, 2)), [_CACHE], ["sigmoid", "sigmoid"]),
                 ValueError, r"activations must have one name per layer \(1\); got 2", id="backward-activations"),
    pytest.param(lambda M: M.l2_cost([_W], 0.1, 2), TypeError, "parameters must be a dict", id="l2-list"),
    pytest.param(lambda M: M.l2_cost(_P, -0.1, 2), ValueError, "l2 must be a finite number >= 0", id="l2-negative"),
    pytest.param(lambda M: M.l2_cost(_P, 0.1, 0), ValueError, "m must be an integer >= 1; got 0", id="l2-m0"),
    pytest.param(lambda M: M.l2_gradient(_G, _P, -0.1, 2), ValueError, "l2 must be a finite number >= 0",
                 id="l2-gradient-negative"),
    pytest.param(lambda M: M.l2_gradient(_G, _P, 0.1, 0), ValueError, "m must be an integer >= 1; got 0",
                 id="l2-gradient-m0"),
    pytest.param(lambda M: M.l2_gradient([_G], _P, 0.1, 2), TypeError, "grads must be a dict of gradients",
                 id="l2-gradient-list"),
    pytest.param(lambda M: M.l2_gradient({"db1": _G["db1"]}, _P, 0.1, 2), ValueError,
                 "grads is missing 'dW1'", id="l2-gradient-missing-dW"),
    pytest.param(lambda M: M.l2_gradient(dict(_G, dW1=_G["dW1"].T), _P, 0.1, 2), ValueError,
                 r"grads\['dW1'\] must have shape", id="l2-gradient-dW-shape"),
    pytest.param(lambda M: M.forward(_A * 1e300, {k: a.astype(np.float32) for k, a in _P.items()}, ["relu"]),
                 ValueError, r"X holds values that do not fit in float32 \(largest magnitude 1e\+300",
                 id="X-overflows-float32"),
    pytest.param(lambda M: M.forward(np.ma.masked_invalid(np.where(_A > 0, np.nan, _A)), _P, ["relu"]),
                 TypeError, "X must be a plain array, not a masked array", id="masked-X-hiding-nan"),
    pytest.param(lambda M: M.compute_cost(np.full((1, 2), 0.5), np.ma.array([[1.0, 0.0]], mask=[[0, 1]])),
                 TypeError, "Y must be a plain array, not a masked array", id="masked-Y"),
]


def _refusal(call, module, exc, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way to the error
        with pytest.raises(exc, match=message) as info:
            call(module)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("call,exc,message",
                         BAD_STEP_CALLS + [pytest.param(*c, id=f"step-case-{i}")
                                           for i, c in enumerate(STEP_CASES) if c[1] is not None])
def test_bad_step_calls_are_refused_identically_by_both_backends(call, exc, message):
    assert _refusal(call, R, exc, message) == _refusal(call, C, exc, message)


_KEY_CALLS = {
    "forward": lambda M, P: M.forward(_A, P, ["relu"]),
    "update": lambda M, P: M.update_parameters(P, _G, 0.1),
    "l2_cost": lambda M, P: M.l2_cost(P, 0.1, 2),
    "l2_gradient": lambda M, P: M.l2_gradient(_G, P, 0.1, 2),
}


@pytest.mark.parametrize("call", list(_KEY_CALLS.values()), ids=list(_KEY_CALLS))
@pytest.mark.parametrize("value", [np.zeros((3, 1)), [[0.0]], np.array([["x"]])],
                         ids=["array", "list", "strings"])
@pytest.mark.parametrize("key", ["W0", "b01", "W\u0661", "b\u00b2"],
                         ids=["W0", "leading-zero", "arabic-indic-digit", "superscript-digit"])
def test_parameter_keys_other_than_W1_b1_are_refused_by_name(key, value, call):
    # Before, a key whose tail str.isdigit() accepts ("W0", "b²") had its value
    # checked first, so a list there was blamed on the value, not the key.
    message = f"parameters has the key {re.escape(repr(key))}; expected only 'W1'"
    assert (_refusal(lambda M: call(M, {**_P, key: value}), R, ValueError, message)
            == _refusal(lambda M: call(M, {**_P, key: value}), C, ValueError, message))


# Calls that wrote or read out of bounds in the compiled kernels (heap corruption,
# SIGSEGV, or garbage returned first). They run in a child process, so that a crash
# fails these tests instead of killing pytest.
CRASH_CASES = [
    ("adam-without-moments", "_step(M, v=None, s=None)", "TypeError", r"^v must be a dict of adam first moments"),
    ("adam-without-s", "_step(M, s=None)", "TypeError", r"^s must be a dict of adam second moments"),
    ("momentum-without-v", "_step(M, v=None, optimizer='momentum')", "TypeError", r"^v must be a dict"),
    ("rmsprop-without-s", "_step(M, s=None, optimizer='rmsprop')", "TypeError", r"^s must be a dict"),
    ("adam-v-wrong-shape", "_step(M, v={k: np.zeros((1, 1)) for k in V})", "ValueError",
     r"^v\['dW1'\] must have shape \(3, 4\); got \(1, 1\)"),
    ("rmsprop-s-transposed", "_step(M, s={k: a.T.copy() for k, a in S.items()}, optimizer='rmsprop')",
     "ValueError", r"^s\['dW1'\] must have shape \(3, 4\); got \(4, 3\)"),
    ("momentum-scalar-v", "_step(M, v={k: 0.0 for k in V}, optimizer='momentum')", "ValueError",
     r"^v\['dW1'\] must be a 2-D array; got shape \(\)"),
    ("adam-scalar-moments", "_step(M, v={k: 0.0 for k in V}, s={k: 0.0 for k in S})", "ValueError",
     r"^v\['dW1'\] must be a 2-D array; got shape \(\)"),
    ("adam-flat-s", "_step(M, s={k: np.zeros(a.size) for k, a in S.items()})", "ValueError",
     r"^s\['dW1'\] must be a 2-D array; got shape \(12,\)"),
    ("adam-v-missing-key", "_step(M, v={'dW1': V['dW1']})", "ValueError", r"^v is missing 'db1'"),
    ("adam-v-list", "_step(M, v=[V['dW1'], V['db1']])", "TypeError", r"^v must be a dict"),
    ("gd-grads-wrong-shape", "M.update_parameters(P, {'dW1': np.zeros((4, 3)), 'db1': G['db1']}, 0.1)",
     "ValueError", r"^grads\['dW1'\] must have shape \(3, 4\); got \(4, 3\)"),
    ("softmax-0-units", "M.activation_forward(np.zeros((0, 5)), 'softmax')", "ValueError",
     r"^Z must have at least one row"),
    ("softmax-layer-0-units",
     "M.linear_activation_forward(np.ones((4, 5)), np.zeros((0, 4)), np.zeros((0, 1)), 'softmax')",
     "ValueError", r"^W must have at least one row and one column; got shape \(0, 4\)"),
    ("forward-0-unit-layer",
     "M.forward(np.ones((4, 2)), {'W1': np.zeros((0, 4)), 'b1': np.zeros((0, 1))}, ['softmax'])",
     "ValueError", r"^parameters\['W1'\] must have at least one row and one column"),
]

_CRASH_CHILD = r"""
import json, sys
import numpy as np
from deepnet_fast import compiled as C, reference as R

P = {"W1": np.ones((3, 4)), "b1": np.zeros((3, 1))}
G = {"dW1": np.full((3, 4), 0.1), "db1": np.full((3, 1), 0.1)}
V, S = R.initialize_optimizer_state(P)

def _step(M, **kw):
    args = dict(parameters=P, grads=G, v=V, s=S, t=1, learning_rate=0.01, optimizer="adam")
    args.update(kw)
    return M.update_parameters_with_optimizer(**args)

for case_id, expr in json.loads(sys.stdin.read()):
    for name, M in (("reference", R), ("compiled", C)):
        print(json.dumps([case_id, name, "started", ""]), flush=True)
        try:
            eval(expr)
            outcome = ["returned", ""]
        except Exception as exc:
            outcome = [type(exc).__name__, str(exc)]
        print(json.dumps([case_id, name, *outcome]), flush=True)
"""


@pytest.fixture(scope="module")
def crash_case_outcomes():
    """{(case, backend): (outcome, message)}; a case that kills the child is recorded
    with its exit status and the child restarts at the next case."""
    outcomes, pending = {}, [(case_id, expr) for case_id, expr, _, _ in CRASH_CASES]
    while pending:
        proc = subprocess.run([sys.executable, "-c", _CRASH_CHILD], input=json.dumps(pending),
                              capture_output=True, text=True, timeout=600, check=False)
        last = None
        for line in proc.stdout.splitlines():
            case_id, backend, outcome, message = json.loads(line)
            outcomes[case_id, backend] = (outcome, message)
            last = case_id
        if proc.returncode == 0:
            break
        crashed = f"crashed the interpreter (exit status {proc.returncode}): {proc.stderr[-300:]}"
        for backend in ("reference", "compiled"):
            if outcomes.get((last, backend), ("started",))[0] == "started":
                outcomes[last, backend] = ("crash", crashed)
        done = [case_id for case_id, _ in pending].index(last) + 1 if last else 1
        pending = pending[done:]
    return outcomes


@pytest.mark.parametrize("case_id,expr,exc,message", CRASH_CASES, ids=[c[0] for c in CRASH_CASES])
def test_out_of_bounds_calls_are_refused_by_both_backends(case_id, expr, exc, message, crash_case_outcomes):
    ref = crash_case_outcomes[case_id, "reference"]
    comp = crash_case_outcomes[case_id, "compiled"]
    assert comp == ref
    assert ref[0] == exc, ref
    assert re.search(message, ref[1]), ref


# ---------------------------------------------------------------- array conversion


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_fit_says_when_X_does_not_fit_in_float32(backend):
    net = _net(backend=backend, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"X holds values that do not fit in float32 \(largest magnitude"):
            net.fit(X * 1e300, y, epochs=1, verbose=0)
        # Large values that fit are converted without a warning.
        net.predict(X * 1e30)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_fit_refuses_a_masked_array_hiding_nan(backend):
    Xm = np.ma.masked_invalid(np.where(X > 1, np.nan, X))
    with pytest.raises(TypeError, match=r"X must be a plain array, not a masked array.*X.filled\(value\)"):
        _net(backend=backend).fit(Xm, y, epochs=1, verbose=0)


@pytest.mark.parametrize("output, n_out", [("softmax", 3), ("identity", 1), ("sigmoid", 1)])
def test_fit_refuses_a_masked_y(output, n_out):
    ym = np.ma.masked_array(np.where(y > 1, -999, y % 2), mask=y > 1)
    net = dn.DeepNet([4, 5, n_out], output_activation=output, seed=0, backend="reference")
    with pytest.raises(TypeError, match=r"y must be a plain array, not a masked array"):
        net.fit(X, ym, epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"validation_data\[1\] must be a plain array"):
        net.fit(X, y % 2, epochs=1, verbose=0, validation_data=(X, ym))


@pytest.mark.parametrize("weight", ["2", None, True])
def test_a_class_weight_that_is_not_a_number_is_named(weight):
    net = dn.DeepNet([4, 5, 3], output_activation="softmax", seed=0, backend="reference")
    with pytest.raises(TypeError, match=r"class_weight\[0\] must be a real number"):
        net.fit(X, y, epochs=1, verbose=0, class_weight={0: weight})


def test_a_one_dimensional_y_for_several_sigmoid_units_is_explained():
    net = dn.DeepNet([4, 5, 3], output_activation="sigmoid", seed=0)
    with pytest.raises(ValueError, match=r"y must have shape \(20, 3\) for 3 output unit\(s\) "
                                         r"of a sigmoid output; got \(20,\)"):
        net.fit(X, y, epochs=1, verbose=0)


def test_save_checks_training_state_is_a_bool(tmp_path):
    with pytest.raises(TypeError, match="training_state must be True or False"):
        _net().save(tmp_path / "m.npz", training_state="no")
    assert not (tmp_path / "m.npz").exists()


def test_partial_fit_names_the_arguments_it_sets_itself():
    with pytest.raises(TypeError, match="partial_fit sets epochs, verbose itself"):
        _net().partial_fit(X, y, epochs=3, verbose=1)


@pytest.mark.filterwarnings("error")
def test_parameters_that_overflow_the_dtype_are_refused_without_a_numpy_warning():
    net = dn.DeepNet([4, 5, 3], output_activation="softmax", seed=0, dtype="float32")
    params = net.parameters
    params["W1"] = params["W1"].astype(np.float64) * 1e300
    with pytest.raises(ValueError, match=r"parameters\['W1'\].*after conversion to float32"):
        net.set_parameters(params)


# ---------------------------------------------------------------- audit of session 19

def test_masked_or_ragged_initial_parameters_are_refused_by_name():
    hidden = np.ma.array(np.full((1, 4), 7.0), mask=[[True, False, False, False]])
    with pytest.raises(TypeError, match=r"init\['W1'\] must be a plain array, not a masked"):
        dn.DeepNet([4, 1], init={"W1": hidden, "b1": np.zeros((1, 1))})
    net = dn.DeepNet([4, 1], seed=0)
    before = net.parameters
    with pytest.raises(TypeError, match="must be a plain array, not a masked"):
        net.set_parameters({"W1": hidden, "b1": np.zeros((1, 1))})
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)
    with pytest.raises(ValueError, match=r"init\['W1'\] must be a rectangular array of shape "
                                         r"\(1, 3\)"):
        dn.DeepNet([3, 1], init={"W1": [[1, 2], [3]], "b1": [[0]]})


@pytest.mark.parametrize("module", [C, R])
def test_sizes_beyond_any_array_are_named(module):
    with pytest.raises(ValueError, match=r"layer_dims \[1099511627776, 1099511627776, 1\] make "
                                         r"[0-9,]+ parameters, more than an array can hold"):
        dn.DeepNet([2**40, 2**40, 1])
    for shape in ((2**63, 1), (2**64, 1), (0, 2**63), (0, 2**70)):
        with pytest.raises(ValueError, match=rf"shape \({shape[0]}, {shape[1]}\) is beyond "
                                             "any array"):
            module.dropout_mask(shape, 0.5, 0, 0, 1)


def test_a_one_dimensional_sparse_array_is_named():
    sparse = pytest.importorskip("scipy.sparse")
    if not hasattr(sparse, "csr_array"):
        pytest.skip("no sparse arrays in this SciPy")
    try:
        row = sparse.csr_array(np.ones(4))
    except ValueError:
        pytest.skip("this SciPy has no 1-D sparse arrays")
    if len(row.shape) != 1:
        pytest.skip("this SciPy makes 1-D input 2-D")
    net = dn.DeepNet([4, 1], seed=0)
    with pytest.raises(ValueError, match=r"X must be a 2-D array; got a sparse array of shape "
                                         r"\(4,\)"):
        net.predict(row)


def test_pandas_nullable_numeric_columns_are_numbers():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, (30, 3)).astype(float)
    y = (X[:, 0] > 2).astype(int)
    net = dn.DeepNet([3, 4, 1], seed=0)
    net.fit(X, y, epochs=2, verbose=0)
    frames = [pd.DataFrame(X).astype("Float64"), pd.DataFrame(X.astype(int)).astype("Int64"),
              pd.DataFrame({"a": pd.array(X[:, 0], "Float64"), "b": X[:, 1],
                            "c": pd.array(X[:, 2].astype(int), "Int64")})]
    for df in frames:
        np.testing.assert_array_equal(net.predict_proba(df), net.predict_proba(X))
    with_na = frames[0].copy()
    with_na.iloc[3, 1] = pd.NA
    with pytest.raises(ValueError, match="X must not contain NaN or infinity"):
        net.predict(with_na)
    with pytest.raises(TypeError, match="X must be a numeric array; got dtype object"):
        net.predict(pd.DataFrame(X.astype(str)))
