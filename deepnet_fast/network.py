"""``DeepNet``: the training API around the step functions and the epoch kernels.

Data here follow the ecosystem convention, one row per sample: ``X`` has shape
``(n_samples, n_features)``. The network keeps its parameters in one flat vector
(see :mod:`deepnet_fast.params`) inside its training state; ``parameters``
shows them as the usual dict. Training itself is a
:class:`~deepnet_fast.session.TrainingSession`.
"""

import threading
import warnings

import numpy as np

from . import onnx_export
from . import params as flat
from . import reference as R
from ._validation import (
    check_bool,
    check_choice,
    check_dtype,
    check_layer_dims,
    check_real,
    check_sample_weight,
    check_validation_pair,
    check_weight_range,
    shown,
)
from .architecture import Architecture
from .callbacks import check_callbacks
from .config import FitConfig, optimizer_settings
from .engines import ENGINES, predict_output
from .history import History
from .initialization import check_seed, initialize_parameters
from .inputs import check_rows, is_dask, private_rows
from .registry import HIDDEN_ACTIVATIONS, OPTIMIZERS, OUTPUT_HEADS
from .session import TrainingSession
from .state import TrainingState


class DeepNet:
    """A fully connected L-layer network trained by (mini-batch) gradient descent.

    Parameters
    ----------
    layer_dims : sequence of int
        ``[n_features, n1, ..., nL]``.
    hidden_activation : str or sequence of str, default="relu"
        One of ``"relu", "leaky_relu", "tanh", "sigmoid", "identity"`` for every
        hidden layer, or one name per hidden layer.
    output_activation : {"sigmoid", "softmax", "identity", "relu"}, default="sigmoid"
        Also selects the loss: binary cross-entropy, categorical cross-entropy
        or squared error (identity, and relu for non-negative targets; see
        :mod:`deepnet_fast.heads`).
    init : {"he", "xavier", "small"} or dict, default="he"
        Weight initialisation, or explicit initial parameters ``W1, b1, ...``.
    seed : int or None
        Seeds the initial weights, the mini-batch shuffling and the dropout
        masks; an integer in [0, 2**63).
    dtype : {"float64", "float32"}, default="float64"
    backend : {"compiled", "reference"}, default="compiled"
        ``"reference"`` trains through :mod:`deepnet_fast.reference` on exactly
        the same work, for comparison.
    negative_slope : float, default=0.01
        Slope of leaky ReLU for negative inputs (must be >= 0).

    Attributes
    ----------
    parameters : dict
        Copies of ``W1, b1, ..., WL, bL``.
    architecture : Architecture
        Layer sizes, activations, slope and dtype as one value; it and
        ``layer_dims``, ``activations``, ``hidden_activation``,
        ``output_activation``, ``dtype`` and ``negative_slope`` are read-only.
    training_state : TrainingState
        Parameters, optimizer moments, step counter and shuffle stream.
    history_ : History or None
        Record of the last ``fit``.

    Notes
    -----
    One fit at a time: a second ``fit`` or ``partial_fit`` of the same network
    from another thread raises ``RuntimeError`` at once. ``predict`` from
    another thread during a fit is safe and sees the parameters as they are
    at that moment (possibly between two mini-batch updates).
    """

    def __init__(self, layer_dims, hidden_activation="relu", output_activation="sigmoid",
                 init="he", seed=None, dtype="float64", backend="compiled", negative_slope=0.01):
        dims = check_layer_dims(layer_dims)
        hidden = _hidden_activations(hidden_activation, len(dims) - 1)
        output_activation = check_choice(output_activation, "output_activation", OUTPUT_HEADS)
        head = OUTPUT_HEADS[output_activation]
        if dims[-1] < head.min_units:
            raise ValueError(f"output_activation={output_activation!r} needs at least "
                             f"{head.min_units} output units; layer_dims ends with {dims[-1]}")
        self._hidden_activation = (hidden_activation if isinstance(hidden_activation, str)
                                   else tuple(hidden_activation))
        self.init = init
        self.seed = check_seed(seed)
        self.backend = check_choice(backend, "backend", ENGINES)
        self._architecture = Architecture(
            tuple(dims), hidden + (output_activation,),
            check_real(negative_slope, "negative_slope", low=0.0), check_dtype(dtype))
        self.history_ = None
        self._fit_lock = threading.Lock()
        self.reset()

    # ------------------------------------------------------------ the shape
    # One value fixed at construction, read-only: the input checks and the
    # kernels both index by it (another shape is another DeepNet).

    @property
    def architecture(self):
        """The :class:`~deepnet_fast.architecture.Architecture`: layer sizes,
        activations, slope and dtype as one value."""
        return self._architecture

    @property
    def layer_dims(self):
        """``[n0, n1, ..., nL]`` (a copy)."""
        return list(self._architecture.layer_dims)

    @property
    def activations(self):
        """The L activations, hidden layers then output."""
        return self._architecture.activations

    @property
    def hidden_activation(self):
        """The hidden layers' activation(s), as given."""
        return self._hidden_activation

    @property
    def output_activation(self):
        return self._architecture.activations[-1]

    @property
    def dtype(self):
        return self._architecture.dtype

    @property
    def negative_slope(self):
        return self._architecture.negative_slope

    # ------------------------------------------------------------ state

    def reset(self):
        """Draw fresh initial parameters and start a new training state
        (optimizer moments, step counter and shuffle stream)."""
        self._state = self._fresh_state(warn_symmetric=True)

    def _fresh_state(self, warn_symmetric=False):
        # Said once, when the network is made, not again at every cold fit.
        initial = initialize_parameters(self.layer_dims, self.init, self.seed, self.dtype,
                                        warn_symmetric=warn_symmetric)
        return TrainingState(flat.pack(initial, self.layer_dims, self.dtype), self.seed)

    @property
    def parameters(self):
        """dict of copies of ``W1, b1, ..., WL, bL`` (column convention shapes)."""
        return {k: v.copy() for k, v in flat.unpack(self._theta(), self.layer_dims).items()}

    def set_parameters(self, parameters):
        """Replace the parameters.

        Parameters
        ----------
        parameters : dict
            ``W1, b1, ..., WL, bL``: ``W[l]`` of shape ``(n[l], n[l-1])`` and
            ``b[l]`` of shape ``(n[l], 1)``, finite values (cast to the
            network's dtype; the dict is copied).

        Raises
        ------
        TypeError, ValueError
            For another type, a missing, extra or misshapen entry, or a
            non-finite value.
        """
        if not isinstance(parameters, dict):
            raise TypeError(f"parameters must be a dict of arrays W1, b1, ...; got "
                            f"{type(parameters).__name__}")
        checked = initialize_parameters(self.layer_dims, parameters, dtype=self.dtype,
                                        name="parameters")
        flat.pack(checked, self.layer_dims, self.dtype, out=self._theta())

    @property
    def training_state(self):
        """The :class:`~deepnet_fast.state.TrainingState` that ``warm_start``
        and ``partial_fit`` continue: flat parameters, optimizer moments,
        step counter and shuffle stream (read it; change it only between fits)."""
        return self._state

    @property
    def head(self):
        """The :class:`~deepnet_fast.heads.OutputHead` of the output activation."""
        return self.architecture.head

    @property
    def n_layers(self):
        """L, the number of layers with parameters (hidden and output)."""
        return self.architecture.n_layers

    def __repr__(self):
        return (f"DeepNet(layer_dims={self.layer_dims}, hidden_activation={self.hidden_activation!r}, "
                f"output_activation={self.output_activation!r}, dtype='{self.dtype.name}', "
                f"backend={self.backend!r})")

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_fit_lock"]     # locks do not pickle; joblib and dask copy networks
        return state

    def __setstate__(self, state):
        state = dict(state)
        if "_architecture" not in state:          # pickled before the read-only shape
            state["_architecture"] = state.pop("architecture")
            state["_hidden_activation"] = state.pop("hidden_activation")
            for name in ("layer_dims", "activations", "output_activation", "dtype",
                         "negative_slope"):
                state.pop(name, None)
        self.__dict__.update(state)
        self._fit_lock = threading.Lock()

    # ------------------------------------------------------------ inference

    def _rows(self, X, name="X"):
        # Sparse rows stay sparse (SciPy CSR; other formats are refused).
        return check_rows(X, self._architecture.layer_dims[0], self.dtype, name,
                          accept_sparse=True)

    def _targets(self, y, n_samples, name="y"):
        return self.head.encode(y, n_samples, self._architecture.layer_dims[-1], self.dtype,
                                name)

    def _theta(self):
        """The flat parameters, checked: the kernels index them, and the
        training state may have been changed by hand."""
        self._state.check(self.architecture.n_parameters, self.dtype)
        return self._state.theta

    def _output(self, X):
        """A[L] of shape (nL, n_samples) for checked rows."""
        return predict_output(self.architecture, self.backend, self._theta(), X)

    def predict_proba(self, X):
        """Output activations, one row per sample (a dask array for dask input).

        Returns
        -------
        ndarray of shape (n_samples, nL)
            Sigmoid probabilities, softmax class probabilities, or the
            regression outputs.
        """
        if is_dask(X):
            from .distributed import predict_dask
            return predict_dask(self.architecture, self.backend, self._theta(), X,
                                "predict_proba")
        return np.ascontiguousarray(self._output(self._rows(X)).T)

    def predict(self, X):
        """Predictions for ``X`` of shape (n_samples, n_features).

        Returns
        -------
        ndarray
            softmax: class indices, shape (n_samples,); sigmoid: 0/1 of shape
            (n_samples,) for one output unit, else (n_samples, nL); identity and
            relu: the outputs, shape (n_samples,) for one unit, else
            (n_samples, nL).
        """
        if is_dask(X):
            from .distributed import predict_dask
            return predict_dask(self.architecture, self.backend, self._theta(), X,
                                "predict")
        return self.head.decide(self.predict_proba(X))

    def cost(self, X, y):
        """The loss of the current parameters on ``(X, y)`` (no L2 term).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n0)
        y : array-like of shape (n_samples,) or (n_samples, nL)
            Targets as :meth:`fit` takes them.

        Returns
        -------
        float
            The output activation's loss (cross-entropy or ½·squared error),
            averaged over the samples.

        Dask input is scored block by block on the cluster (see
        :func:`deepnet_fast.distributed.score_dask`).
        """
        if is_dask(X) or is_dask(y):
            from .distributed import score_dask
            return score_dask(self.architecture, self.backend, self._theta(), X, y, "cost")
        X = self._rows(X)
        Y = self._targets(y, X.shape[0])
        return R.compute_cost(self._output(X), np.ascontiguousarray(Y.T), self.output_activation)

    def score(self, X, y):
        """Accuracy for classification outputs (exact match for multi-label),
        coefficient of determination R² for regression outputs (identity, relu).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n0)
        y : array-like of shape (n_samples,) or (n_samples, nL)
            Targets as :meth:`fit` takes them.

        Returns
        -------
        float

        Dask input is scored block by block on the cluster (see
        :func:`deepnet_fast.distributed.score_dask`).
        """
        if is_dask(X) or is_dask(y):
            from .distributed import score_dask
            return score_dask(self.architecture, self.backend, self._theta(), X, y, "score")
        X = self._rows(X)
        Y = self._targets(y, X.shape[0])
        return self.head.score(self._output(X).T, Y)

    # ------------------------------------------------------------ training

    def fit(self, X, y, *, epochs=1000, learning_rate=None, batch_size=None, optimizer=None,
            beta=None, beta1=None, beta2=None, epsilon=None, l2=0.0, keep_prob=1.0,
            lr_schedule=None, validation_data=None, validation_split=0.0, early_stopping=False,
            patience=10, min_delta=0.0, shuffle=True, verbose=1, warm_start=False,
            sample_weight=None, class_weight=None, callbacks=None, client=None, workers=None,
            sync_every=1, scale_learning_rate=False):
        """Train the network.

        Parameters
        ----------
        X : array-like or scipy.sparse CSR matrix of shape (n_samples, n_features)
            Sparse rows (``csr_matrix`` or ``csr_array``) are trained on
            without densifying; other sparse formats raise ``TypeError``
            (convert with ``X.tocsr()``); ``predict``, ``predict_proba``, ``score``
            and ``cost`` take the same.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            0/1 labels (sigmoid), class indices, one-hot rows or rows of
            probabilities (softmax), targets (identity), non-negative targets
            (relu).
        epochs : int, default=1000
            Passes over the training data.
        learning_rate : float, optional
            Initial learning rate α (see ``lr_schedule``); 0.0075 by default.
        batch_size : int or None, default=None
            None trains full-batch (one update per epoch, as in the course);
            an int trains on mini-batches of that many samples.
        optimizer : {"gd", "momentum", "rmsprop", "adam"}, optional
            "gd" by default. Another optimizer than the one the state's
            moments belong to starts them (and its step counter) at zero.
        beta : float, optional
            Momentum coefficient; 0.9 by default.
        beta1, beta2, epsilon : float, optional
            Adam's (and RMSprop's ``beta2``, ``epsilon``) coefficients; 0.9,
            0.999 and 1e-8 by default.

            The optimizer's settings (``optimizer``, ``learning_rate``,
            ``beta``, ``beta1``, ``beta2``, ``epsilon``) left at None continue
            the last fit's on a warm start (``warm_start=True``,
            :meth:`partial_fit`, a loaded checkpoint), and take the defaults
            above otherwise.
        l2 : float, default=0.0
            L2 regularisation λ: the cost gains ``λ/(2m) Σ‖W‖²``.
        keep_prob : float, default=1.0
            Inverted-dropout keep probability of hidden units (1 = no dropout).
        lr_schedule : None, str or callable
            ``"constant"``, ``"inverse_time"``, ``"exponential"``, ``"step"``, a
            schedule from :mod:`deepnet_fast.schedules`, or ``f(epoch, α0) -> α``.
        validation_data : tuple (X_val, y_val), optional
        validation_split : float, default=0.0
            Fraction of the training data held out for validation when
            ``validation_data`` is not given: rows drawn from the training
            state's split key, the same rows in every warm fit on the same data.
        early_stopping : bool, default=False
            Stop when the validation cost (the training cost without validation
            data) has not improved by ``min_delta`` for ``patience`` epochs, and
            restore the best parameters (see
            :class:`~deepnet_fast.callbacks.EarlyStopping`).
        patience : int, default=10
        min_delta : float, default=0.0
        shuffle : bool, default=True
            Reshuffle the samples every epoch (mini-batches only).
        verbose : int, default=1
            0 silent, 1 progress bar and about ten cost lines, 2 a line per epoch.
        warm_start : bool, default=False
            Continue from the current parameters, optimizer state, shuffle
            stream, epoch count (``lr_schedule`` continues) and
            ``ReduceLROnPlateau``'s reductions instead of re-initialising.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the training samples: each mini-batch's
            cost and gradient are the weighted mean over its samples
            (``Σ w_j loss_j / Σ w``, with the L2 term divided by ``Σ w``), as
            scikit-learn weighs its MLP. Integer weights equal repeated rows in
            full-batch training; zero weights equal removed rows. The
            validation cost and score stay unweighted. Positive weights must
            be normal numbers of the model's dtype, summing to at most
            ``finfo.max / 1024`` (``ValueError`` otherwise).
        class_weight : "balanced" or dict, optional
            Weights per class (classification outputs with one class per
            sample): ``"balanced"`` gives ``n_samples / (n_classes ·
            count(class))``; a dict maps class indices to weights (others 1).
            Multiplies ``sample_weight``.
        callbacks : sequence of Callback, optional
            See :mod:`deepnet_fast.callbacks`.
        client : dask.distributed.Client, optional
            With dask ``X``/``y``: the cluster to train on (default:
            ``distributed.get_client()``). See :mod:`deepnet_fast.distributed`.
        workers : list of str, optional
            With dask input: train on these workers only.
        sync_every : int, default=1
            With dask input: epochs each worker runs on its shard between two
            parameter averages.
        scale_learning_rate : bool, default=False
            With dask input: multiply the learning rate by the number of workers.

        Returns
        -------
        History

        Raises
        ------
        DivergenceError
            When the cost, a gradient or the parameters become NaN or infinite;
            the network keeps the parameters of the last finite epoch.
        RuntimeError
            When another thread is fitting this network.

        Notes
        -----
        A fit that raises or is interrupted before its first epoch is complete
        (a bad argument, a callback's ``on_train_begin``, a divergence in
        epoch 0, Ctrl-C) leaves the network as it was: parameters, optimizer
        and its state, shuffle stream. Later, an exception other than a
        divergence leaves it at the end of the last complete epoch.
        """
        warm_start = check_bool(warm_start, "warm_start")
        opt = optimizer_settings(
            dict(optimizer=optimizer, learning_rate=learning_rate, beta=beta, beta1=beta1,
                 beta2=beta2, epsilon=epsilon),
            self._state.continued_settings() if warm_start else None)
        config = FitConfig(epochs, opt["learning_rate"], batch_size, opt["optimizer"], opt["beta"],
                           opt["beta1"], opt["beta2"], opt["epsilon"], l2, keep_prob, lr_schedule,
                           validation_split, early_stopping, patience, min_delta, shuffle,
                           verbose)
        callbacks = check_callbacks(callbacks)
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError("this DeepNet is being fitted in another thread; one fit at a "
                               "time per network (predict is safe meanwhile)")
        previous = self._state, self.history_
        try:
            try:
                session = self._session(X, y, config, callbacks, warm_start, validation_data,
                                        sample_weight, class_weight, client, workers,
                                        sync_every, scale_learning_rate)
            except KeyboardInterrupt:
                # Before the session exists nothing has changed: say so, as run() would.
                history = History()
                history.interrupted = True
                warnings.warn("training interrupted during set-up; the model is unchanged",
                              RuntimeWarning, stacklevel=2)
                self.history_ = history
                return history
            self.history_ = session.history
            try:
                history = session.run()
            except BaseException:
                if session.epoch == 0:
                    # Nothing trained: the network is as before the fit (a warm
                    # fit's session has restored the state; a cold fit gives
                    # back the one it replaced), its last history included.
                    self._state, self.history_ = previous
                raise
            if history.interrupted and session.epoch == 0:
                self._state = previous[0]       # likewise, its history the interrupted one
            return history
        finally:
            self._fit_lock.release()

    def _session(self, X, y, config, callbacks, warm_start, validation_data, sample_weight,
                 class_weight, client, workers, sync_every, scale_learning_rate):
        """The training session of one ``fit``; the network takes its state."""
        state = self._state if warm_start else self._fresh_state()
        if is_dask(X) or is_dask(y):
            if sample_weight is not None or class_weight is not None:
                raise ValueError("sample_weight and class_weight are not supported with dask "
                                 "input (train in memory, or weigh by repeating rows)")
            from .distributed import fit_dask
            session = fit_dask(self.architecture, self.backend, state, config, X, y,
                               seed=self.seed, callbacks=callbacks,
                               validation_data=validation_data, client=client, workers=workers,
                               sync_every=sync_every, scale_learning_rate=scale_learning_rate)
        else:
            ignored = [name for name, value, default in (
                ("client", client, None), ("workers", workers, None),
                ("sync_every", sync_every, 1), ("scale_learning_rate", scale_learning_rate, False))
                if value is not default and value != default]
            if ignored:
                verb = "applies" if len(ignored) == 1 else "apply"
                raise ValueError(f"{', '.join(ignored)} {verb} to dask input only; X and y are "
                                 "in memory (pass dask arrays or dataframes to train on a "
                                 "cluster)")
            X = private_rows(self._rows(X))
            Y = self._targets(y, X.shape[0])
            weights = self._weights(Y, sample_weight, class_weight)
            validation = self._validation_rows(validation_data)
            session = TrainingSession.local(self.architecture, self.backend, state, config, X, Y,
                                            validation, seed=self.seed, callbacks=callbacks,
                                            sample_weight=weights)
        self._state = state
        session.model = self
        return session

    def _weights(self, Y, sample_weight, class_weight):
        """The checked weight of each sample (None: unweighted)."""
        w = check_sample_weight(sample_weight, Y.shape[0], self.dtype)
        if class_weight is not None:
            cw = self.head.class_weights(Y, class_weight, self.dtype)
            w = cw if w is None else w * cw
            if not w.max() > 0:
                raise ValueError("class_weight and sample_weight give every sample weight 0")
            w = check_weight_range(w, "sample_weight times class_weight")
        return w

    def _validation_rows(self, validation_data):
        """``(X_val, y_val)`` as checked rows and encoded targets, or None."""
        if validation_data is None:
            return None
        check_validation_pair(validation_data)
        Xv = private_rows(self._rows(validation_data[0], "validation_data[0]"))
        return Xv, self._targets(validation_data[1], Xv.shape[0], "validation_data[1]")

    def partial_fit(self, X, y, *, learning_rate=None, optimizer=None, **kwargs):
        """One pass over ``(X, y)`` as a single batch, continuing from the
        current parameters, optimizer state and shuffle stream (for streaming data).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n0)
        y : array-like of shape (n_samples,) or (n_samples, nL)
        learning_rate : float, optional
        optimizer : {"gd", "momentum", "rmsprop", "adam"}, optional
            As the optimizer's other settings, the last fit's when None (the
            defaults of :meth:`fit` before any).
        **kwargs
            Any other argument of :meth:`fit` but ``epochs``, ``verbose`` and
            ``warm_start``, which are set here (``TypeError``).

        Returns
        -------
        float
            The cost of the batch before the update.
        """
        fixed = sorted({"epochs", "verbose", "warm_start"} & set(kwargs))
        if fixed:
            raise TypeError(f"partial_fit sets {', '.join(fixed)} itself (one pass over the "
                            "data); use fit for other values")
        history = self.fit(X, y, epochs=1, learning_rate=learning_rate, optimizer=optimizer,
                           verbose=0, warm_start=True, **kwargs)
        if history.interrupted:
            return float("nan")
        return history.cost[0]

    # ------------------------------------------------------------ files

    def save(self, path, training_state=False):
        """Write the model to ``path`` (a pickle-free ``.npz``; see
        :mod:`deepnet_fast.serialization`). The write is atomic.

        Parameters
        ----------
        path : str or os.PathLike
        training_state : bool, default=False
            Also write the optimizer's moments and step counter, the shuffle
            stream's position and the last fit's settings: a checkpoint that
            ``load`` followed by ``fit(..., warm_start=True)`` continues exactly
            as if training had never stopped.

        Raises
        ------
        ValueError
            If ``path`` exists and is not a regular file (a device such as
            ``/dev/null``, a FIFO), which the atomic rename would replace.
        IsADirectoryError
            If ``path`` is a directory.
        """
        from .serialization import write_model
        training_state = check_bool(training_state, "training_state")
        record = self._state.to_record() if training_state else None
        write_model(path, self._description(), self.parameters, record)

    def to_onnx(self, path=None, *, classes=None):
        """The network as an ONNX graph (``pip install "deepnet-fast[onnx]"``); see
        :func:`deepnet_fast.onnx_export.to_onnx`. Written to ``path`` when given."""
        return onnx_export.to_onnx(self, path, classes=classes)

    def _description(self):
        return {
            "layer_dims": self.layer_dims,
            "hidden_activation": (self.hidden_activation if isinstance(self.hidden_activation, str)
                                  else list(self.hidden_activation)),
            "output_activation": self.output_activation,
            "dtype": self.dtype.name,
            "negative_slope": self.negative_slope,
            "seed": self.seed,
        }


