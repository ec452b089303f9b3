"""Callbacks: code that a training session calls around its epochs.

A callback implements any of (a missing hook is skipped)

- ``on_train_begin(session)``: before the first epoch; ``session`` is the
  :class:`~deepnet_fast.session.TrainingSession` (its ``history``, ``state``,
  ``snapshot()`` and ``restore()`` are public);
- ``on_epoch_end(epoch, logs) -> bool``: after each epoch (each round of
  distributed training), with ``logs`` holding ``cost``, the epoch's training
  ``accuracy`` or ``r2``, ``learning_rate``, ``time`` and, with validation
  data, ``val_cost`` and ``val_accuracy`` or ``val_r2``; returning True stops
  training after this epoch;
- ``on_train_end(session)``: after the last epoch, also after an interrupt or
  a :class:`~deepnet_fast.exceptions.DivergenceError` (then before it reaches
  the caller), for every callback whose ``on_train_begin`` ran.

``EarlyStopping`` and ``ReduceLROnPlateau`` start each fit afresh (their
counters and best value), as Keras's do; ``ModelCheckpoint`` keeps its best
value across the fits it is passed to, so a later fit saves only a better one.

The epoch kernel still runs one call per epoch; with no callbacks nothing
is called at all. The built-ins are those Keras users know:
:class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`ReduceLROnPlateau`
and :class:`CSVLogger`.
"""

import csv
import math
import os
import re
import string

import numpy as np

from ._validation import check_bool, check_positive_int, check_real, shown
from .registry import OUTPUT_HEADS


class Callback:
    """Base class with no-op hooks (see the module docstring)."""

    def on_train_begin(self, session):
        pass

    def on_epoch_end(self, epoch, logs):
        return False

    def on_train_end(self, session):
        pass


# Quantities where larger is better (the output heads' scores); every other
# monitored key is a cost.
_HIGHER_IS_BETTER = tuple(sorted({head.score_name for head in OUTPUT_HEADS.values()}))


#: The keys of the epoch logs (and ``epoch``), which ModelCheckpoint's path may name.
LOG_FIELDS = ("epoch", "cost", "learning_rate", "time", "val_cost",
              *_HIGHER_IS_BETTER, *(f"val_{name}" for name in _HIGHER_IS_BETTER))


#: The hooks a training session calls on every callback.
HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")


def check_callbacks(callbacks, name="callbacks"):
    """``callbacks`` as a list: None, or a sequence of objects with at least
    one of the hooks of :class:`Callback` (a subclass, or any object that has
    some of them).

    Raises
    ------
    TypeError
        Naming the argument, or the element that has none of the hooks.
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"{name} must be a sequence of Callback objects; got "
                        f"{type(callbacks).__name__}")
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, hook, None)) for hook in HOOKS):
            raise TypeError(f"{name}[{i}] must be a Callback (deepnet_fast.callbacks); "
                            f"{type(cb).__name__} has none of {', '.join(HOOKS)}")
    return callbacks


def hooks(callbacks, hook):
    """The bound ``hook`` methods of those ``callbacks`` that have it, in order."""
    found = (getattr(cb, hook, None) for cb in callbacks)
    return [method for method in found if callable(method)]


class _Monitor:
    """One monitored quantity of the epoch logs: its best value so far, and
    whether an epoch improved on it by more than ``min_delta`` (the one rule of
    improvement that every built-in callback uses).

    ``monitor="auto"`` watches ``val_cost`` when there is validation data,
    else ``cost``. Costs must fall, accuracy and R² rise.
    """

    def __init__(self, monitor="auto", min_delta=0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be 'auto' or a key of the epoch logs such as "
                            f"'val_cost'; got {shown(monitor)}")
        self.monitor = monitor
        self.min_delta = check_real(min_delta, "min_delta", low=0.0)
        self.best = None

    def key(self, logs):
        if self.monitor != "auto":
            if logs.get(self.monitor) is None:
                raise ValueError(f"{self.monitor!r} is monitored but the epoch logs do not hold "
                                 f"it; they hold {sorted(k for k in logs if logs[k] is not None)}")
            return self.monitor
        return "val_cost" if logs.get("val_cost") is not None else "cost"

    def update(self, logs):
        """``(improved, is_best)`` of this epoch; the best value follows."""
        key = self.key(logs)
        value = float(logs[key])
        if self.best is None:
            self.best = value
            return True, True
        gain = (value - self.best) if key.endswith(_HIGHER_IS_BETTER) else (self.best - value)
        if gain > 0:
            self.best = value
        return gain > self.min_delta, gain > 0


def _patience(value, name="patience"):
    """An integer >= 1, or infinity: never stop (scikit-learn's ``n_iter_no_change=np.inf``)."""
    if isinstance(value, float) and value == math.inf:
        return value
    return check_positive_int(value, name)


def _path(path, name="path", fields=False):
    """``path`` through ``os.fspath``; with ``fields`` (``{epoch}`` to format)
    it must be a str."""
    kinds = "str or os.PathLike" if fields else "str, bytes or os.PathLike"
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name} must be a file name ({kinds}); got "
                        f"{type(path).__name__}") from None
    if fields and not isinstance(path, str):
        raise TypeError(f"{name} must be a file name ({kinds}); got {type(path).__name__}")
    return path


