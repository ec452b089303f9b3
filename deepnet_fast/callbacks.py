"""Callbacks: code that a training session calls around its epochs.

A callback implements any of

- ``on_train_begin(session)``: before the first epoch; ``session`` is the
  :class:`~deepnet_fast.session.TrainingSession` (its ``history``, ``state``,
  ``snapshot()`` and ``restore()`` are public);
- ``on_epoch_end(epoch, logs) -> bool``: after each epoch (each round of
  distributed training), with ``logs`` holding ``cost``, ``learning_rate``,
  ``time`` and, with validation data, ``val_cost`` and ``val_accuracy`` or
  ``val_r2``; returning True stops training after this epoch;
- ``on_train_end(session)``: after the last epoch, also after an interrupt.

The epoch kernel still runs one call per epoch; with no callbacks nothing
is called at all.
"""

import numpy as np


class Callback:
    """Base class with no-op hooks (see the module docstring)."""

    def on_train_begin(self, session):
        pass

    def on_epoch_end(self, epoch, logs):
        return False

    def on_train_end(self, session):
        pass


# Quantities where larger is better; every other monitored key is a cost.
_HIGHER_IS_BETTER = ("accuracy", "r2")


class EarlyStopping(Callback):
    """Stop when a monitored quantity has stopped improving.

    The one early-stopping rule of the library: ``DeepNet.fit(early_stopping=True)``
    uses it with ``monitor="auto"``, and the scikit-learn estimators with
    their ``tol`` and ``n_iter_no_change``. As scikit-learn's rule: an epoch
    *improves* when it beats the best value so far by more than
    ``min_delta``; training stops after ``patience`` epochs in a row without
    improvement; the best value is the best seen, and with ``restore_best``
    the network ends with the parameters (and optimizer state) of the epoch
    that reached it.

    Parameters
    ----------
    monitor : str, default="auto"
        A key of the epoch logs (``"cost"``, ``"val_cost"``, ``"val_accuracy"``,
        ``"val_r2"``, ...); ``"auto"`` watches ``val_cost`` when there is
        validation data, else ``cost``. Costs must fall, accuracy and R² rise.
    patience : int, default=10
    min_delta : float, default=0.0
    restore_best : bool, default=True

    Attributes
    ----------
    best : float
        Best monitored value so far.
    best_epoch : int or None
    stopped_epoch : int or None
    wait : int
        Epochs since the last improvement.
    """

    def __init__(self, monitor="auto", patience=10, min_delta=0.0, restore_best=True):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.reset()

    def reset(self):
        """Forget the best value (a new fit)."""
        self.best = None
        self.best_epoch = self.stopped_epoch = None
        self.wait = 0
        self._session = self._best_state = None

    def on_train_begin(self, session):
        self._session = session

    def _key(self, logs):
        if self.monitor != "auto":
            if self.monitor not in logs or logs[self.monitor] is None:
                raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which the epoch "
                                 f"logs do not hold; they hold {sorted(k for k in logs if logs[k] is not None)}")
            return self.monitor
        return "val_cost" if logs.get("val_cost") is not None else "cost"

    def on_epoch_end(self, epoch, logs):
        key = self._key(logs)
        value = float(logs[key])
        sign = 1.0 if key.endswith(_HIGHER_IS_BETTER) else -1.0
        if self.best is None:
            gain, is_best = np.inf, True
        else:
            gain = sign * (value - self.best)
            is_best = gain > 0
        if is_best:
            self.best, self.best_epoch = value, epoch
            if self.restore_best and self._session is not None:
                self._best_state = self._session.snapshot(self._best_state)
        self.wait = 0 if gain > self.min_delta else self.wait + 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, session):
        history = session.history
        if self.stopped_epoch is not None:
            history.stopped_epoch = self.stopped_epoch
        if self.restore_best and self._best_state is not None and not history.interrupted:
            session.restore(self._best_state, stream=False)
            history.best_epoch = self.best_epoch
        # Keep the record (best, wait), not the session and its data.
        self._session = self._best_state = None
