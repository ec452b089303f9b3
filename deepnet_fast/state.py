"""``TrainingState``: what one network carries from one fit to the next.

The flat parameter vector, the optimizer's moments and step counter, the
random stream that shuffles the mini-batches, the epochs trained (where the
learning-rate schedule stands), the learning-rate scale of
``ReduceLROnPlateau`` and the key of the validation split.
``fit(warm_start=True)`` and ``partial_fit`` continue all of them, so that ten
one-epoch fits train as one ten-epoch fit; a cold fit starts them afresh.
The training session updates a state in place, and takes
snapshots of it to go back to (after a diverging epoch, an interrupt, or to
the best epoch of early stopping).
"""

import numpy as np

from .kernels.training import all_finite
from ._validation import MAX_STEPS
from .registry import OPTIMIZERS

SPLIT_KEYS = 2**62
"""Validation-split keys are integers in [0, SPLIT_KEYS)."""


def split_key(seed, *more):
    """The validation-split key of a state seeded with ``seed`` (None: a fresh
    one); ``more`` integers tell shards apart. A stream of its own, so that
    drawing it moves no shuffle."""
    entropy = None if seed is None else [int(seed), 2, *more]
    return int(np.random.default_rng(entropy).integers(SPLIT_KEYS))


def validation_rows(key, n):
    """The permutation of ``n`` rows whose head a validation split holds out,
    drawn from the split key ``key``: the same rows for the same key and n."""
    return np.random.default_rng([int(key), int(n)]).permutation(n)


