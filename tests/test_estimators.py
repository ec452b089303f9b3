"""scikit-learn estimators: the API contract, real use and parity with MLPClassifier."""

import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import deepnet_fast as dn
from deepnet_fast import DeepNetClassifier, DeepNetRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small networks and a brisk learning rate keep the ~60 checks per estimator
# fast while still reaching the scores some checks demand.
_CHECKED = [
    DeepNetClassifier(hidden_layer_sizes=(10,), learning_rate=0.05, max_iter=20, random_state=0),
    DeepNetRegressor(hidden_layer_sizes=(10,), learning_rate=0.05, max_iter=20, random_state=0),
]


def _expected_failed_checks(estimator):
    # Every check passes; a check that cannot would be listed here with its reason.
    return {}


@parametrize_with_checks(_CHECKED, expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


def _blobs(n=120, n_classes=3, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_classes, n_features))
    labels = rng.integers(0, n_classes, n)
    return centers[labels] + rng.normal(size=(n, n_features)), labels


def _small_clf(**kw):
    params = dict(hidden_layer_sizes=(16,), learning_rate=0.01, max_iter=60, random_state=0)
    return DeepNetClassifier(**{**params, **kw})


def _small_reg(**kw):
    params = dict(hidden_layer_sizes=(16,), learning_rate=0.01, max_iter=60, random_state=0)
    return DeepNetRegressor(**{**params, **kw})


# ---------------------------------------------------------------- in scikit-learn workflows


def test_pipeline_grid_search_on_digits_reaches_90_percent(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), DeepNetClassifier(max_iter=40, random_state=0))
    grid = GridSearchCV(pipe, {"deepnetclassifier__hidden_layer_sizes": [(32,), (64,)],
                               "deepnetclassifier__learning_rate": [1e-3, 1e-2]},
                        cv=3, n_jobs=2)
    grid.fit(X_train, y_train)
    assert grid.best_score_ >= 0.9
    assert grid.score(X_test, y_test) >= 0.9


def test_cross_val_score_on_digits(digits):
    X_train, _, y_train, _ = digits
    scores = cross_val_score(DeepNetClassifier((64,), learning_rate=0.01, max_iter=30,
                                               random_state=0), X_train, y_train, cv=3)
    assert scores.min() >= 0.9


def test_pipeline_cross_val_score_on_diabetes(diabetes):
    X, y = diabetes
    pipe = make_pipeline(StandardScaler(), DeepNetRegressor((32,), learning_rate=0.01,
                                                            batch_size=32, max_iter=50,
                                                            random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3, scoring="r2")
    assert scores.mean() > 0.3


def test_grid_search_on_diabetes(diabetes):
    X, y = diabetes
    pipe = make_pipeline(StandardScaler(), DeepNetRegressor(learning_rate=0.01, batch_size=32,
                                                            max_iter=50, random_state=0))
    grid = GridSearchCV(pipe, {"deepnetregressor__hidden_layer_sizes": [(16,), (32,)],
                               "deepnetregressor__alpha": [1e-4, 1.0]}, cv=3, n_jobs=2)
    grid.fit(X, y)
    assert grid.best_score_ > 0.3


def test_accuracy_on_par_with_mlpclassifier(digits):
    X_train, X_test, y_train, y_test = digits
    common = dict(hidden_layer_sizes=(100,), batch_size=200, max_iter=50, alpha=1e-4)
    ours, theirs = [], []
    # One BLAS thread: MLPClassifier's small products slow down many-fold when
    # its two BLAS threads share 2 cores with another test run.
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in range(3):
            mlp = MLPClassifier(solver="adam", learning_rate_init=1e-3, random_state=seed,
                                **common)
            net = DeepNetClassifier(optimizer="adam", learning_rate=1e-3, random_state=seed,
                                    **common)
            theirs.append(mlp.fit(X_train, y_train).score(X_test, y_test))
            ours.append(net.fit(X_train, y_train).score(X_test, y_test))
    assert np.mean(ours) >= np.mean(theirs) - 0.01, (ours, theirs)


# ---------------------------------------------------------------- classifier targets


def test_binary_string_labels_give_two_probability_columns():
    X, labels = _blobs(n_classes=2)
    y = np.array(["no", "yes"])[labels]
    clf = _small_clf().fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "sigmoid"
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y) > 0.95


