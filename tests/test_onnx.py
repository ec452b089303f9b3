"""ONNX export: checked graphs whose onnxruntime outputs equal the model's
``predict_proba`` and ``predict``, for every activation, output and dtype."""

import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import onnx_export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "identity"]
# (output activation, output units)
OUTPUTS = [("sigmoid", 1), ("sigmoid", 3), ("softmax", 4), ("identity", 1), ("identity", 2)]
RTOL = {"float32": 1e-5, "float64": 1e-10}


def _session(model):
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _run(model, X):
    session = _session(model)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: X})))


def _assert_outputs_equal(got, expected, dtype, regression=False):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    rtol = RTOL[dtype]
    # A regression output is a sum that may cancel to ~0, where no change of
    # rounding order keeps relative accuracy: measure it on the output's scale.
    # Probabilities are compared entry by entry, the smallest included.
    atol = rtol * np.abs(expected).max() if regression else 0
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def _X(n_features, dtype, n=64, seed=0):
    # Spread wide enough that sigmoid and softmax outputs reach far into their tails.
    return (3 * np.random.default_rng(seed).standard_normal((n, n_features))).astype(dtype)


# ---------------------------------------------------------------- DeepNet vs onnxruntime


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,units", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_onnxruntime_matches_predict_proba_and_predict(hidden, output, units, dtype):
    X = _X(5, dtype)
    for dims in ([5, units], [5, 7, units], [5, 7, 6, units]):
        if len(dims) == 2 and hidden != HIDDEN[0]:
            continue                       # no hidden layer: once per output is enough
        net = dn.DeepNet(dims, hidden, output, seed=1, dtype=dtype, negative_slope=0.2)
        model = net.to_onnx() if hasattr(net, "to_onnx") else onnx_export.to_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        out = _run(model, X)
        if output == "identity":
            assert list(out) == ["predictions"]
            _assert_outputs_equal(out["predictions"], net.predict_proba(X), dtype, regression=True)
        else:
            assert list(out) == ["label", "probabilities"]
            _assert_outputs_equal(out["probabilities"], net.predict_proba(X), dtype)
            np.testing.assert_array_equal(out["label"], net.predict(X))
            assert out["label"].dtype == np.int64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_per_layer_activations_and_trained_weights(dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 6)).astype(dtype)
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    net = dn.DeepNet([6, 16, 12, 8, 3], ["tanh", "leaky_relu", "sigmoid"], "softmax", seed=0,
                     dtype=dtype, negative_slope=0.05)
    net.fit(X, y, epochs=30, learning_rate=0.05, batch_size=32, optimizer="adam", verbose=0)
    out = _run(onnx_export.to_onnx(net), X)
    _assert_outputs_equal(out["probabilities"], net.predict_proba(X), dtype)
    np.testing.assert_array_equal(out["label"], net.predict(X))


def test_graph_is_gemm_and_activation_per_layer():
    net = dn.DeepNet([64, 32, 10], "relu", "softmax", seed=0, dtype="float32")
    model = onnx_export.to_onnx(net)
    graph = model.graph
    assert [n.op_type for n in graph.node] == ["Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]
    for node in graph.node:
        if node.op_type == "Gemm":
            assert {a.name: a.i for a in node.attribute} == {"transB": 1}
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    np.testing.assert_array_equal(inits["W1"], net.parameters["W1"])
    np.testing.assert_array_equal(inits["b2"], net.parameters["b2"].ravel())
    (x,) = graph.input
    assert x.name == "X" and x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in x.type.tensor_type.shape.dim][1:] == [64]
    assert model.opset_import[0].version == onnx_export.OPSET
    assert model.producer_name == "deepnet_fast"