def _check_fields(path):
    """The ``{field}``s of a checkpoint path name keys of the epoch logs."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(path) if name is not None]
    except ValueError as exc:
        raise ValueError(f"path {path!r} is not a valid format string ({exc}); write braces "
                         "as {{ and }}") from None
    for name in names:
        key = re.split(r"[.\[]", name, maxsplit=1)[0]
        if key not in LOG_FIELDS:
            raise ValueError(f"path {path!r} names {{{name}}}, which is not one of the epoch's "
                             f"fields {list(LOG_FIELDS)}")


class EarlyStopping(Callback):
    """Stop when a monitored quantity has stopped improving.

    The one early-stopping rule of the library: ``DeepNet.fit(early_stopping=True)``
    uses it with ``monitor="auto"``, and the scikit-learn estimators with
    their ``tol`` and ``n_iter_no_change``. As scikit-learn's rule: an epoch
    *improves* when it beats the best value so far by more than
    ``min_delta``; training stops after ``patience`` epochs in a row without
    improvement; the best value is the best seen, and with ``restore_best``
    the network ends with the parameters (and optimizer state) of the epoch
    that reached it, unless the fit ends by Ctrl-C, a divergence or an error
    (it then keeps its last complete epoch).

    Parameters
    ----------
    monitor : str, default="auto"
        A key of the epoch logs (``"cost"``, ``"val_cost"``, ``"val_accuracy"``,
        ``"val_r2"``, ...); ``"auto"`` watches ``val_cost`` when there is
        validation data, else ``cost``. Costs must fall, accuracy and R² rise.
    patience : int >= 1 or inf, default=10
    min_delta : float >= 0, default=0.0
    restore_best : bool, default=True
    restart : bool, default=True
        Start each fit afresh (forget the best value and the count, as
        Keras does). False continues them across fits: scikit-learn's
        ``partial_fit`` counts ``n_iter_no_change`` over its calls so.

    Raises
    ------
    TypeError, ValueError
        For an argument out of its range, named in the message.

    Attributes
    ----------
    best : float
        Best monitored value so far.
    best_epoch : int or None
    stopped_epoch : int or None
    wait : int
        Epochs since the last improvement.
    """

    def __init__(self, monitor="auto", patience=10, min_delta=0.0, restore_best=True, *,
                 restart=True):
        self.monitor = monitor
        self.patience = _patience(patience)
        self.min_delta = min_delta
        self.restore_best = check_bool(restore_best, "restore_best")
        self.restart = check_bool(restart, "restart")
        self.reset()        # checks monitor and min_delta

    def reset(self):
        """Forget the best value (a new fit)."""
        self._watch = _Monitor(self.monitor, self.min_delta)
        self.best_epoch = self.stopped_epoch = None
        self.wait = 0
        self._session = self._best_state = None

    @property
    def best(self):
        return self._watch.best

    def on_train_begin(self, session):
        if self.restart:
            self.reset()
        # The record (best, wait) may continue; a stop belongs to the fit it ended.
        self.stopped_epoch = None
        self._session = session

    def on_epoch_end(self, epoch, logs):
        improved, is_best = self._watch.update(logs)
        if is_best:
            self.best_epoch = epoch
            if self.restore_best and self._session is not None:
                self._best_state = self._session.snapshot(self._best_state)
        self.wait = 0 if improved else self.wait + 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, session):
        history = session.history
        if self.stopped_epoch is not None:
            history.stopped_epoch = self.stopped_epoch
        # Not after an interrupt, a divergence or an error: the model then keeps
        # the last complete, finite epoch, as they promise.
        if (self.restore_best and self._best_state is not None and not history.interrupted
                and not session.diverged and not session.failed):
            session.restore(self._best_state, stream=False)
            history.best_epoch = self.best_epoch
        # Keep the record (best, wait), not the session and its data.
        self._session = self._best_state = None


class ModelCheckpoint(Callback):
    """Save the network during training, through the safe model files.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; ``{epoch}`` in it is replaced by the epoch number
        (one file per save) and ``{cost:.4f}``-style fields by the logs.
    monitor : str, default="auto"
        See :class:`EarlyStopping`.
    save_best_only : bool, default=False
        Save only when the monitored value is the best so far; otherwise
        every ``every`` epochs.
    every : int >= 1, default=1
    training_state : bool, default=True
        Include the optimizer state and shuffle position, so that
        ``load(path)`` and ``fit(..., warm_start=True)`` resume exactly.

    Raises
    ------
    TypeError, ValueError
        For an argument out of its range, named in the message.

    Attributes
    ----------
    saved : list of str
        The files written, in order.
    """

    def __init__(self, path, monitor="auto", save_best_only=False, every=1, training_state=True):
        self.path = _path(path, fields=True)
        _check_fields(self.path)
        self.save_best_only = check_bool(save_best_only, "save_best_only")
        self.every = check_positive_int(every, "every")
        self.training_state = check_bool(training_state, "training_state")
        self._watch = _Monitor(monitor)
        self.saved = []
        self._session = None

    def on_train_begin(self, session):
        # Before training, not at the first save: a missing folder.
        folder = os.path.dirname(self.path)
        if folder and "{" not in folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"ModelCheckpoint's path {self.path!r} is in a folder that "
                                    "does not exist")
        self._session = session

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            due = self._watch.update(logs)[1]
        else:
            due = (epoch + 1) % self.every == 0
        if due:
            try:
                path = self.path.format(epoch=epoch, **{k: v for k, v in logs.items()
                                                        if v is not None})
            except KeyError as exc:
                raise ValueError(f"ModelCheckpoint's path {self.path!r} names {{{exc.args[0]}}}, "
                                 "which this fit's logs do not hold (validation fields need "
                                 "validation data)") from None
            self._session.model.save(path, training_state=self.training_state)
            self.saved.append(path)
        return False

    def on_train_end(self, session):
        self._session = None


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when the monitored value has
    not improved for ``patience`` epochs (on top of any ``lr_schedule``).

    Parameters
    ----------
    monitor : str, default="auto"
    factor : float in (0, 1), default=0.1
    patience : int >= 1 or inf, default=10
    min_delta : float >= 0, default=0.0
    cooldown : int >= 0, default=0
        Epochs to wait after a reduction before counting again.
    min_lr : float >= 0, default=0.0
        The rate is never reduced below this (nor below the smallest normal
        number of the model's dtype).

    Raises
    ------
    TypeError, ValueError
        For an argument out of its range, named in the message.
    """

    def __init__(self, monitor="auto", factor=0.1, patience=10, min_delta=0.0, cooldown=0,
                 min_lr=0.0):
        self.factor = check_real(factor, "factor", low=0.0, high=1.0, low_open=True,
                                 high_open=True)
        self.patience = _patience(patience)
        self.cooldown = check_positive_int(cooldown, "cooldown", minimum=0)
        self.min_lr = check_real(min_lr, "min_lr", low=0.0)
        self.monitor, self.min_delta = monitor, min_delta
        self.reset()        # checks monitor and min_delta

    def reset(self):
        """Forget the best value and the counters (a new fit)."""
        self._watch = _Monitor(self.monitor, self.min_delta)
        self.wait = self._cooling = 0
        self._session = None

    def on_train_begin(self, session):
        self.reset()
        self._session = session

    def on_epoch_end(self, epoch, logs):
        improved, _ = self._watch.update(logs)
        if self._cooling > 0:
            self._cooling -= 1
            self.wait = 0
            return False
        self.wait = 0 if improved else self.wait + 1
        if self.wait >= self.patience:
            rate = logs["learning_rate"]
            # Never down to 0 (min_lr=0): the smallest normal number of the
            # model's dtype is as low as a rate goes.
            floor = max(self.min_lr, float(np.finfo(self._session.arch.dtype).tiny))
            new_rate = max(rate * self.factor, floor)
            if rate > 0 and new_rate < rate:
                self._session.lr_scale *= new_rate / rate
            self.wait, self._cooling = 0, self.cooldown
        return False

    def on_train_end(self, session):
        self._session = None


class CSVLogger(Callback):
    """Write each epoch's logs to a CSV file (header ``epoch`` then the log keys).

    Parameters
    ----------
    path : str or os.PathLike
    append : bool, default=False
        Add to an existing file (without a second header) instead of replacing it.

    Raises
    ------
    TypeError
        For a ``path`` that is not a file name.
    """

    def __init__(self, path, append=False):
        self.path, self.append = _path(path), check_bool(append, "append")
        self._file = self._writer = None

    def on_train_begin(self, session):
        exists = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._header = None if not exists else False

    def on_epoch_end(self, epoch, logs):
        row = {"epoch": epoch, **{k: ("" if v is None else v) for k, v in logs.items()}}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row))
            if self._header is None:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()
        return False

    def on_train_end(self, session):
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None
