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
        Validation cost after each epoch (empty without validation data).
    metrics : dict of list of float
        ``"accuracy"`` (classification) or ``"r2"`` (regression, the outputs
        taken together) of the training data, from the outputs each mini-batch
        computed during the epoch before its update (weighted by
        ``sample_weight`` when given; not recorded by distributed training),
        and ``"val_accuracy"``/``"val_r2"``
        on the validation data when there is some.
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
            Scores by name (``accuracy=...``, ``val_r2=...``); those that are
            None are not recorded.
        """
        self.cost.append(float(cost))
        self.learning_rate.append(float(lr))
        self.time.append(float(seconds))
        if val_cost is not None:
            self.val_cost.append(float(val_cost))
        for name, value in metrics.items():
            if value is not None:
                self.metrics.setdefault(name, []).append(float(value))

    def extend(self, other):
        """Append the epochs of another History (continued training)."""
        self.cost += other.cost
        self.val_cost += other.val_cost
        self.learning_rate += other.learning_rate
        self.time += other.time
        for name, values in other.metrics.items():
            self.metrics.setdefault(name, []).extend(values)

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
            writer.writerows(zip(*columns.values()))

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
            import matplotlib
            if ax is None and path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError('History.plot needs matplotlib: pip install "deepnet-fast[plot]"') from exc
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
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