def test_leaky_relu_in_float64_keeps_the_slope_in_double():
    # A float32 alpha attribute would round 0.1; the float64 graph carries it as a double.
    net = dn.DeepNet([3, 4, 1], "leaky_relu", "identity", seed=0, negative_slope=0.1)
    model = onnx_export.to_onnx(net)
    assert "LeakyRelu" not in [n.op_type for n in model.graph.node]
    slopes = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer
              if t.name.startswith("slope")]
    assert slopes == [np.float64(0.1)]
    net32 = dn.DeepNet([3, 4, 1], "leaky_relu", "identity", seed=0, negative_slope=0.1,
                       dtype="float32")
    assert "LeakyRelu" in [n.op_type for n in onnx_export.to_onnx(net32).graph.node]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_relative_accuracy_in_its_tail(dtype):
    # onnxruntime's Sigmoid kernel is off by 2e-3 (float32) at z = -10: the export avoids it.
    net = dn.DeepNet([1, 1], output_activation="sigmoid", dtype=dtype,
                     init={"W1": np.ones((1, 1)), "b1": np.zeros((1, 1))})
    z = np.linspace(-80, 30, 1101, dtype=dtype).reshape(-1, 1)
    out = _run(onnx_export.to_onnx(net), z)
    _assert_outputs_equal(out["probabilities"], net.predict_proba(z), dtype)


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("classes", [["cat", "dog", "emu"], [10, 20, 30], [0.0, 1.0, 2.0]])
def test_deepnet_softmax_labels_map_to_classes(classes):
    net = dn.DeepNet([4, 5, 3], "tanh", "softmax", seed=2)
    X = _X(4, "float64")
    out = _run(onnx_export.to_onnx(net, classes=classes), X)
    expected = np.asarray(classes)[net.predict(X)]
    np.testing.assert_array_equal(out["label"], expected)
    assert out["label"].dtype == (object if isinstance(classes[0], str) else np.int64)


@pytest.mark.parametrize("classes", [np.array([b"cat", b"dog", "\u00e9mu".encode()]),
                                     np.array([b"cat", "dog", b"emu"], dtype=object)])
def test_byte_string_labels_are_exported_as_their_text(classes):
    net = dn.DeepNet([4, 5, 3], "tanh", "softmax", seed=2)
    X = _X(4, "float64")
    out = _run(onnx_export.to_onnx(net, classes=classes), X)
    text = np.array(["cat", "dog", "\u00e9mu" if classes.dtype.kind == "S" else "emu"])
    np.testing.assert_array_equal(out["label"], text[net.predict(X)])


def test_byte_labels_that_are_not_utf8_are_refused():
    net = dn.DeepNet([4, 5, 3], "tanh", "softmax", seed=2)
    with pytest.raises(ValueError, match=r"class label b'\\xff' is not UTF-8 text"):
        onnx_export.to_onnx(net, classes=np.array([b"cat", b"dog", b"\xff"]))


def test_deepnet_single_sigmoid_labels_map_to_two_classes():
    net = dn.DeepNet([4, 3, 1], "relu", "sigmoid", seed=2, dtype="float32")
    X = _X(4, "float32")
    out = _run(onnx_export.to_onnx(net, classes=["no", "yes"]), X)
    np.testing.assert_array_equal(out["label"], np.array(["no", "yes"])[net.predict(X)])
    assert out["probabilities"].shape == (len(X), 1)      # as DeepNet.predict_proba


def _iris(dtype):
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    return X.astype(dtype), y