def test_multiclass_uses_softmax_and_orders_classes():
    X, labels = _blobs(n_classes=4)
    y = np.array([30, 10, 40, 20])[labels]
    clf = _small_clf().fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [10, 20, 30, 40])
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 4
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.95


def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(n_samples=200, n_features=8, n_classes=3,
                                          random_state=0)
    clf = _small_clf(max_iter=200).fit(X, Y)
    assert clf.out_activation_ == "sigmoid" and clf.n_outputs_ == 3
    pred = clf.predict(X)
    assert pred.shape == Y.shape
    assert set(np.unique(pred)) <= {0, 1}
    assert clf.predict_proba(X).shape == Y.shape
    assert clf.score(X, Y) > 0.5  # exact-match accuracy


@pytest.mark.parametrize("optimizer", ["adam", "gd", "momentum", "rmsprop"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "logistic", "identity"])
def test_every_optimizer_and_activation_learns(optimizer, activation):
    X, y = _blobs()
    lr = 0.1 if optimizer in ("gd", "momentum") else 0.01
    clf = _small_clf(optimizer=optimizer, activation=activation, learning_rate=lr).fit(X, y)
    assert clf.score(X, y) > 0.85  # chance is 1/3


def test_no_hidden_layer_is_logistic_regression():
    X, labels = _blobs(n_classes=2)
    clf = _small_clf(hidden_layer_sizes=(), learning_rate=0.1).fit(X, labels)
    assert clf.n_layers_ == 2 and [W.shape for W in clf.coefs_] == [(4, 1)]
    assert clf.score(X, labels) > 0.95


def test_one_class_is_rejected():
    X, _ = _blobs()
    with pytest.raises(ValueError, match="at least 2 classes"):
        _small_clf().fit(X, np.zeros(len(X)))


def test_continuous_target_is_rejected_by_the_classifier():
    X, _ = _blobs()
    with pytest.raises(ValueError, match="Unknown label type"):
        _small_clf().fit(X, np.linspace(0, 1, len(X)))


# ---------------------------------------------------------------- regressor targets


def test_regressor_single_and_multiple_targets():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5))
    Y = np.column_stack([X[:, 0] - X[:, 1], 0.5 * X[:, 2]])
    single = _small_reg(max_iter=200).fit(X, Y[:, 0])
    assert single.predict(X).shape == (150,) and single.n_outputs_ == 1
    assert single.score(X, Y[:, 0]) > 0.9
    multi = _small_reg(max_iter=200).fit(X, Y)
    assert multi.predict(X).shape == (150, 2) and multi.n_outputs_ == 2
    assert multi.out_activation_ == "identity"
    assert multi.score(X, Y) > 0.9


# ---------------------------------------------------------------- fitted attributes


def test_coefs_and_intercepts_use_sklearn_orientation():
    X, y = _blobs(n_classes=3)
    clf = _small_clf(hidden_layer_sizes=(7, 5)).fit(X, y)
    assert clf.n_layers_ == 4 and clf.n_features_in_ == 4
    assert [W.shape for W in clf.coefs_] == [(4, 7), (7, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (3,)]
    # The forward pass written in scikit-learn's orientation gives predict_proba.
    A = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        A = np.maximum(A @ W + b, 0)
    Z = A @ clf.coefs_[-1] + clf.intercepts_[-1]
    expected = np.exp(Z - Z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-10, atol=1e-12)


def test_loss_curve_matches_n_iter_and_sklearn_l2_penalty():
    X, y = _blobs(n=80, n_classes=3)
    alpha = 0.5
    clf = _small_clf(alpha=alpha, batch_size=None, optimizer="gd", max_iter=1).fit(X, y)
    assert len(clf.loss_curve_) == clf.n_iter_ == 1
    proba, coefs = clf.predict_proba(X), clf.coefs_
    clf.set_params(warm_start=True).fit(X, y)
    # Full batch: the second epoch's cost is that of the parameters after the
    # first, with MLPClassifier's penalty alpha / (2 n) * sum ||W||^2.
    data_loss = -np.mean(np.log(proba[np.arange(len(y)), y]))
    penalty = alpha / (2 * len(y)) * sum(np.sum(W ** 2) for W in coefs)
    assert clf.loss_curve_[1] == pytest.approx(data_loss + penalty, rel=1e-10)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 2 and clf.t_ == 2 * len(y)


def test_training_loss_plateau_stops_without_convergence_warning():
    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = _small_clf(tol=1e3, n_iter_no_change=3, max_iter=100).fit(X, y)
    # The first epoch improves on inf; the next four do not improve by tol.
    assert clf.n_iter_ == 5


def test_max_iter_reached_warns():
    X, y = _blobs()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        _small_clf(max_iter=3).fit(X, y)


def test_early_stopping_keeps_best_validation_score(digits):
    X_train, _, y_train, _ = digits
    clf = DeepNetClassifier((32,), learning_rate=0.01, early_stopping=True, n_iter_no_change=2,
                            max_iter=200, random_state=0).fit(X_train, y_train)
    assert clf.n_iter_ < 200
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9


def test_float32_model_computes_in_float32(digits):
    X_train, X_test, y_train, y_test = digits
    # The reference backend spares the suite a float32 compile of the epoch kernel.
    clf = DeepNetClassifier((32,), learning_rate=0.01, max_iter=20, dtype="float32",
                            backend="reference", random_state=0).fit(X_train, y_train)
    assert clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X_test).dtype == np.float32
    assert clf.score(X_test, y_test) > 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float32")])
