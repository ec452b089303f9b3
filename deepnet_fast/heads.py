"""Output heads: what an output activation means, in one object per output type.

An output activation fixes four things that the training API, the estimators,
the dask code and the command line all need: how targets are encoded for it,
which loss it is trained on (its canonical loss, by the kernels' code), how a
prediction is decided from its output, and which score rates it. Each head
holds all four, so that none of them is re-derived elsewhere (as
scikit-learn's ``_multilayer_perceptron`` decides its output type once).

Scores are computed from *parts* (sums over a block of samples) that
:meth:`OutputHead.merge` combines, so that the in-memory score and the
block-by-block score of dask data follow one rule.
"""

import numbers

import numpy as np

from ._validation import as_float_array, check_not_masked
from .kernels import activations as kact

#: How far from 1 a softmax target row may sum (probabilities rounded to
#: float32 and back, or written with a few digits, stay well inside).
ROW_SUM_TOLERANCE = 1e-3


class OutputHead:
    """Base class; see the module docstring.

    Attributes
    ----------
    name : str
        The output activation's public name.
    code : int
        Its activation code in :mod:`deepnet_fast.kernels.activations`.
    loss_code : int
        The code of its canonical loss in :mod:`deepnet_fast.kernels.losses`.
    loss : str
        The loss's name, for messages and docs.
    score_name : str
        ``"accuracy"`` or ``"r2"``: the name of :meth:`score` in histories.
    min_units : int
        Fewest output units the head can work with.
    target_range : tuple of float or None
        Closed interval the encoded targets must lie in.
    """

    name = code = loss_code = loss = score_name = None
    min_units = 1
    target_range = None

    def __repr__(self):
        return f"<output head {self.name!r}: {self.loss}, scored by {self.score_name}>"

    # ------------------------------------------------------------ targets

    def encode(self, y, n_samples, n_units, dtype, name="y"):
        """Targets as a C-contiguous ``(n_samples, n_units)`` array of ``dtype``.

        Parameters
        ----------
        y : array-like of shape (n_samples,) or (n_samples, n_units)
        n_samples, n_units : int
        dtype : numpy dtype
        name : str
            The argument's name in error messages.
        """
        y_arr = _numeric(y, name)
        if y_arr.shape[:1] != (n_samples,):
            raise ValueError(f"{name} must have {n_samples} rows, one per sample of X; "
                             f"got shape {y_arr.shape}")
        if y_arr.ndim == 1:
            y_arr = y_arr.reshape(-1, 1)
        if y_arr.ndim != 2 or y_arr.shape[1] != n_units:
            # A 1-D y fits one output unit only.
            wanted = (f"({n_samples},) or ({n_samples}, 1)" if n_units == 1
                      else f"({n_samples}, {n_units})")
            raise ValueError(f"{name} must have shape {wanted} for {n_units} output unit(s) of "
                             f"a {self.name} output; got {np.shape(y)}")
        Y = as_float_array(y_arr, name, ndim=2, dtype=dtype, finite=True)
        if self.target_range is not None and Y.size:
            low, high = self.target_range
            if Y.min() < low or Y.max() > high:
                raise ValueError(f"{name} must lie in [{low:g}, {high:g}] for a {self.name} "
                                 f"output; got values from {Y.min():g} to {Y.max():g}")
        return np.ascontiguousarray(Y)

    def class_weights(self, Y, class_weight, dtype):
        """A weight per sample from ``class_weight`` (``"balanced"`` or a dict
        ``{class index: weight}``; classes not in the dict weigh 1), for the
        encoded targets ``Y`` (n_samples, n_units)."""
        raise ValueError(f"class_weight applies to classification outputs (sigmoid with one "
                         f"unit, softmax); this network's output is {self.name}")

    # ------------------------------------------------------------ predictions

    def decide(self, P):
        """Predictions from the outputs ``P`` of shape (n_samples, n_units)."""
        raise NotImplementedError

    def prediction_kind(self, n_units, dtype):
        """dtype and number of dimensions of :meth:`decide`'s result."""
        raise NotImplementedError

    # ------------------------------------------------------------ scores

    def parts(self, P, Y):
        """Sums over a block of samples from which :meth:`merge` gives the score."""
        raise NotImplementedError

    def merge(self, parts):
        """The score of all the blocks whose :meth:`parts` are given."""
        raise NotImplementedError

    def score(self, P, Y):
        """The head's score of outputs ``P`` against encoded targets ``Y``
        (both of shape (n_samples, n_units))."""
        return self.merge([self.parts(P, Y)])

    # The training score of an epoch, from the outputs each batch computed
    # before its update (the kernels' ``metric_sum``, summed over the batches).

    def metric_sum(self, P, Y, w=None):
        """What the epoch's training score sums over a batch (the same sum as
        :func:`deepnet_fast.kernels.losses.metric_sum`), samples weighted by ``w``."""
        raise NotImplementedError

    def score_base(self, Y, w=None):
        """What the training score of data ``Y`` (weights ``w``) is relative to."""
        return None

    def score_from_sums(self, metric, weight, base):
        """The epoch's training score from its summed metric and weights."""
        raise NotImplementedError


