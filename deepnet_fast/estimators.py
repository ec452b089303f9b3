"""scikit-learn estimators on :class:`~deepnet_fast.DeepNet`.

:class:`DeepNetClassifier` and :class:`DeepNetRegressor` follow scikit-learn's
``MLPClassifier`` and ``MLPRegressor`` with a stochastic solver: the same
hyperparameter names where the meaning is the same, the same fitted attributes
(``coefs_``, ``intercepts_``, ``loss_curve_``, ``n_iter_``, ...) and the same
stopping rule, so they drop into pipelines, grid searches and cross-validation.

A ``fit`` is one :meth:`DeepNet.fit` (one training session, one kernel call
per epoch); the estimator adds scikit-learn's conventions as callbacks: its
record of every epoch (``loss_curve_``, ``n_iter_``, ...) and its stopping
rule, which is the library's :class:`~deepnet_fast.callbacks.EarlyStopping`
with ``tol`` and ``n_iter_no_change``.

``sample_weight`` (and the classifier's ``class_weight``) weighs each
sample's loss and gradient inside the compiled epoch, normalised per
mini-batch as ``MLPClassifier`` does; the validation score of early stopping
is unweighted.

Sparse ``X`` of any SciPy format is converted to CSR, as scikit-learn's
estimators do (a copy of the nonzeros for formats other than CSR), and trained
on without densifying: the first layer's products run over the nonzeros (see
``kernels/sparse.py``).

Left out: the L-BFGS solver and scikit-learn's SGD learning-rate schedules.
"""

import warnings
from numbers import Integral, Real

import numpy as np