def test_dtype_given_as_numpy_type_or_dtype_trains_as_its_name(dtype):
    X, y = _blobs()
    named = _small_clf(max_iter=3, dtype="float32", backend="reference").fit(X, y)
    given = _small_clf(max_iter=3, dtype=dtype, backend="reference").fit(X, y)
    assert given.coefs_[0].dtype == np.float32
    np.testing.assert_array_equal(given.coefs_[0], named.coefs_[0])
    with pytest.raises(ValueError, match="dtype"):
        _small_clf(dtype=np.dtype("float16")).fit(X, y)


def test_reference_backend_trains_the_same_model():
    X, y = _blobs()
    compiled = _small_clf(max_iter=10).fit(X, y)
    reference = _small_clf(max_iter=10, backend="reference").fit(X, y)
    np.testing.assert_allclose(reference.loss_curve_, compiled.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(reference.predict_proba(X), compiled.predict_proba(X), rtol=1e-8)


# ---------------------------------------------------------------- continuing training


def test_partial_fit_streams_batches_and_requires_classes_first():
    X, y = _blobs(n=300, n_classes=3)
    clf = _small_clf()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X[:100], y[:100])
    for _ in range(30):
        for start in range(0, 300, 100):
            clf.partial_fit(X[start:start + 100], y[start:start + 100], classes=np.unique(y))
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 90
    assert clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="classes not in classes_"):
        clf.partial_fit(X[:5], np.full(5, 7))
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X[:5], y[:5], classes=[0, 1, 2, 3])


def test_partial_fit_accepts_batches_missing_some_classes():
    X, y = _blobs(n_classes=3)
    clf = _small_clf().partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2])
    assert clf.predict_proba(X).shape == (len(X), 3)


def test_regressor_partial_fit_improves():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    reg = _small_reg(batch_size=20)
    reg.partial_fit(X, y)
    first = reg.loss_
    for _ in range(30):
        reg.partial_fit(X, y)
    assert reg.loss_ < 0.2 * first and reg.n_iter_ == 1