class _Classification(OutputHead):
    score_name = "accuracy"

    def labels(self, Y):
        """The class index of each encoded target row."""
        raise NotImplementedError

    def class_weights(self, Y, class_weight, dtype):
        labels = self.labels(Y)
        n_classes = max(int(labels.max()) + 1, Y.shape[1], 2) if labels.size else 2
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be 'balanced' or a dict; got "
                                 f"{class_weight!r}")
            counts = np.bincount(labels, minlength=n_classes)
            present = counts > 0
            # scikit-learn's rule: n_samples / (n_classes present * count of the class).
            per_class = np.zeros(n_classes)
            per_class[present] = labels.size / (present.sum() * counts[present])
        elif isinstance(class_weight, dict):
            per_class = np.ones(n_classes)
            for c, wc in class_weight.items():
                if isinstance(c, bool) or not isinstance(c, (int, np.integer)) \
                        or not 0 <= c < n_classes:
                    raise ValueError(f"class_weight keys must be class indices 0..{n_classes - 1}; "
                                     f"got {c!r}")
                if isinstance(wc, (bool, np.bool_)) or not isinstance(wc, numbers.Real):
                    raise TypeError(f"class_weight[{c}] must be a real number; got {wc!r}")
                if not np.isfinite(wc) or wc < 0:
                    raise ValueError(f"class_weight[{c}] must be a finite weight >= 0; got {wc!r}")
                per_class[c] = wc
        else:
            raise TypeError(f"class_weight must be 'balanced', a dict or None; got "
                            f"{type(class_weight).__name__}")
        return per_class[labels].astype(dtype)

    def correct(self, P, Y):
        raise NotImplementedError

    def parts(self, P, Y):
        return P.shape[0], int(np.sum(self.correct(P, Y)))

    def merge(self, parts):
        return float(sum(p[1] for p in parts) / sum(p[0] for p in parts))

    def metric_sum(self, P, Y, w=None):
        right = self.correct(P, Y).astype(np.float64)
        return float(right.sum() if w is None else right @ w.astype(np.float64))

    def score_from_sums(self, metric, weight, base):
        """Accuracy: the (weighted) share of samples classified right."""
        return metric / weight


class SigmoidHead(_Classification):
    """Independent 0/1 outputs (binary or multi-label), binary cross-entropy;
    a unit predicts 1 where its output exceeds 0.5; accuracy is exact match."""

    name, code, loss_code = "sigmoid", kact.SIGMOID, kact.SIGMOID
    loss = "binary cross-entropy"
    target_range = (0.0, 1.0)

    def decide(self, P):
        labels = (P > 0.5).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels

    def labels(self, Y):
        if Y.shape[1] != 1:
            raise ValueError("class_weight needs one class per sample; a multi-label sigmoid "
                             "output has several (weigh the samples with sample_weight)")
        return (Y[:, 0] > 0.5).astype(np.int64)

    def prediction_kind(self, n_units, dtype):
        return np.dtype(np.int64), 1 if n_units == 1 else 2

    def correct(self, P, Y):
        return np.all((P > 0.5) == (Y > 0.5), axis=1)


