"""The record of a training run, one entry per epoch."""

import csv

import numpy as np


class History:
    """Per-epoch training record returned by :meth:`DeepNet.fit`.

    Attributes
    ----------
    cost : list of float
        Training cost of each epoch, computed during that epoch's forward
        passes (full batch: the cost before the epoch's update, as the course
        prints "Cost after iteration i"; mini-batches: the size-weighted mean
        of the batch costs).
    val_cost : list of float
        Validation cost after each epoch (empty without validation data; NaN
        in the epochs of an :meth:`extend`-ed fit that had none).
    metrics : dict of list of float
        ``"accuracy"`` (classification) or ``"r2"`` (regression, the outputs
        taken together) of the training data, from the outputs each mini-batch
        computed during the epoch before its update (weighted by
        ``sample_weight`` when given; not recorded by distributed training),
        and ``"val_accuracy"``/``"val_r2"`` on the validation data when there
        is some. With several outputs the two R² differ in kind: ``"r2"``
        pools the outputs' squared errors (what the epoch's running sums
        allow), ``"val_r2"`` averages each output's R², as
        :meth:`DeepNet.score` and scikit-learn do; for one output they agree.
    learning_rate : list of float
        Learning rate used in each epoch.
    time : list of float
        Wall time of each epoch in seconds.
    stopped_epoch : int or None
        Epoch at which early stopping ended training.
    best_epoch : int or None
        Epoch whose parameters the model holds after early stopping.
    interrupted : bool
        True when training was cut short by Ctrl-C.
    backend : str or None
        The backend the epochs ran on: the network's, or ``"reference"`` for
        a compiled fit that ran on the NumPy reference while a helper process
        compiled its kernel (see :func:`deepnet_fast.compilation.training_backend`).
    """

    def __init__(self):
        self.cost = []
        self.val_cost = []
        self.metrics = {}
        self.learning_rate = []
        self.time = []
        self.stopped_epoch = None
        self.best_epoch = None
        self.interrupted = False
        self.backend = None

    def __len__(self):
        return len(self.cost)

    def __repr__(self):
        last = f", last cost {self.cost[-1]:.6g}" if self.cost else ""
        return f"History({len(self)} epochs{last})"

    def append_epoch(self, cost, lr, seconds, val_cost=None, **metrics):
        """Record one epoch at the end of the history.

        Parameters
        ----------
        cost : float
            The epoch's training cost.
        lr : float
            The learning rate the epoch used.
        seconds : float
            The epoch's wall time.
        val_cost : float or None, default=None
            The validation cost after the epoch; None without validation data
            (nothing is recorded).
        **metrics : float or None
            Scores by name (``accuracy=...``, ``val_r2=...``).

        A value that is None is not recorded while its column is empty, and is
        NaN once the column has values: every column keeps one value per
        epoch (a column that starts late has NaN in the epochs before).
        """
        n = len(self.cost)
        self.cost.append(float(cost))
        self.learning_rate.append(float(lr))
        self.time.append(float(seconds))
        _append(self.val_cost, val_cost, n)
        for name, value in metrics.items():
            if value is not None or name in self.metrics:
                _append(self.metrics.setdefault(name, []), value, n)
        for name, column in self.metrics.items():
            if name not in metrics:
                _append(column, None, n)

    def extend(self, other):
        """Append the epochs of another History (continued training).

        A column only one of the two has (``val_cost`` of a fit with
        validation data after one without, say) is NaN in the epochs of the
        other, so that every column still has one value per epoch.
        """
        n, m = len(self.cost), len(other.cost)
        if self.val_cost or other.val_cost:
            _pad(self.val_cost, n).extend(_pad(list(other.val_cost), m))
        for name in [*self.metrics, *(k for k in other.metrics if k not in self.metrics)]:
            _pad(self.metrics.setdefault(name, []), n).extend(
                _pad(list(other.metrics.get(name, [])), m))
        self.cost += other.cost
        self.learning_rate += other.learning_rate
        self.time += other.time

    def to_dict(self):
        """Columns of equal length: epoch, cost, learning_rate, time, val_cost, metrics."""
        n = len(self.cost)
        out = {"epoch": list(range(n)), "cost": list(self.cost),
               "learning_rate": list(self.learning_rate), "time": list(self.time)}
        if self.val_cost:
            out["val_cost"] = list(self.val_cost)
        for name, values in self.metrics.items():
            out[name] = list(values)
        return out

    def to_csv(self, path):
        """Write :meth:`to_dict` as CSV with a header row."""
        columns = self.to_dict()
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values(), strict=True))

    def plot(self, path=None, ax=None):
        """Draw the learning curves (needs matplotlib: ``pip install "deepnet-fast[plot]"``).

        Parameters
        ----------
        path : str or path-like, optional
            Save the figure there.
        ax : matplotlib Axes, optional
            Draw into these axes instead of a new figure.

        Returns
        -------
        matplotlib.figure.Figure
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError('History.plot needs matplotlib: pip install "deepnet-fast[plot]"') from exc
        if ax is not None:
            fig = ax.figure
        elif path is not None:
            # Drawn for the file only: a figure outside pyplot needs no GUI and
            # leaves the session's backend and open figures alone.
            fig = Figure(figsize=(6, 4))
            ax = fig.subplots()
        else:
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(figsize=(6, 4))
        epochs = np.arange(len(self.cost))
        ax.plot(epochs, self.cost, label="training cost")
        if self.val_cost:
            ax.plot(np.arange(len(self.val_cost)), self.val_cost, label="validation cost")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="grey", linestyle=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cost")
        ax.set_yscale("log" if min(self.cost, default=1) > 0 else "linear")
        ax.legend()
        ax.set_title("Learning curves")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _pad(column, n):
    """``column`` (a list, in place) filled with NaN up to ``n`` values."""
    column.extend([float("nan")] * (n - len(column)))
    return column


def _append(column, value, n):
    """Record epoch ``n``'s ``value`` in ``column`` (in place), NaN for a
    missing one; nothing while the column is empty and the value missing."""
    if value is None and not column:
        return
    _pad(column, n).append(float("nan") if value is None else float(value))