class TrainingState:
    """Parameters, optimizer moments, step counter and shuffle stream.

    Parameters
    ----------
    theta : ndarray of shape (n_parameters,)
        The flat parameter vector (see :mod:`deepnet_fast.params`); used in place.
    seed : int or None
        Seeds the shuffle stream (``numpy.random.default_rng([seed, 1])``).

    Attributes
    ----------
    theta : ndarray
    optimizer : str or None
        The optimizer whose moments ``v`` and ``s`` hold (None: none yet).
    v, s : ndarray
        First and second moments, as long as ``theta`` where the optimizer
        keeps them, else empty.
    t : int
        Optimizer steps taken (Adam's bias correction counts from it).
    epoch : int
        Epochs trained; the learning-rate schedule continues from it.
    lr_scale : float in (0, 1]
        The product of ``ReduceLROnPlateau``'s reductions so far.
    split_key : int or None
        Draws ``validation_split``'s held-out rows (:meth:`validation_rows`):
        the same rows in every fit of this state, so that no warm fit trains
        on an earlier fit's validation rows.
    rng : numpy.random.Generator
    settings : dict or None
        The settings of the last fit that trained this state
        (:meth:`FitConfig.settings`), kept in checkpoints.
    """

    def __init__(self, theta, seed=None):
        self.theta = theta
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 1])
        self.optimizer = None
        self.v = self.s = np.zeros(0, theta.dtype)
        self.t = self.epoch = 0
        self.lr_scale = 1.0
        self.split_key = split_key(seed)
        self.settings = None

    @classmethod
    def of(cls, theta, v, s, t):
        """A state over given arrays (no shuffle stream): a dask worker's view
        of the parameters and moments it received."""
        state = cls.__new__(cls)
        state.theta, state.v, state.s, state.t = theta, v, s, int(t)
        state.optimizer, state.rng, state.settings = None, None, None
        state.epoch, state.lr_scale, state.split_key = 0, 1.0, None
        return state

    def to_record(self):
        """The state besides the parameters, as :func:`serialization.write_model`
        takes it (``optimizer``, ``t``, ``rng``, ``settings``, ``epoch``,
        ``lr_scale``, ``split_key``, ``v``, ``s``)."""
        return {"optimizer": self.optimizer or "gd", "t": self.t,
                "rng": self.rng.bit_generator.state, "settings": self.settings or {},
                "epoch": self.epoch, "lr_scale": self.lr_scale, "split_key": self.split_key,
                "v": self.v, "s": self.s}

    @classmethod
    def from_record(cls, theta, record):
        """The state that :meth:`to_record` described, over parameters ``theta``."""
        state = cls(theta)
        state.optimizer, state.t, state.settings = record["optimizer"], record["t"], \
            record["settings"]
        state.epoch, state.lr_scale = record.get("epoch", 0), record.get("lr_scale", 1.0)
        # Files of version 0.x before the key: one derived from the stream's
        # position, the same at every load of the file.
        key = record.get("split_key")
        state.split_key = key if key is not None else record["rng"]["state"]["state"] % SPLIT_KEYS
        state.v = np.array(record["v"], dtype=theta.dtype)
        state.s = np.array(record["s"], dtype=theta.dtype)
        state.rng.bit_generator.state = record["rng"]
        return state

    def validation_rows(self, n):
        """The permutation of ``n`` rows whose head ``validation_split`` holds
        out: drawn from ``split_key`` (the state's shuffle stream when there
        is none), so the same rows at every fit of this state on n rows."""
        if self.split_key is None:
            return self.rng.permutation(n)
        return validation_rows(self.split_key, n)

    def continued_settings(self):
        """The settings a warm start continues: the last fit's, with the
        optimizer the moments belong to; None before any optimizer trained
        this state."""
        if self.optimizer is None:
            return None
        return {**(self.settings or {}), "optimizer": self.optimizer}

    def use_optimizer(self, name):
        """Zero the moments and the step counter when ``name`` is not the
        optimizer they belong to (the one rule for the moments' sizes)."""
        if name == self.optimizer:
            return
        size_v, size_s = OPTIMIZERS[name].moment_sizes(self.theta.size)
        self.v = np.zeros(size_v, self.theta.dtype)
        self.s = np.zeros(size_s, self.theta.dtype)
        self.t = 0
        self.optimizer = name

    def check(self, n_parameters, dtype, optimizer=None):
        """Raise ``ValueError`` unless the arrays fit a network of
        ``n_parameters`` in ``dtype`` (and its moments ``optimizer``, when
        given): the kernels index them unchecked, and a state is public and
        may be changed between fits."""
        expected = {"theta": n_parameters}
        if optimizer is not None:
            expected["v"], expected["s"] = OPTIMIZERS[optimizer].moment_sizes(n_parameters)
        # Training writes the arrays; a prediction only reads theta (which
        # may be a read-only memory map, as joblib loads it).
        writes = optimizer is not None
        for name, size in expected.items():
            a = getattr(self, name)
            if not (isinstance(a, np.ndarray) and not isinstance(a, np.ma.MaskedArray)
                    and a.ndim == 1 and a.size == size
                    and a.dtype == dtype and a.flags.c_contiguous
                    and (a.flags.writeable or not writes)):
                raise ValueError(
                    f"training_state.{name} must be a {'writeable ' if writes else ''}"
                    f"contiguous 1-D {dtype} array "
                    f"of {size} values for this network"
                    f"{'' if optimizer is None else f' and optimizer={optimizer!r}'}; "
                    f"got {_described(a)}")
        if writes:
            # One update writes all three: a shared buffer would mix them.
            names = [n for n in expected if getattr(self, n).size]
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    if np.may_share_memory(getattr(self, a), getattr(self, b)):
                        raise ValueError(f"training_state.{a} and training_state.{b} share "
                                         "memory; each must be an array of its own")
        if not isinstance(self.t, (int, np.integer)) or not 0 <= self.t < MAX_STEPS:
            raise ValueError(f"training_state.t must be an integer in [0, 2**62); got {self.t!r}")

    def is_finite(self):
        """Whether the parameters and moments hold no NaN or infinity."""
        # The compiled check, with no temporary: 20 us against 38 us for
        # np.isfinite(...).all() on course-cat's 246k float64 parameters
        # (AMD EPYC family 26), after every epoch.
        return bool(all_finite(self.theta) and all_finite(self.v) and all_finite(self.s))

    def snapshot(self, into=None):
        """A copy of parameters, moments, step and stream position (written into
        an earlier snapshot ``into`` when given, to reuse its arrays)."""
        if into is None:
            return _Snapshot(self.theta.copy(), self.v.copy(), self.s.copy(), self.t,
                             self.rng.bit_generator.state, self.epoch, self.lr_scale,
                             self.optimizer, self.settings)
        if into.v.shape != self.v.shape or into.s.shape != self.s.shape:
            return self.snapshot()
        np.copyto(into.theta, self.theta)
        np.copyto(into.v, self.v)
        np.copyto(into.s, self.s)
        into.t, into.rng = self.t, self.rng.bit_generator.state
        into.epoch, into.lr_scale = self.epoch, self.lr_scale
        into.optimizer, into.settings = self.optimizer, self.settings
        return into

    def restore(self, snap, stream=True):
        """Go back to ``snap`` (in place: the arrays stay the same objects);
        ``stream=False`` leaves the shuffle stream, the epoch count and the
        learning-rate scale where they are (early stopping's return to its
        best epoch: the parameters and moments go back, the clock does not)."""
        np.copyto(self.theta, snap.theta)
        if self.v.shape != snap.v.shape or self.s.shape != snap.s.shape:
            self.v, self.s = snap.v.copy(), snap.s.copy()
        else:
            np.copyto(self.v, snap.v)
            np.copyto(self.s, snap.s)
        # The moments and the optimizer they belong to go back together.
        self.t, self.optimizer, self.settings = snap.t, snap.optimizer, snap.settings
        if stream:
            self.rng.bit_generator.state = snap.rng
            self.epoch, self.lr_scale = snap.epoch, snap.lr_scale


class _Snapshot:
    __slots__ = ("theta", "v", "s", "t", "rng", "epoch", "lr_scale", "optimizer", "settings")

    def __init__(self, theta, v, s, t, rng, epoch, lr_scale, optimizer, settings):
        self.theta, self.v, self.s, self.t, self.rng = theta, v, s, t, rng
        self.epoch, self.lr_scale = epoch, lr_scale
        self.optimizer, self.settings = optimizer, settings


def _described(a):
    if not isinstance(a, np.ndarray):
        return type(a).__name__
    return f"{a.dtype} array of shape {a.shape}"
