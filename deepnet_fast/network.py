"""``DeepNet``: the training API around the step functions and the epoch kernels.

Data here follow the ecosystem convention, one row per sample: ``X`` has shape
``(n_samples, n_features)``. The network keeps its parameters in one flat vector
(see :mod:`deepnet_fast.params`); ``parameters`` shows them as the usual dict.
"""

import time
import warnings

import numpy as np

from . import params as flat
from . import reference as R
from ._validation import (
    HIDDEN_ACTIVATIONS,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    _shown,
    as_float_array,
    check_activation,
    check_choice,
    check_dtype,
    check_layer_dims,
    check_positive_int,
    check_real,
)
from .engines import ENGINES, kernel_arrays
from .exceptions import DivergenceError
from .history import History
from .initialization import initialize_parameters
from .kernels import training as ktrain
from .schedules import get_schedule, rate_at
from .threads import fit_threads

BACKENDS = tuple(ENGINES)
_PREDICT_CHUNK = 4096


class DeepNet:
    """A fully connected L-layer network trained by (mini-batch) gradient descent.

    Parameters
    ----------
    layer_dims : sequence of int
        ``[n_features, n1, ..., nL]``.
    hidden_activation : str or sequence of str, default="relu"
        One of ``"relu", "leaky_relu", "tanh", "sigmoid", "identity"`` for every
        hidden layer, or one name per hidden layer.
    output_activation : {"sigmoid", "softmax", "identity"}, default="sigmoid"
        Also selects the loss: binary cross-entropy, categorical cross-entropy
        or squared error.
    init : {"he", "xavier", "small"} or dict, default="he"
        Weight initialisation, or explicit initial parameters ``W1, b1, ...``.
    seed : int or None
        Seeds the initial weights and the mini-batch shuffling.
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
    history_ : History or None
        Record of the last ``fit``.
    """

    def __init__(self, layer_dims, hidden_activation="relu", output_activation="sigmoid",
                 init="he", seed=None, dtype="float64", backend="compiled", negative_slope=0.01):
        self.layer_dims = check_layer_dims(layer_dims)
        L = len(self.layer_dims) - 1
        if isinstance(hidden_activation, str):
            hidden = (check_activation(hidden_activation, "hidden_activation", HIDDEN_ACTIVATIONS),) * (L - 1)
        else:
            hidden = tuple(hidden_activation)
            if len(hidden) != L - 1:
                raise ValueError(f"hidden_activation must be one name or {L - 1} names (one per "
                                 f"hidden layer); got {len(hidden)}")
            for i, a in enumerate(hidden):
                check_activation(a, f"hidden_activation[{i}]", HIDDEN_ACTIVATIONS)
        self.hidden_activation = hidden_activation
        self.output_activation = check_activation(output_activation, "output_activation",
                                                  OUTPUT_ACTIVATIONS)
        if output_activation == "softmax" and self.layer_dims[-1] < 2:
            raise ValueError("output_activation='softmax' needs at least 2 output units; "
                             f"layer_dims ends with {self.layer_dims[-1]}")
        self.activations = hidden + (output_activation,)
        self.init = init
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an integer or None; got {_shown(seed)}")
        self.seed = seed
        self.dtype = check_dtype(dtype)
        self.backend = check_choice(backend, "backend", BACKENDS)
        self.negative_slope = check_real(negative_slope, "negative_slope", low=0.0)
        self.history_ = None
        self.reset()

    # ------------------------------------------------------------ state

    def reset(self):
        """Draw fresh initial parameters and clear the optimizer state."""
        initial = initialize_parameters(self.layer_dims, self.init, self.seed, self.dtype)
        self._theta = flat.pack(initial, self.layer_dims, self.dtype)
        self._v = np.zeros(0, self.dtype)
        self._s = np.zeros(0, self.dtype)
        self._t = 0
        self._optimizer = None

    @property
    def parameters(self):
        """dict of copies of ``W1, b1, ..., WL, bL`` (column convention shapes)."""
        return {k: v.copy() for k, v in flat.unpack(self._theta, self.layer_dims).items()}

    def set_parameters(self, parameters):
        """Replace the parameters with a dict ``W1, b1, ...`` of matching shapes."""
        checked = initialize_parameters(self.layer_dims, parameters, dtype=self.dtype)
        flat.pack(checked, self.layer_dims, self.dtype, out=self._theta)

    @property
    def n_layers(self):
        return len(self.layer_dims) - 1

    def __repr__(self):
        return (f"DeepNet(layer_dims={self.layer_dims}, hidden_activation={self.hidden_activation!r}, "
                f"output_activation={self.output_activation!r}, dtype='{self.dtype.name}', "
                f"backend={self.backend!r})")

    # ------------------------------------------------------------ data

    def _check_X(self, X, name="X"):
        X = as_float_array(X, name, ndim=2, dtype=self.dtype, finite=True)
        if X.shape[0] == 0:
            raise ValueError(f"{name} must contain at least one sample; got shape {X.shape}")
        if X.shape[1] != self.layer_dims[0]:
            raise ValueError(f"{name} must have {self.layer_dims[0]} features (columns) to match "
                             f"layer_dims[0]; got shape {X.shape}")
        return np.ascontiguousarray(X)

    def _encode_y(self, y, n_samples, name="y"):
        """Targets as a C-contiguous (n_samples, nL) array of the network's dtype."""
        nL = self.layer_dims[-1]
        out = self.output_activation
        y_arr = np.asarray(y)
        if y_arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric; got dtype {y_arr.dtype}"
                            + (" (use DeepNetClassifier for string labels)" if y_arr.dtype.kind in "UO" else ""))
        if y_arr.shape[:1] != (n_samples,):
            raise ValueError(f"{name} must have {n_samples} rows, one per sample of X; "
                             f"got shape {y_arr.shape}")
        if y_arr.ndim == 1 and out == "softmax":
            if y_arr.dtype.kind == "f" and not np.all(np.isfinite(y_arr)):
                raise ValueError(f"{name} must not contain NaN or infinity")
            if y_arr.dtype.kind == "f" and np.any(y_arr != np.round(y_arr)):
                raise ValueError(f"{name} must hold integer class labels 0..{nL - 1} for a softmax output")
            labels = y_arr.astype(np.int64)
            if labels.min() < 0 or labels.max() >= nL:
                raise ValueError(f"{name} must hold class labels in 0..{nL - 1} (the softmax output has "
                                 f"{nL} units); got labels from {labels.min()} to {labels.max()}")
            Y = np.zeros((n_samples, nL), dtype=self.dtype)
            Y[np.arange(n_samples), labels] = 1
            return Y
        if y_arr.ndim == 1:
            y_arr = y_arr.reshape(-1, 1)
        if y_arr.ndim != 2 or y_arr.shape[1] != nL:
            raise ValueError(f"{name} must have shape ({n_samples},) or ({n_samples}, {nL}) for "
                             f"{nL} output unit(s); got {np.shape(y)}")
        Y = as_float_array(y_arr, name, ndim=2, dtype=self.dtype, finite=True)
        if out in ("sigmoid", "softmax") and (Y.min() < 0 or Y.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] for a {out} output; got values from "
                             f"{Y.min():g} to {Y.max():g}")
        return np.ascontiguousarray(Y)

    # ------------------------------------------------------------ inference

    def _output(self, X):
        """A[L] of shape (nL, n_samples)."""
        if self.backend == "compiled":
            dims, codes, offW, offb = kernel_arrays(self.layer_dims, self.activations)
            args = (X, dims, codes, self.dtype.type(self.negative_slope), self._theta, offW,
                    offb, _PREDICT_CHUNK)
            # The same rule as fit, with all the samples as one batch: large
            # predictions split their samples between the threads.
            threads = fit_threads(self.layer_dims, X.shape[0], self.backend)
            if threads.single:
                return ktrain.predict_output(*args)
            from .kernels.training_threaded import predict_output_threaded
            with threads:
                return predict_output_threaded(*args, threads.kernel_threads)
        AL, _ = R.forward(X.T, flat.unpack(self._theta, self.layer_dims), self.activations,
                          negative_slope=self.negative_slope)
        return AL

    def predict_proba(self, X):
        """Output activations, one row per sample (a dask array for dask input).

        Returns
        -------
        ndarray of shape (n_samples, nL)
            Sigmoid probabilities, softmax class probabilities, or the
            regression outputs.
        """
        if _is_dask(X):
            from .distributed import predict_dask
            return predict_dask(self, X, "predict_proba")
        return np.ascontiguousarray(self._output(self._check_X(X)).T)

    def predict(self, X):
        """Predictions for ``X`` of shape (n_samples, n_features).

        Returns
        -------
        ndarray
            softmax: class indices, shape (n_samples,); sigmoid: 0/1 of shape
            (n_samples,) for one output unit, else (n_samples, nL); identity: the
            outputs, shape (n_samples,) for one unit, else (n_samples, nL).
        """
        if _is_dask(X):
            from .distributed import predict_dask
            return predict_dask(self, X, "predict")
        P = self.predict_proba(X)
        if self.output_activation == "softmax":
            return np.argmax(P, axis=1)
        if self.output_activation == "sigmoid":
            P = (P > 0.5).astype(np.int64)
        return P[:, 0] if P.shape[1] == 1 else P

    def cost(self, X, y):
        """The loss of the current parameters on ``(X, y)`` (no L2 term).

        Dask input is scored block by block on the cluster (see
        :func:`deepnet_fast.distributed.score_dask`).
        """
        if _is_dask(X) or _is_dask(y):
            from .distributed import score_dask
            return score_dask(self, X, y, "cost")
        X = self._check_X(X)
        Y = self._encode_y(y, X.shape[0])
        return R.compute_cost(self._output(X), np.ascontiguousarray(Y.T), self.output_activation)

    def score(self, X, y):
        """Accuracy for classification outputs (exact match for multi-label),
        coefficient of determination R² for the identity output.

        Dask input is scored block by block on the cluster (see
        :func:`deepnet_fast.distributed.score_dask`).
        """
        if _is_dask(X) or _is_dask(y):
            from .distributed import score_dask
            return score_dask(self, X, y, "score")
        X = self._check_X(X)
        Y = self._encode_y(y, X.shape[0])
        P = self._output(X).T
        return _score(P, Y, self.output_activation)

    # ------------------------------------------------------------ training

    def fit(self, X, y, *, epochs=1000, learning_rate=0.0075, batch_size=None, optimizer="gd",
            beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8, l2=0.0, keep_prob=1.0,
            lr_schedule=None, validation_data=None, validation_split=0.0, early_stopping=False,
            patience=10, min_delta=0.0, shuffle=True, verbose=1, warm_start=False,
            client=None, workers=None, sync_every=1, scale_learning_rate=False):
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            0/1 labels (sigmoid), class indices or one-hot rows (softmax),
            targets (identity).
        epochs : int, default=1000
            Passes over the training data.
        learning_rate : float, default=0.0075
            Initial learning rate α (see ``lr_schedule``).
        batch_size : int or None, default=None
            None trains full-batch (one update per epoch, as in the course);
            an int trains on mini-batches of that many samples.
        optimizer : {"gd", "momentum", "rmsprop", "adam"}, default="gd"
        beta : float, default=0.9
            Momentum coefficient.
        beta1, beta2, epsilon : float
            Adam's (and RMSprop's ``beta2``, ``epsilon``) coefficients.
        l2 : float, default=0.0
            L2 regularisation λ: the cost gains ``λ/(2m) Σ‖W‖²``.
        keep_prob : float, default=1.0
            Inverted-dropout keep probability of hidden units (1 = no dropout).
        lr_schedule : None, str or callable
            ``"constant"``, ``"inverse_time"``, ``"exponential"``, ``"step"``, a
            schedule from :mod:`deepnet_fast.schedules`, or ``f(epoch, α0) -> α``.
        validation_data : tuple (X_val, y_val), optional
        validation_split : float, default=0.0
            Fraction of the (shuffled, seeded) training data held out for
            validation when ``validation_data`` is not given.
        early_stopping : bool, default=False
            Stop when the validation cost (the training cost without validation
            data) has not improved by ``min_delta`` for ``patience`` epochs, and
            restore the best parameters.
        patience : int, default=10
        min_delta : float, default=0.0
        shuffle : bool, default=True
            Reshuffle the samples every epoch (mini-batches only).
        verbose : int, default=1
            0 silent, 1 progress bar and about ten cost lines, 2 a line per epoch.
        warm_start : bool, default=False
            Continue from the current parameters and optimizer state instead
            of re-initialising.
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
            When the cost or a gradient becomes NaN or infinite; the network
            keeps the parameters of the last finite epoch.
        """
        if _is_dask(X) or _is_dask(y):
            from .distributed import fit_dask
            return fit_dask(self, X, y, client=client, workers=workers, sync_every=sync_every,
                            scale_learning_rate=scale_learning_rate, epochs=epochs,
                            learning_rate=learning_rate, batch_size=batch_size,
                            optimizer=optimizer, beta=beta, beta1=beta1, beta2=beta2,
                            epsilon=epsilon, l2=l2, keep_prob=keep_prob, lr_schedule=lr_schedule,
                            validation_data=validation_data, validation_split=validation_split,
                            early_stopping=early_stopping, patience=patience, min_delta=min_delta,
                            shuffle=shuffle, verbose=verbose, warm_start=warm_start)
        args = check_fit_args(epochs, learning_rate, optimizer, beta, beta1, beta2, epsilon, l2,
                              keep_prob, lr_schedule, validation_split, patience, min_delta, verbose)
        epochs, lr0, schedule = args["epochs"], args["lr0"], args["schedule"]
        beta, beta1, beta2, epsilon = args["beta"], args["beta1"], args["beta2"], args["epsilon"]
        l2, keep_prob, validation_split = args["l2"], args["keep_prob"], args["validation_split"]
        patience, min_delta, verbose = args["patience"], args["min_delta"], args["verbose"]

        X = self._check_X(X)
        Y = self._encode_y(y, X.shape[0])
        rng = np.random.default_rng(None if self.seed is None else [int(self.seed), 1])
        Xv = Yv = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a tuple (X_val, y_val)")
            Xv = self._check_X(validation_data[0], "validation_data[0]")
            Yv = self._encode_y(validation_data[1], Xv.shape[0], "validation_data[1]")
        elif validation_split > 0:
            n_val = int(round(validation_split * X.shape[0]))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves {n_val} validation "
                                 f"samples out of {X.shape[0]}; need at least one on each side")
            perm = rng.permutation(X.shape[0])
            Xv, Yv = X[perm[:n_val]], Y[perm[:n_val]]
            X, Y = np.ascontiguousarray(X[perm[n_val:]]), np.ascontiguousarray(Y[perm[n_val:]])

        m = X.shape[0]
        if batch_size is None:
            batch = m
        else:
            batch = check_positive_int(batch_size, "batch_size")
            if batch > m:
                raise ValueError(f"batch_size must be between 1 and the number of training samples "
                                 f"({m}); got {batch}")
        if not warm_start:
            self.reset()
        if self._optimizer != optimizer:
            size = self._theta.size
            self._v = np.zeros(size if optimizer in ("momentum", "adam") else 0, self.dtype)
            self._s = np.zeros(size if optimizer in ("rmsprop", "adam") else 0, self.dtype)
            self._t = 0
            self._optimizer = optimizer

        dropout_seed = int(self.seed) if self.seed is not None else int(rng.integers(2**62))
        threads = fit_threads(self.layer_dims, batch, self.backend)
        engine = ENGINES[self.backend](
            self.layer_dims, self.activations, self.negative_slope, self.dtype, batch, m,
            optimizer, l2, beta, beta1, beta2, epsilon, keep_prob, dropout_seed,
            threads=threads.kernel_threads)
        weights = engine.batch_sizes() / m
        history = History()
        self.history_ = history
        progress = _Progress(epochs, verbose)
        snapshot = self._snapshot()
        best = (np.inf, None, None)
        waited = 0
        no_order = np.empty(0, np.int64)
        threads.__enter__()
        try:
            for epoch in range(epochs):
                start = time.perf_counter()
                lr = rate_at(schedule, epoch, lr0)
                order = rng.permutation(m) if (shuffle and batch < m) else no_order
                costs, failed = engine.epoch(self._theta, self._v, self._s, self._t, X, Y,
                                             order, lr)
                if failed >= 0:
                    self._restore(snapshot)
                    raise DivergenceError(epoch, learning_rate=lr)
                self._t += engine.n_batches
                cost = float(costs @ weights)
                val_cost, val_metric = self._validation(Xv, Yv)
                history._append(cost, lr, time.perf_counter() - start, val_cost, **val_metric)
                snapshot = self._snapshot(snapshot)
                progress.update(epoch, cost, val_cost)
                if early_stopping:
                    monitored = cost if val_cost is None else val_cost
                    if monitored < best[0] - min_delta:
                        best, waited = (monitored, epoch, self._snapshot()), 0
                    else:
                        waited += 1
                        if waited >= patience:
                            history.stopped_epoch = epoch
                            break
        except KeyboardInterrupt:
            # The epoch in flight may have updated part of the parameters: go
            # back to the end of the last completed epoch.
            self._restore(snapshot)
            history._truncate(len(history.cost))
            history.interrupted = True
            warnings.warn(f"training interrupted after {len(history.cost)} complete epochs; "
                          "the model holds the parameters of the last complete epoch",
                          RuntimeWarning, stacklevel=2)
        finally:
            threads.__exit__(None, None, None)
            progress.close()
        if early_stopping and best[2] is not None:
            self._restore(best[2])
            history.best_epoch = best[1]
        return history

    def _validation(self, Xv, Yv):
        """Validation cost and ``{"val_accuracy" or "val_r2": value}`` (None without data)."""
        name = "val_r2" if self.output_activation == "identity" else "val_accuracy"
        if Xv is None:
            return None, {name: None}
        Pv = self._output(Xv)
        cost = R.compute_cost(Pv, np.ascontiguousarray(Yv.T), self.output_activation)
        return cost, {name: _score(Pv.T, Yv, self.output_activation)}

    def partial_fit(self, X, y, *, learning_rate=0.0075, optimizer="gd", **kwargs):
        """One pass over ``(X, y)`` as a single batch, continuing from the
        current parameters and optimizer state (for streaming data).

        Returns
        -------
        float
            The cost of the batch before the update.
        """
        history = self.fit(X, y, epochs=1, learning_rate=learning_rate, optimizer=optimizer,
                           verbose=0, warm_start=True, **kwargs)
        return history.cost[0]

    def _snapshot(self, into=None):
        if into is None:
            return (self._theta.copy(), self._v.copy(), self._s.copy(), self._t)
        np.copyto(into[0], self._theta)
        np.copyto(into[1], self._v)
        np.copyto(into[2], self._s)
        return into[:3] + (self._t,)

    def _restore(self, snapshot):
        np.copyto(self._theta, snapshot[0])
        np.copyto(self._v, snapshot[1])
        np.copyto(self._s, snapshot[2])
        self._t = snapshot[3]

    # ------------------------------------------------------------ files

    def save(self, path):
        """Write the model to ``path`` (a pickle-free ``.npz``; see
        :mod:`deepnet_fast.serialization`). The write is atomic."""
        from .serialization import save_model
        save_model(self, path)


def check_fit_args(epochs, learning_rate, optimizer, beta, beta1, beta2, epsilon, l2, keep_prob,
                   lr_schedule, validation_split, patience, min_delta, verbose):
    """Validate the hyperparameters of ``fit`` (shared with the dask trainer)."""
    return dict(
        epochs=check_positive_int(epochs, "epochs"),
        lr0=check_real(learning_rate, "learning_rate", low=0.0, low_open=True),
        optimizer=check_choice(optimizer, "optimizer", OPTIMIZERS),
        beta=check_real(beta, "beta", low=0.0, high=1.0, high_open=True),
        beta1=check_real(beta1, "beta1", low=0.0, high=1.0, high_open=True),
        beta2=check_real(beta2, "beta2", low=0.0, high=1.0, high_open=True),
        epsilon=check_real(epsilon, "epsilon", low=0.0, low_open=True),
        l2=check_real(l2, "l2", low=0.0),
        keep_prob=check_real(keep_prob, "keep_prob", low=0.0, low_open=True, high=1.0),
        schedule=get_schedule(lr_schedule),
        validation_split=check_real(validation_split, "validation_split", low=0.0, high=1.0,
                                    high_open=True),
        patience=check_positive_int(patience, "patience"),
        min_delta=check_real(min_delta, "min_delta", low=0.0),
        verbose=check_positive_int(verbose, "verbose", minimum=0),
    )


def _is_dask(obj):
    # Checked by module name so that dask is never imported for in-memory data.
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr")


def _score(P, Y, output_activation):
    """P, Y of shape (n_samples, nL)."""
    if output_activation == "softmax":
        return float(np.mean(np.argmax(P, axis=1) == np.argmax(Y, axis=1)))
    if output_activation == "sigmoid":
        return float(np.mean(np.all((P > 0.5) == (Y > 0.5), axis=1)))
    ss_res = np.sum((Y - P) ** 2, axis=0, dtype=np.float64)
    ss_tot = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
    return float(np.mean(r2))


class _Progress:
    """A tqdm bar (when tqdm is installed) plus about ten cost lines."""

    def __init__(self, epochs, verbose):
        self.epochs, self.verbose = epochs, verbose
        self.every = 1 if verbose >= 2 else max(1, epochs // 10)
        self.bar = None
        if verbose == 1 and epochs > 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                # disable=None: no bar when stderr is not a terminal (CI logs, pipes).
                self.bar = tqdm(total=epochs, unit="epoch", leave=False, mininterval=0.25,
                                disable=None)

    def update(self, epoch, cost, val_cost, label=None):
        """``epoch`` counts the bar's steps; ``label`` names it in the line."""
        if self.verbose == 0:
            return
        if self.bar is not None:
            self.bar.update(1)
        if epoch % self.every == 0 or epoch == self.epochs - 1:
            line = f"Cost after {label or f'epoch {epoch}'}: {cost:.6f}"
            if val_cost is not None:
                line += f"  validation cost: {val_cost:.6f}"
            if self.bar is not None:
                self.bar.write(line)
            else:
                print(line, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