onnx_export.register(DeepNet, onnx_export.net_plan)


def load(path, backend="compiled"):
    """Read a model written by :meth:`DeepNet.save`.

    Parameters
    ----------
    path : str or os.PathLike
    backend : {"compiled", "reference"}, default="compiled"
        The backend of the returned network (a file describes the model, not
        how it is run).

    Returns
    -------
    DeepNet
        With the training state of a checkpoint when the file holds one
        (``save(path, training_state=True)``).

    Raises
    ------
    ModelFileError
        For a truncated, corrupted, tampered, wrong-version or inconsistent file.
    ValueError
        For a ``backend`` that is not one of the backends.
    FileNotFoundError, IsADirectoryError, PermissionError
        From opening ``path``.
    """
    from .exceptions import ModelFileError
    from .serialization import read_model

    check_choice(backend, "backend", ENGINES)
    meta, arrays = read_model(path)
    training = meta["training"]
    try:
        net = DeepNet(meta["layer_dims"], meta["hidden_activation"], meta["output_activation"],
                      init={k: a for k, a in arrays.items() if k[0] in "Wb"},
                      seed=meta["seed"], dtype=meta["dtype"], backend=backend,
                      negative_slope=meta["negative_slope"])
        if training is not None:
            if training["optimizer"] not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {training['optimizer']!r}")
            sizes = OPTIMIZERS[training["optimizer"]].moment_sizes(net.architecture.n_parameters)
            if (arrays["v"].size, arrays["s"].size) != sizes:
                raise ValueError(f"moments of sizes {arrays['v'].size}, {arrays['s'].size} "
                                 f"do not fit optimizer {training['optimizer']!r}")
            net._state = TrainingState.from_record(net.training_state.theta,
                                                   dict(training, v=arrays["v"], s=arrays["s"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!s} describes an invalid network: {exc}") from None
    return net


def _hidden_activations(hidden_activation, n_layers):
    """One checked name per hidden layer."""
    if isinstance(hidden_activation, str):
        return (check_choice(hidden_activation, "hidden_activation", HIDDEN_ACTIVATIONS),) * (n_layers - 1)
    if not isinstance(hidden_activation, (list, tuple)):
        raise TypeError(f"hidden_activation must be a name from {list(HIDDEN_ACTIVATIONS)} or a "
                        f"list of {n_layers - 1} such names; got {shown(hidden_activation)}")
    hidden = tuple(hidden_activation)
    if len(hidden) != n_layers - 1:
        raise ValueError(f"hidden_activation must be one name or {n_layers - 1} names (one per "
                         f"hidden layer); got {len(hidden)}")
    for i, a in enumerate(hidden):
        check_choice(a, f"hidden_activation[{i}]", HIDDEN_ACTIVATIONS)
    return hidden