def test_a_failed_first_partial_fit_leaves_the_classifier_unfitted():
    X, y = _blobs()
    clf = _small_clf(early_stopping=True)
    with pytest.raises(ValueError, match="early_stopping"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(clf, "classes_")
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf = _small_clf()
    with pytest.raises(ValueError):
        clf.partial_fit(X, y + 5, classes=[0, 1, 2])      # y is not among the classes
    clf.partial_fit(X, y + 5, classes=[5, 6, 7])         # a first call again
    np.testing.assert_array_equal(clf.classes_, [5, 6, 7])


def test_partial_fit_refuses_early_stopping():
    X, y = _blobs()
    with pytest.raises(ValueError, match="early_stopping"):
        _small_clf(early_stopping=True).partial_fit(X, y, classes=np.unique(y))


def test_partial_fit_after_an_early_stopping_fit_watches_the_training_loss():
    X, y = _blobs()
    clf = _small_clf(early_stopping=True, max_iter=20).fit(X, y)
    assert clf.best_loss_ is None and clf.validation_scores_
    n_epochs, t = len(clf.loss_curve_), clf.t_
    clf.set_params(early_stopping=False)
    for call in (1, 2):
        clf.partial_fit(X, y)
        assert len(clf.loss_curve_) == n_epochs + call and clf.n_iter_ == 1
        assert clf.t_ == t + call * len(X)
        assert clf.validation_scores_ is None and clf.best_validation_score_ is None
        assert clf.best_loss_ == min(clf.loss_curve_[n_epochs:])


@pytest.mark.parametrize("name,value", [("activation", "softmax"), ("batch_size", "big"),
                                        ("learning_rate", -1.0)])
def test_partial_fit_checks_hyperparameters_changed_after_the_first_call(name, value):
    X, y = _blobs()
    clf = _small_clf().fit(X, y)
    coefs, t = [c.copy() for c in clf.coefs_], clf.t_
    clf.set_params(**{name: value})
    with pytest.raises(ValueError, match=f"The '{name}' parameter of DeepNetClassifier"):
        clf.partial_fit(X, y)
    assert clf.t_ == t
    for a, b in zip(clf.coefs_, coefs):
        np.testing.assert_array_equal(a, b)


def test_hyperparameters_are_checked_once_per_partial_fit_unless_validation_is_off(
        monkeypatch):
    import sklearn
    X, y = _blobs()
    calls = []
    monkeypatch.setattr(DeepNetClassifier, "_validate_params", lambda self: calls.append(1))
    clf = _small_clf()
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert len(calls) == 1
    clf.partial_fit(X, y)
    assert len(calls) == 2
    with sklearn.config_context(skip_parameter_validation=True):
        clf.partial_fit(X, y)
    assert len(calls) == 2


def test_partial_fit_starts_a_new_stopping_record_when_tol_changes():
    X, y = _blobs()
    clf = _small_clf()
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.best_loss_ == min(clf.loss_curve_)
    clf.set_params(tol=1e-2)
    clf.partial_fit(X, np.roll(y, 1))                 # other labels: a higher loss
    assert clf.loss_curve_[-1] > min(clf.loss_curve_[:-1])
    assert clf.best_loss_ == clf.loss_curve_[-1]      # the new rule's first epoch


def test_warm_start_continues_and_cold_start_restarts():
    X, y = _blobs()
    clf = _small_clf(max_iter=5, warm_start=True).fit(X, y)
    coefs = clf.coefs_
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    assert clf.loss_curve_[5] < clf.loss_curve_[0]
    assert not np.allclose(clf.coefs_[0], coefs[0])
    cold = clf.set_params(warm_start=False).fit(X, y)
    assert len(cold.loss_curve_) == 5
    fresh = _small_clf(max_iter=5).fit(X, y)
    np.testing.assert_array_equal(cold.predict_proba(X), fresh.predict_proba(X))


def test_warm_start_refuses_a_different_network():
    X, y = _blobs()
    clf = _small_clf(max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="cannot change hidden_layer_sizes"):
        clf.set_params(hidden_layer_sizes=(8,)).fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        clf.set_params(hidden_layer_sizes=(16,)).fit(X[y < 2], y[y < 2])


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_failed_fit_leaves_the_fitted_estimator_as_it_was(warm_start):
    """Checks that fail after classes_ or n_features_in_ were rewritten (a
    negative weight, an impossible validation split) must not leave a model
    half-updated or untrained."""
    X, y = _blobs()
    y2 = y % 2
    clf = _small_clf(max_iter=3).fit(X, y2)
    before = clf.predict_proba(X)
    loss_before = clf.best_loss_
    bad_fits = [
        lambda: clf.set_params(warm_start=warm_start).fit(X, y, sample_weight=-np.ones(len(y))),
        # the same network: fails in DeepNet.fit's own checks, after the epoch counters reset
        lambda: clf.set_params(warm_start=warm_start).fit(X, y2, sample_weight=-np.ones(len(y))),
        lambda: clf.fit(X[:, :3], y2, sample_weight=-np.ones(len(y))),
        lambda: clf.set_params(early_stopping=True, validation_fraction=0.01).fit(X[:8], y[:8]),
    ]
    for fit in bad_fits:
        with pytest.raises(ValueError):
            fit()
        clf.set_params(early_stopping=False, validation_fraction=0.1)
        np.testing.assert_array_equal(clf.classes_, [0, 1])
        assert clf.n_features_in_ == X.shape[1] and clf.n_iter_ == 3
        assert clf.best_loss_ == loss_before
        np.testing.assert_array_equal(clf.predict_proba(X), before)
    reg = _small_reg(max_iter=3).fit(X, X[:, 0])
    expected = reg.predict(X)
    with pytest.raises(ValueError):
        reg.fit(X, X[:, :2], sample_weight=-np.ones(len(y)))
    np.testing.assert_array_equal(reg.predict(X), expected)
    # Never fitted: still not fitted after a failed first fit.
    fresh = _small_clf()
    with pytest.raises(ValueError):
        fresh.fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(NotFittedError):
        fresh.predict(X)


# ---------------------------------------------------------------- persistence


@pytest.mark.parametrize("make, target", [(_small_clf, "labels"), (_small_reg, "values")])
def test_joblib_round_trip_gives_identical_predictions(tmp_path, make, target):
    X, labels = _blobs()
    y = np.array(["a", "b", "c"])[labels] if target == "labels" else X[:, 0] * 2.0
    model = make().fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if target == "labels":
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # The loaded model keeps training.
    loaded.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert len(loaded.loss_curve_) == len(model.loss_curve_) + 2


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("param, value", [
    ("hidden_layer_sizes", (10, 0)),
    ("hidden_layer_sizes", "ten"),
    ("activation", "softmax"),
    ("optimizer", "lbfgs"),
    ("learning_rate", 0.0),
    ("learning_rate", "adaptive"),
    ("batch_size", 0),
    ("max_iter", 0),
    ("alpha", -1.0),
    ("beta_1", 1.0),
    ("momentum", 1.5),
    ("epsilon", 0.0),
    ("validation_fraction", 1.0),
    ("n_iter_no_change", 0),
    ("tol", -1e-3),
    ("dtype", "float16"),
    ("backend", "gpu"),
    ("init", "glorot"),
    ("shuffle", "yes"),
])
@pytest.mark.parametrize("make", [_small_clf, _small_reg])
def test_bad_hyperparameter_is_named_in_the_error(make, param, value):
    X, y = _blobs()
    est = make(**{param: value})  # __init__ only stores
    with pytest.raises((ValueError, TypeError), match=param):
        est.fit(X, y)


@pytest.mark.parametrize("make", [_small_clf, _small_reg])
def test_predict_before_fit_raises_not_fitted(make):
    X, _ = _blobs()
    with pytest.raises(NotFittedError):
        make().predict(X)


def test_predict_with_wrong_number_of_features():
    X, y = _blobs()
    clf = _small_clf(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.predict(X[:, :3])


def test_clone_keeps_hyperparameters_and_drops_the_fit():
    X, y = _blobs()
    clf = _small_clf(max_iter=2).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "net_")


def test_feature_names_are_recorded_and_checked():
    pd = pytest.importorskip("pandas")
    X, y = _blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = _small_clf(max_iter=2).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame[["d", "c", "b", "a"]])