# scikit-learn >= 1.6 (validate_data, __sklearn_tags__). Hyperparameters are checked by
# scikit-learn's own, private, _param_validation so errors read like its estimators'.
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import (
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import onnx_export
from ._validation import FLOAT_DTYPE_NAMES, FLOAT_DTYPES, as_float_array
from .callbacks import Callback, EarlyStopping
from .engines import ENGINES
from .exceptions import DivergenceError
from .network import DeepNet
from .registry import HIDDEN_ACTIVATIONS, INITIALIZERS, OPTIMIZERS
from .schedules import SCHEDULES

__all__ = ["DeepNetClassifier", "DeepNetRegressor", "register_skl2onnx"]

# "logistic" is scikit-learn's name for the sigmoid; accepting it lets MLP
# grids and configurations carry over unchanged.
_HIDDEN_ACTIVATIONS = {**{name: name for name in HIDDEN_ACTIVATIONS}, "logistic": "sigmoid"}

_COMMON_PARAMETERS = """\
    hidden_layer_sizes : array-like of int or int, default=(100,)
        Units of each hidden layer; ``()`` gives a network without hidden layer.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "logistic", \
"identity"}, default="relu"
        Activation of the hidden layers (``"logistic"`` is ``"sigmoid"``).
    optimizer : {"adam", "gd", "momentum", "rmsprop"}, default="adam"
        Update rule of :class:`~deepnet_fast.DeepNet` (``"gd"`` is plain
        mini-batch gradient descent).
    learning_rate : float, default=0.001
        Step size α (scikit-learn's ``learning_rate_init``).
    batch_size : int, "auto" or None, default="auto"
        Mini-batch size; ``"auto"`` is ``min(200, n_samples)``, None is
        full-batch gradient descent. Larger than the training set, it is clipped
        to it (with a warning).
    max_iter : int, default=200
        Maximum number of epochs of one ``fit``.
    alpha : float, default=0.0001
        L2 penalty. It is passed unchanged as ``DeepNet``'s ``l2``: both add
        ``alpha / (2 m) * sum ||W||^2`` to the cost of a mini-batch of ``m``
        samples (biases are not penalised), exactly as ``MLPClassifier`` does.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of Adam's moments (``beta_2`` is also RMSprop's).
    epsilon : float, default=1e-8
        Adam's and RMSprop's denominator guard.
    momentum : float, default=0.9
        Coefficient of ``optimizer="momentum"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classification) and stop when the validation score (accuracy or R²)
        has not improved by ``tol`` for more than ``n_iter_no_change`` epochs;
        the model then keeps the parameters of its best epoch.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping=True``.
    n_iter_no_change : int, default=10
        Epochs without improvement by at least ``tol`` before stopping. Without
        early stopping the training loss is watched instead.
    tol : float, default=1e-4
        Improvement that counts.
    shuffle : bool, default=True
        Reshuffle the training samples every epoch (mini-batches only).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    dtype : {"float64", "float32"}, np.float64, np.float32 or their np.dtype, default="float64"
        Precision of the network and of the computation.
    backend : {"compiled", "reference"}, default="compiled"
        ``"reference"`` trains through the NumPy reference implementation.
    init : {"he", "xavier", "small"}, default="he"
        Weight initialisation (biases start at zero).
    keep_prob : float, default=1.0
        Inverted-dropout keep probability of the hidden units (1: no dropout).
    lr_schedule : None, str or callable, default=None
        Learning-rate schedule (see :mod:`deepnet_fast.schedules`): a name,
        a schedule object or ``f(epoch, learning_rate) -> rate``.
    negative_slope : float, default=0.01
        Slope of leaky ReLU for negative inputs.
    verbose : int, default=0
        Print the loss of every epoch when positive.
    warm_start : bool, default=False
        Continue from the previous solution instead of re-initialising.
"""

_COMMON_ATTRIBUTES = """\
    loss_ : float
        Training cost of the last epoch (L2 term included).
    loss_curve_ : list of float
        Training cost of every epoch since initialisation.
    best_loss_ : float or None
        Lowest training cost of the last ``fit`` (of all ``partial_fit`` calls);
        None when ``early_stopping=True``.
    validation_scores_ : list of float or None
        Validation score of every epoch of the last ``fit`` with
        ``early_stopping=True``, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_``; None without early stopping.
    t_ : int
        Number of training samples seen since initialisation.
    coefs_ : list of ndarray of shape (n_in, n_out)
        Weights of each layer in scikit-learn's orientation (``W.T``); copies.
    intercepts_ : list of ndarray of shape (n_out,)
        Biases of each layer; copies.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when ``X`` has string column names.
    n_iter_ : int
        Epochs run by the last ``fit`` or ``partial_fit`` call.
    n_layers_ : int
        Number of layers, input and output layers included.
    n_outputs_ : int
        Number of output units.
    out_activation_ : str
        Activation of the output layer.
    net_ : DeepNet
        The underlying network (``net_.save(path)`` writes it to a model file).
"""


class _Record(Callback):
    """scikit-learn's record of each epoch, kept in the estimator's fitted attributes."""

    def __init__(self, estimator, n_samples):
        self.estimator, self.n_samples = estimator, n_samples

    def on_epoch_end(self, epoch, logs):
        est = self.estimator
        loss = logs["cost"]
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += self.n_samples
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if est.validation_scores_ is None:
            est.best_loss_ = min(est.best_loss_, loss)
            return False
        score = logs[f"val_{est.net_.head.score_name}"]
        if est.verbose:
            print(f"Validation score: {score:.6f}")
        est.validation_scores_.append(score)
        est.best_validation_score_ = max(est.best_validation_score_, score)
        return False


def _with_common_docs(cls):
    cls.__doc__ = (cls.__doc__.replace("    {common_parameters}\n", _COMMON_PARAMETERS)
                   .replace("    {common_attributes}\n", _COMMON_ATTRIBUTES))
    return cls


class _DeepNetEstimator(BaseEstimator):
    """Hyperparameters, the epoch loop and the fitted attributes shared by both estimators."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_HIDDEN_ACTIVATIONS))],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "dtype": [StrOptions(set(FLOAT_DTYPE_NAMES)), Options(type, {dt.type for dt in FLOAT_DTYPES}),
                  Options(np.dtype, set(FLOAT_DTYPES))],
        "backend": [StrOptions(set(ENGINES))],
        "init": [StrOptions(set(INITIALIZERS))],
        "keep_prob": [Interval(Real, 0, 1, closed="right")],
        "lr_schedule": [None, StrOptions(set(SCHEDULES)), callable],
        "negative_slope": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=0.001, batch_size="auto", max_iter=200, alpha=0.0001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, momentum=0.9, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, shuffle=True,
                 random_state=None, dtype="float64", backend="compiled", init="he", verbose=0,
                 warm_start=False, keep_prob=1.0, lr_schedule=None, negative_slope=0.01):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self.init = init
        self.verbose = verbose
        self.warm_start = warm_start
        self.keep_prob = keep_prob
        self.lr_schedule = lr_schedule
        self.negative_slope = negative_slope

    # ------------------------------------------------------------ fitted views

    @property
    def coefs_(self):
        params = self.net_.parameters
        return [params[f"W{l}"].T for l in range(1, self.n_layers_)]

    @property
    def intercepts_(self):
        params = self.net_.parameters
        return [params[f"b{l}"][:, 0] for l in range(1, self.n_layers_)]

    # ------------------------------------------------------------ training

    def _fit(self, X, y, incremental, sample_weight=None, set_up=None):
        # A fit that fails leaves the estimator as it was (its fitted
        # attributes and network), never half-updated: the checks below
        # (and partial_fit's set_up of the classes) rewrite classes_ and
        # n_features_in_ before the data's last checks run. A diverging fit
        # keeps what it trained (the network holds its last finite epoch, as
        # DeepNet's contract says, and loss_curve_ records it), and so does a
        # warm fit that has trained epochs (each adds its samples to t_).
        before = dict(self.__dict__)
        try:
            if set_up is not None:
                set_up()
            return self._fit_checked(X, y, incremental, sample_weight)
        except DivergenceError:
            raise
        except BaseException:
            fresh_network = self.__dict__.get("net_") is not before.get("net_")
            if fresh_network or getattr(self, "t_", 0) == before.get("t_", 0):
                self.__dict__.clear()
                self.__dict__.update(before)
            raise

    def _fit_checked(self, X, y, incremental, sample_weight):
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        hidden = self._hidden_sizes()
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        sample_weight = self._with_class_weight(y, sample_weight, X.dtype)
        rng = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], Y.shape[1], hidden, rng)
        else:
            self._check_same_network(Y.shape[1], hidden)
        self._run_epochs(X, Y, sample_weight, incremental, rng)
        return self

    def _with_class_weight(self, y, sample_weight, dtype):
        return sample_weight

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, np.ndarray) and sizes.ndim == 0:
            sizes = sizes.item()      # array-like to the parameter check, not iterable
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(n, Integral) and not isinstance(n, bool) and n >= 1 for n in sizes):
            raise ValueError("hidden_layer_sizes must hold positive integers (the units of each "
                             f"hidden layer); got {self.hidden_layer_sizes!r}")
        return [int(n) for n in sizes]

    def _initialize(self, n_features, n_outputs, hidden, rng):
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = self._output_activation()
        self.net_ = DeepNet([n_features, *hidden, n_outputs],
                            hidden_activation=_HIDDEN_ACTIVATIONS[self.activation],
                            output_activation=self.out_activation_, init=self.init,
                            seed=int(rng.randint(np.iinfo(np.int32).max)),
                            dtype=self.dtype, backend=self.backend,
                            negative_slope=self.negative_slope)
        self.t_ = 0
        self.loss_curve_ = []

    def _check_same_network(self, n_outputs, hidden):
        # Continuing training cannot reshape the network: say so instead of
        # silently training the old architecture.
        net = self.net_
        wanted = (hidden, _HIDDEN_ACTIVATIONS[self.activation] if hidden else None,
                  np.dtype(self.dtype), self.backend, float(self.negative_slope))
        current = (net.layer_dims[1:-1], net.activations[0] if net.n_layers > 1 else None,
                   net.dtype, net.backend, net.negative_slope)
        names = ("hidden_layer_sizes", "activation", "dtype", "backend", "negative_slope")
        changed = [name for name, a, b in zip(names, wanted, current) if a != b]
        if changed:
            raise ValueError(f"warm_start and partial_fit continue the fitted network and cannot "
                             f"change {', '.join(changed)}; refit with warm_start=False")
        if n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs but the fitted network has "
                             f"{self.n_outputs_}; refit with warm_start=False")

    def _run_epochs(self, X, Y, sample_weight, incremental, rng):
        # Every fit has its own stopping record; partial_fit calls share one
        # while the rule stays (not after an early-stopping fit, nor a new tol).
        rule = (f"val_{self.net_.head.score_name}" if self.early_stopping else "cost",
                self.n_iter_no_change + 1, self.tol)
        stopping = getattr(self, "_stopping", None)
        if not incremental or stopping is None or (
                stopping.monitor, stopping.patience, stopping.min_delta) != rule:
            self._stopping = EarlyStopping(
                monitor=rule[0], patience=rule[1], min_delta=rule[2],
                restore_best=self.early_stopping, restart=False)
            self.best_loss_ = None if self.early_stopping else np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
        X, Y, sample_weight, X_val, Y_val = self._hold_out_validation(X, Y, sample_weight, rng)
        self.n_iter_ = 0
        history = self.net_.fit(
            X, Y, epochs=1 if incremental else self.max_iter, learning_rate=self.learning_rate,
            batch_size=self._batch_size(X.shape[0]), optimizer=self.optimizer,
            beta=self.momentum, beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon,
            l2=self.alpha, keep_prob=self.keep_prob, lr_schedule=self.lr_schedule,
            shuffle=self.shuffle, verbose=0, warm_start=True, sample_weight=sample_weight,
            validation_data=None if X_val is None else (X_val, Y_val),
            callbacks=[_Record(self, X.shape[0]), self._stopping])
        stopped = history.stopped_epoch is not None
        if stopped and self.verbose:
            watched = "Training loss" if X_val is None else "Validation score"
            print(f"{watched} did not improve more than tol={self.tol:g} for "
                  f"{self.n_iter_no_change} consecutive epochs. Stopping.")
        if not (incremental or stopped or history.interrupted):
            warnings.warn(f"Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning, stacklevel=5)

    def _hold_out_validation(self, X, Y, sample_weight, rng):
        if not self.early_stopping:
            return X, Y, sample_weight, None, None
        arrays = (X, Y) if sample_weight is None else (X, Y, sample_weight)
        parts = train_test_split(*arrays, test_size=self.validation_fraction, random_state=rng,
                                 stratify=self._strata(Y))
        X, X_val, Y, Y_val = parts[:4]
        if sample_weight is not None:
            sample_weight = parts[4]
        if X_val.shape[0] < 2:
            raise ValueError(f"the validation set has {X_val.shape[0]} sample(s); increase "
                             "validation_fraction or the size of the dataset")
        return X, Y, sample_weight, X_val, Y_val

    def _batch_size(self, n_samples):
        if self.batch_size is None:
            return n_samples
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(f"batch_size={self.batch_size} is larger than the {n_samples} training "
                          f"samples; using {n_samples}", UserWarning, stacklevel=6)
            return n_samples
        return int(self.batch_size)

    # ------------------------------------------------------------ inference

    def _output(self, X):
        """Output activations, shape (n_samples, n_outputs_)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=self.net_.dtype,
                          order="C")
        return self.net_.predict_proba(X)

    def to_onnx(self, path=None):
        """The fitted model as ONNX (needs ``pip install "deepnet-fast[onnx]"``).

        Outputs ``label`` and ``probabilities`` (the classifier's ``predict``
        and ``predict_proba``) or ``predictions`` (the regressor's ``predict``);
        see :mod:`deepnet_fast.onnx_export`.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Also write the model to this file.

        Returns
        -------
        onnx.ModelProto
        """
        return onnx_export.to_onnx(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


@_with_common_docs
class DeepNetClassifier(ClassifierMixin, _DeepNetEstimator):
    """Deep network classifier for scikit-learn, trained by Numba-compiled epochs.

    Two classes give one sigmoid output unit (binary cross-entropy), more
    give a softmax layer (categorical cross-entropy); a label indicator matrix
    gives one sigmoid unit per label (multi-label). Labels may be of any type,
    strings included.

    Parameters
    ----------
    {common_parameters}
    class_weight : "balanced", dict or None, default=None
        Weights of the classes, multiplying ``sample_weight`` (scikit-learn's
        ``compute_sample_weight``); not for multi-label targets.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (for multi-label targets, the label indices).
    {common_attributes}

    See Also
    --------
    DeepNetRegressor : The regressor.
    deepnet_fast.DeepNet : The network underneath.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from deepnet_fast import DeepNetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = DeepNetClassifier((16,), learning_rate=0.01, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        **_DeepNetEstimator._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=0.001, batch_size="auto", max_iter=200, alpha=0.0001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, momentum=0.9, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, shuffle=True,
                 random_state=None, dtype="float64", backend="compiled", init="he", verbose=0,
                 warm_start=False, keep_prob=1.0, lr_schedule=None, negative_slope=0.01,
                 class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, optimizer=optimizer, learning_rate=learning_rate,
            batch_size=batch_size, max_iter=max_iter, alpha=alpha, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, momentum=momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol,
            shuffle=shuffle, random_state=random_state, dtype=dtype, backend=backend, init=init,
            verbose=verbose, warm_start=warm_start, keep_prob=keep_prob,
            lr_schedule=lr_schedule, negative_slope=negative_slope)
        self.class_weight = class_weight

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True,
                             dtype=np.dtype(self.dtype), order="C", reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            binarizer = LabelBinarizer().fit(y)
            if binarizer.y_type_ != "multilabel-indicator" and len(binarizer.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                                 f"got 1 class: {binarizer.classes_}")
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental and set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where y has the same classes as "
                                 f"in the previous call to fit; previously got {self.classes_}, "
                                 f"y has {classes}")
            if len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(f"y has classes not in classes_ {self.classes_}: "
                                 f"{np.setdiff1d(classes, self.classes_)}")
        Y = self._label_binarizer.transform(y).astype(np.dtype(self.dtype))
        return X, Y

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _strata(self, Y):
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            return None
        return Y[:, 0] if Y.shape[1] == 1 else Y.argmax(axis=1)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 label indicator matrix (multi-label).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples (see :meth:`deepnet_fast.DeepNet.fit`).

        Returns
        -------
        self : DeepNetClassifier
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of mini-batches over ``(X, y)``, continuing from the current model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 label indicator matrix (multi-label).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples.
        classes : array-like of shape (n_classes,), default=None
            Every class the model will ever see, e.g. ``np.unique(y_all)``.
            Required on the first call; ``y`` need not contain all of them.

        Returns
        -------
        self : DeepNetClassifier
            The updated estimator.
        """
        return self._partial_fit(X, y, sample_weight, classes)

    # Not named partial_fit: scikit-learn's _fit_context then checks the
    # hyperparameters at every call, not at the first only (set_params may
    # have changed them since), unless validation is switched off.
    @_fit_context(prefer_skip_nested_validation=True)
    def _partial_fit(self, X, y, sample_weight, classes):
        return self._fit(X, y, incremental=True, sample_weight=sample_weight,
                         set_up=lambda: self._partial_fit_classes(y, classes))

    def _partial_fit_classes(self, y, classes):
        """The classes of a first partial_fit call; a later call's must match."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit "
                                 "(every label the model will see, e.g. np.unique(y_all))")
            multilabel = type_of_target(y).startswith("multilabel")
            binarizer = LabelBinarizer().fit(y if multilabel else classes)
            if not multilabel and len(binarizer.classes_) < 2:
                raise ValueError(f"classes must hold at least 2 classes; got {classes!r}")
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to "
                             f"partial_fit: {self.classes_}")

    def _with_class_weight(self, y, sample_weight, dtype):
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            raise ValueError("class_weight is not supported for multi-label targets")
        weights = compute_sample_weight(self.class_weight, column_or_1d(y)).astype(dtype)
        return weights if sample_weight is None else sample_weight * weights

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted labels, or an indicator matrix for multi-label models.
        """
        P = self._output(X)
        return self._label_binarizer.inverse_transform(P[:, 0] if self.n_outputs_ == 1 else P)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class in the order of ``classes_``; for
            multi-label models the probability of each label.
        """
        P = self._output(X)
        if self.n_outputs_ == 1:
            return np.column_stack([1 - P[:, 0], P[:, 0]])
        return P

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probability of each class in the order of ``classes_``.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


@_with_common_docs
class DeepNetRegressor(RegressorMixin, _DeepNetEstimator):
    """Deep network regressor for scikit-learn, trained by Numba-compiled epochs.

    An identity output layer with one unit per target, trained on the squared
    error ``1/(2m) sum ||y - f(x)||^2`` (summed over targets, so with several
    targets ``loss_curve_`` is ``n_outputs_`` times ``MLPRegressor``'s, whose
    loss averages over targets while its gradient sums over them).

    Parameters
    ----------
    {common_parameters}

    Attributes
    ----------
    {common_attributes}

    See Also
    --------
    DeepNetClassifier : The classifier.
    deepnet_fast.DeepNet : The network underneath.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from deepnet_fast import DeepNetRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), DeepNetRegressor((32,), learning_rate=0.01,
    ...                       random_state=0)).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2,)
    """

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True, y_numeric=True,
                             dtype=np.dtype(self.dtype), order="C", reset=reset)
        # Predictions keep the shape of the last y trained on: (n,) or (n, k).
        self._y_is_1d = y.ndim == 1
        # Through the one narrowing check: a float64 y beyond float32's range
        # is named as such, not as infinite.
        Y = as_float_array(y.reshape(y.shape[0], -1), "y", ndim=2, dtype=np.dtype(self.dtype))
        return X, np.ascontiguousarray(Y)

    def _output_activation(self):
        return "identity"

    def _strata(self, Y):
        return None

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples (see :meth:`deepnet_fast.DeepNet.fit`).

        Returns
        -------
        self : DeepNetRegressor
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of mini-batches over ``(X, y)``, continuing from the current model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples.

        Returns
        -------
        self : DeepNetRegressor
            The updated estimator.
        """
        return self._partial_fit(X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def _partial_fit(self, X, y, sample_weight):
        # Checked at every call, as the classifier's.
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions, 1-D when the model was trained on a 1-D ``y``.
        """
        P = self._output(X)
        return P[:, 0] if self._y_is_1d else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# ---------------------------------------------------------------- ONNX

def _onnx_plan(est, classes, class_indices):
    """The :class:`~deepnet_fast.onnx_export.Plan` of a fitted estimator: its
    ``predict`` and ``predict_proba`` (``class_indices``: skl2onnx's ``nocl``)."""
    if classes is not None:
        raise ValueError("classes is for a DeepNet; an estimator exports its classes_")
    check_is_fitted(est)
    net = est.net_
    if hasattr(est, "classes_"):
        multilabel = est._label_binarizer.y_type_ == "multilabel-indicator"
        labels = (None if multilabel or class_indices
                  else onnx_export.label_tensor(est.classes_, len(est.classes_)))
        return onnx_export.Plan(net.architecture, net.parameters, labels, sklearn_proba=True,
                                flat_predictions=False)
    return onnx_export.Plan(net.architecture, net.parameters, None, sklearn_proba=False,
                            flat_predictions=est._y_is_1d)


onnx_export.register(DeepNetClassifier, _onnx_plan)
onnx_export.register(DeepNetRegressor, _onnx_plan)


def register_skl2onnx():
    """Register converters for :class:`DeepNetClassifier` and
    :class:`DeepNetRegressor` with skl2onnx, so that ``skl2onnx.to_onnx``
    converts pipelines that contain them (see :mod:`deepnet_fast.onnx_export`).

    Call once before converting (calling again is harmless). The classifier
    accepts skl2onnx's options ``zipmap`` (``True``, ``False``, ``"columns"``)
    and ``nocl`` (``True``: class indices for labels).

    Raises
    ------
    ImportError
        When skl2onnx is missing.
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError(f"register_skl2onnx needs skl2onnx: pip install skl2onnx "
                          f"(and {onnx_export.EXTRA})") from exc
    update_registered_converter(DeepNetClassifier, "DeepNetFastDeepNetClassifier",
                                onnx_export.skl2onnx_shapes, onnx_export.skl2onnx_convert,
                                options={"zipmap": [True, False, "columns"],
                                         "nocl": [False, True]})
    update_registered_converter(DeepNetRegressor, "DeepNetFastDeepNetRegressor",
                                onnx_export.skl2onnx_shapes, onnx_export.skl2onnx_convert)