class SoftmaxHead(_Classification):
    """One class per sample, categorical cross-entropy; the prediction is the
    index of the largest output. Targets are class indices or one-hot rows."""

    name, code, loss_code = "softmax", kact.SOFTMAX, kact.SOFTMAX
    loss = "categorical cross-entropy"
    min_units = 2
    target_range = (0.0, 1.0)

    def encode(self, y, n_samples, n_units, dtype, name="y"):
        y_arr = _numeric(y, name)
        if y_arr.ndim != 1:
            Y = super().encode(y_arr, n_samples, n_units, dtype, name)
            # Probabilities: cross-entropy's gradient A - Y assumes each row sums to 1.
            sums = Y.sum(axis=1, dtype=np.float64)
            if Y.size and np.abs(sums - 1).max() > ROW_SUM_TOLERANCE:
                raise ValueError(f"{name} must hold one-hot rows or probabilities summing to 1 "
                                 f"for a softmax output; got row sums from {sums.min():g} to "
                                 f"{sums.max():g}")
            return Y
        if y_arr.shape[0] != n_samples:
            raise ValueError(f"{name} must have {n_samples} rows, one per sample of X; "
                             f"got shape {y_arr.shape}")
        if y_arr.dtype.kind == "f":
            if not np.all(np.isfinite(y_arr)):
                raise ValueError(f"{name} must not contain NaN or infinity")
            if np.any(y_arr != np.round(y_arr)):
                raise ValueError(f"{name} must hold integer class labels 0..{n_units - 1} "
                                 "for a softmax output")
        labels = y_arr.astype(np.int64)
        if n_samples and (labels.min() < 0 or labels.max() >= n_units):
            raise ValueError(f"{name} must hold class labels in 0..{n_units - 1} (the softmax "
                             f"output has {n_units} units); got labels from {labels.min()} to "
                             f"{labels.max()}")
        Y = np.zeros((n_samples, n_units), dtype=dtype)
        Y[np.arange(n_samples), labels] = 1
        return Y

    def decide(self, P):
        return np.argmax(P, axis=1)

    def labels(self, Y):
        return np.argmax(Y, axis=1)

    def prediction_kind(self, n_units, dtype):
        return np.dtype(np.int64), 1

    def correct(self, P, Y):
        return np.argmax(P, axis=1) == np.argmax(Y, axis=1)


class IdentityHead(OutputHead):
    """Real-valued outputs, ½·squared error; the prediction is the output
    itself; the score is R² averaged over the outputs (:meth:`merge`); the
    training metric of an epoch pools them (:meth:`score_from_sums`)."""

    name, code, loss_code = "identity", kact.IDENTITY, kact.IDENTITY
    loss = "squared error"
    score_name = "r2"

    def decide(self, P):
        return P[:, 0] if P.shape[1] == 1 else P

    def prediction_kind(self, n_units, dtype):
        return np.dtype(dtype), 1 if n_units == 1 else 2

    def metric_sum(self, P, Y, w=None):
        residual = np.sum((Y.astype(np.float64) - P) ** 2, axis=1)
        return float(residual.sum() if w is None else residual @ w.astype(np.float64))

    def score_base(self, Y, w=None):
        """The (weighted) total sum of squares about the mean, over all outputs."""
        Y = Y.astype(np.float64)
        weights = np.ones(Y.shape[0]) if w is None else w.astype(np.float64)
        mean = weights @ Y / weights.sum()
        return float(weights @ np.sum((Y - mean) ** 2, axis=1))

    def score_from_sums(self, metric, weight, base):
        """R² of the outputs taken together: 1 - residual / total sum of squares
        (0 for constant targets, as :meth:`merge`). The epoch's training
        metric, from the kernels' one residual sum per batch; equal to
        :meth:`merge`'s mean of per-output R² for one output only."""
        return 1.0 - metric / base if base > 0 else 0.0

    def parts(self, P, Y):
        mean = Y.mean(axis=0, dtype=np.float64)
        return (Y.shape[0], mean, np.sum((Y - mean) ** 2, axis=0, dtype=np.float64),
                np.sum((Y - P) ** 2, axis=0, dtype=np.float64))

    def merge(self, parts):
        """R² from per-block (n, mean, Σ(y - mean)², Σ(y - p)²), merging the
        blocks' spreads with Chan's update (no cancellation in Σy² - (Σy)²/n)."""
        n, mean, m2, ss_res = parts[0]
        for nb, mean_b, m2_b, res_b in parts[1:]:
            delta = mean_b - mean
            total = n + nb
            mean = mean + delta * (nb / total)
            m2 = m2 + m2_b + delta ** 2 * (n * nb / total)
            ss_res = ss_res + res_b
            n = total
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(m2 > 0, 1 - ss_res / np.where(m2 > 0, m2, 1), 0.0)
        return float(np.mean(r2))


class ReluHead(IdentityHead):
    """Non-negative real-valued outputs (the course: ReLU "may be good for the
    output layer if the result is a positive real number"), ½·squared error
    through the ReLU; the prediction is the output; the score is R²."""

    name, code, loss_code = "relu", kact.RELU, kact.IDENTITY
    loss = "squared error (through ReLU)"
    target_range = (0.0, np.inf)


def _numeric(y, name):
    check_not_masked(y, name)
    y_arr = np.asarray(y)
    if y_arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric; got dtype {y_arr.dtype}"
                        + (" (use DeepNetClassifier for string labels)"
                           if y_arr.dtype.kind in "UO" else ""))
    return y_arr