# ---------------------------------------------------------------- options passed through


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_estimator_options_reach_the_network_and_its_fit(backend):
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    kw = dict(learning_rate=0.01, batch_size=30, max_iter=4, random_state=0, backend=backend,
              activation="leaky_relu")
    clf = DeepNetClassifier((8,), keep_prob=0.7, lr_schedule="inverse_time",
                            negative_slope=0.2, **kw)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.net_.negative_slope == 0.2
    # The same run through DeepNet directly, with the seed the estimator drew.
    net = dn.DeepNet([4, 8, 3], "leaky_relu", "softmax", seed=clf.net_.seed, backend=backend,
                     negative_slope=0.2)
    h = net.fit(X, np.eye(3)[y], epochs=4, learning_rate=0.01, batch_size=30, optimizer="adam",
                l2=1e-4, keep_prob=0.7, lr_schedule="inverse_time", verbose=0)
    np.testing.assert_allclose(clf.loss_curve_, h.cost, rtol=1e-12)
    np.testing.assert_allclose(h.learning_rate, [0.01, 0.005, 0.01 / 3, 0.0025])
    with pytest.raises(ValueError, match="keep_prob"):
        DeepNetClassifier((8,), keep_prob=0.0).fit(X, y)
    with pytest.raises(ValueError, match="warm_start and partial_fit .* negative_slope"):
        clf.set_params(warm_start=True, negative_slope=0.1).fit(X, y)


def test_hidden_layer_sizes_as_a_0d_array_and_float32_overflowing_targets():
    X, y = _blobs()
    assert _small_clf(hidden_layer_sizes=np.array(3), max_iter=2).fit(X, y).coefs_[0].shape == \
        (X.shape[1], 3)
    with pytest.raises(ValueError, match="y holds values that do not fit in float32"):
        _small_reg(dtype="float32").fit(X, np.full(X.shape[0], 1e300))