def _fitted_classifier(X, y, dtype, hidden=(8,)):
    return dn.DeepNetClassifier(hidden, max_iter=30, learning_rate=0.01, random_state=0,
                                dtype=dtype).fit(X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("labels", ["int", "str", "binary_str", "binary_int", "bool"])
def test_classifier_export_matches_predict_and_predict_proba(labels, dtype):
    X, y = _iris(dtype)
    names = np.array(["setosa", "versicolor", "virginica"])
    if labels.startswith("binary"):
        X, y = X[y != 0], y[y != 0]
    y = {"int": y, "str": names[y], "binary_str": names[y], "binary_int": y * 7 - 3,
         "bool": y == 1}[labels]
    clf = _fitted_classifier(X, y, dtype)
    out = _run(clf.to_onnx(), X)
    assert list(out) == ["label", "probabilities"]
    _assert_outputs_equal(out["probabilities"], clf.predict_proba(X), dtype)
    np.testing.assert_array_equal(out["label"], clf.predict(X))
    assert out["label"].dtype == (object if "str" in labels else np.int64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multilabel_classifier_label_is_the_indicator_matrix(dtype):
    from sklearn.datasets import make_multilabel_classification
    X, Y = make_multilabel_classification(60, 6, n_classes=3, random_state=0)
    clf = _fitted_classifier(X.astype(dtype), Y, dtype)
    out = _run(clf.to_onnx(), X.astype(dtype))
    _assert_outputs_equal(out["probabilities"], clf.predict_proba(X), dtype)
    np.testing.assert_array_equal(out["label"], clf.predict(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("targets", [1, 2])
def test_regressor_export_matches_predict(targets, dtype):
    X, _ = _iris(dtype)
    y = X[:, 0] if targets == 1 else X[:, :2]
    reg = dn.DeepNetRegressor((8,), max_iter=30, random_state=0, dtype=dtype).fit(X[:, 1:], y)
    out = _run(reg.to_onnx(), X[:, 1:])
    assert list(out) == ["predictions"]
    _assert_outputs_equal(out["predictions"], reg.predict(X[:, 1:]), dtype, regression=True)


# ---------------------------------------------------------------- files


def test_to_onnx_writes_a_loadable_file(tmp_path):
    net = dn.DeepNet([4, 6, 3], "relu", "softmax", seed=0, dtype="float32")
    path = tmp_path / "net.onnx"
    returned = onnx_export.to_onnx(net, path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString() == returned.SerializeToString()
    X = _X(4, "float32")
    np.testing.assert_array_equal(_run(str(path), X)["probabilities"],
                                  _run(returned, X)["probabilities"])
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]    # no temporary left


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_to_onnx_file_permissions_are_those_of_a_model_file(tmp_path):
    """Written as model files are (serialization.write_atomically): a new file
    follows the umask, a replaced one keeps its mode."""
    net = dn.DeepNet([4, 6, 3], "relu", "softmax", seed=0, dtype="float32")
    previous = os.umask(0o022)
    try:
        onnx_export.to_onnx(net, tmp_path / "new.onnx")
        replaced = tmp_path / "old.onnx"
        replaced.write_bytes(b"")
        os.chmod(replaced, 0o640)
        onnx_export.to_onnx(net, replaced)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.onnx").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(replaced).st_mode) == 0o640
    assert onnx.load(str(replaced)).SerializeToString() == onnx_export.to_onnx(net).SerializeToString()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_to_onnx_refuses_to_replace_a_fifo(tmp_path):
    net = dn.DeepNet([4, 6, 3], "relu", "softmax", seed=0, dtype="float32")
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        onnx_export.to_onnx(net, fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe.onnx"]


def test_estimator_to_onnx_writes_the_file(tmp_path):
    X, y = _iris("float32")
    clf = _fitted_classifier(X, y, "float32")
    clf.to_onnx(tmp_path / "clf.onnx")
    out = _run(str(tmp_path / "clf.onnx"), X)
    np.testing.assert_array_equal(out["label"], clf.predict(X))


# ---------------------------------------------------------------- errors and imports


def test_non_deepnet_input_is_refused():
    from sklearn.neural_network import MLPClassifier
    X, y = _iris("float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((4,), max_iter=5).fit(X, y)
    for model in (mlp, {"W1": np.ones((2, 2))}, None):
        with pytest.raises(TypeError, match="DeepNet, DeepNetClassifier or DeepNetRegressor"):
            onnx_export.to_onnx(model)


def test_unfitted_estimator_is_refused():
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        dn.DeepNetClassifier().to_onnx()


@pytest.mark.parametrize("output,units,classes,match", [
    ("softmax", 3, ["a", "b"], "3 labels"),
    ("sigmoid", 1, ["a", "b", "c"], "2 labels"),
    ("sigmoid", 2, ["a", "b"], "multi-label"),
    ("identity", 1, ["a"], "classification"),
    ("softmax", 2, [0.5, 1.5], "integers"),
])
def test_bad_classes_are_refused(output, units, classes, match):
    net = dn.DeepNet([3, units], output_activation=output, seed=0)
    with pytest.raises(ValueError, match=match):
        onnx_export.to_onnx(net, classes=classes)


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)      # import onnx now raises ImportError
    net = dn.DeepNet([3, 2], output_activation="softmax", seed=0)
    with pytest.raises(ImportError, match=r'pip install "deepnet-fast\[onnx\]"'):
        onnx_export.to_onnx(net)


def test_import_deepnet_fast_does_not_import_onnx():
    code = ("import sys, deepnet_fast, deepnet_fast.estimators, deepnet_fast.onnx_export; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'onnxruntime', 'skl2onnx')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- skl2onnx pipelines


@pytest.fixture(scope="module")
def skl2onnx():
    skl2onnx = pytest.importorskip("skl2onnx")
    from deepnet_fast.estimators import register_skl2onnx
    register_skl2onnx()
    return skl2onnx


@pytest.mark.parametrize("labels", ["int", "str"])
def test_skl2onnx_converts_a_pipeline_with_the_classifier(skl2onnx, labels):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = _iris("float32")
    if labels == "str":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = make_pipeline(StandardScaler(), dn.DeepNetClassifier(
        (8,), max_iter=30, learning_rate=0.01, random_state=0, dtype="float32")).fit(X, y)
    # skl2onnx's default: a ZipMap of the probabilities (float32 only, as for
    # scikit-learn's own classifiers: ZipMap has no double kernel).
    model = skl2onnx.to_onnx(pipe, X[:1])
    onnx.checker.check_model(model)
    label, proba = _session(model).run(None, {"X": X})
    np.testing.assert_array_equal(label, pipe.predict(X))
    # The converted scaler rounds differently from scikit-learn's in float32.
    expected = pipe.predict_proba(X)
    np.testing.assert_allclose([[row[c] for c in pipe.classes_] for row in proba], expected,
                               rtol=1e-4, atol=1e-6)


def test_skl2onnx_pipeline_in_float64_matches_exactly(skl2onnx):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = _iris("float64")
    y = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = make_pipeline(StandardScaler(), _fitted_classifier(X, y, "float64")).fit(X, y)
    clf = pipe[-1]
    model = skl2onnx.to_onnx(pipe, X[:1], options={id(clf): {"zipmap": False}})
    out = _run(model, X)
    np.testing.assert_array_equal(out["label"], pipe.predict(X))
    _assert_outputs_equal(out["probabilities"], pipe.predict_proba(X), "float64")
    # nocl: class indices for labels.
    model = skl2onnx.to_onnx(pipe, X[:1], options={id(clf): {"zipmap": False, "nocl": True}})
    np.testing.assert_array_equal(_run(model, X)["label"],
                                  np.searchsorted(clf.classes_, pipe.predict(X)))


def test_skl2onnx_casts_float32_input_for_a_float64_regressor(skl2onnx):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, _ = _iris("float64")
    pipe = make_pipeline(StandardScaler(), dn.DeepNetRegressor(
        (8,), max_iter=30, random_state=0)).fit(X[:, 1:], X[:, 0])
    X32 = X[:, 1:].astype(np.float32)
    model = skl2onnx.to_onnx(pipe, X32[:1])
    onnx.checker.check_model(model)
    (pred,) = _session(model).run(None, {"X": X32})
    assert pred.dtype == np.float64 and pred.shape == (len(X),)
    np.testing.assert_allclose(pred, pipe.predict(X32), rtol=1e-5, atol=1e-5)
