"""Bad input gets a clear TypeError/ValueError naming the argument."""

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
    (dict(hidden_activation="swish"), ValueError, r"hidden_activation must be one of \['sigmoid', 'tanh', 'relu', 'leaky_relu', 'identity'\]; got 'swish'"),
    (dict(hidden_activation=["relu", "relu"]), ValueError, "one name or 1 names"),
    (dict(output_activation="relu"), ValueError, r"output_activation must be one of \['sigmoid', 'softmax', 'identity'\]"),
    (dict(init="glorot"), ValueError, r"init must be one of \['he', 'xavier', 'small'\]"),
    (dict(init={"W1": np.zeros((5, 4))}), ValueError, "missing 'b1'"),
    (dict(init={"W1": np.zeros((5, 3)), "b1": np.zeros((5, 1)), "W2": np.zeros((3, 5)), "b2": np.zeros((3, 1))}),
     ValueError, r"W1.*shape \(5, 4\)"),
    (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'; got 'float16'"),
    (dict(backend="gpu"), ValueError, r"backend must be one of \['compiled', 'reference'\]"),
    (dict(negative_slope=-0.1), ValueError, "negative_slope must be a finite number >= 0"),
    (dict(seed="x"), TypeError, "seed must be an integer or None"),
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
     r"activation must be one of \['sigmoid', 'tanh', 'relu', 'leaky_relu', 'softmax', 'identity'\]; got 'gelu'"),
    (lambda M: M.activation_forward(np.zeros(3), "relu"), ValueError, "Z must be a 2-D array"),
    (lambda M: M.activation_backward(np.zeros((2, 3)), np.zeros((2, 2)), "relu"), ValueError,
     r"dA must have shape \(2, 2\)"),
    (lambda M: M.compute_cost(np.zeros((1, 3)), np.zeros((1, 2))), ValueError, r"Y must have shape \(1, 3\)"),
    (lambda M: M.compute_cost(np.zeros((1, 3)), np.zeros((1, 3)), "tanh"), ValueError,
     r"activation must be one of \['sigmoid', 'softmax', 'identity'\]"),
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
