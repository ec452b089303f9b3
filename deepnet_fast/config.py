"""``FitConfig``: every hyperparameter of one ``fit``, validated once.

``DeepNet.fit`` builds one from its keyword arguments, the estimators from
their own parameters, the dask trainer from the same ones; the training
session, the engines and the dask workers read it and check nothing again.
"""

import dataclasses
from dataclasses import dataclass

from ._validation import (
    check_bool,
    check_choice,
    check_keep_prob,
    check_positive_int,
    check_real,
)
from .registry import OPTIMIZERS
from .schedules import get_schedule


@dataclass(frozen=True)
class FitConfig:
    """The hyperparameters of :meth:`deepnet_fast.DeepNet.fit` (see there for
    their meaning), checked when the object is made.

    ``lr_schedule`` holds the resolved schedule (a callable ``(epoch, α0) -> α``)
    and ``batch_size`` None or a positive int (the training-set size is
    checked against it by the session, which knows it).

    Raises
    ------
    TypeError, ValueError
        For the first argument out of its range, named in the message.
    """

    epochs: int = 1000
    learning_rate: float = 0.0075
    batch_size: object = None
    optimizer: str = "gd"
    beta: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 0.0
    keep_prob: float = 1.0
    lr_schedule: object = None
    validation_split: float = 0.0
    early_stopping: bool = False
    patience: int = 10
    min_delta: float = 0.0
    shuffle: bool = True
    verbose: int = 1

    def __post_init__(self):
        checked = dict(
            epochs=check_positive_int(self.epochs, "epochs"),
            learning_rate=check_real(self.learning_rate, "learning_rate", low=0.0, low_open=True),
            batch_size=(None if self.batch_size is None
                        else check_positive_int(self.batch_size, "batch_size")),
            optimizer=check_choice(self.optimizer, "optimizer", OPTIMIZERS),
            beta=check_real(self.beta, "beta", low=0.0, high=1.0, high_open=True),
            beta1=check_real(self.beta1, "beta1", low=0.0, high=1.0, high_open=True),
            beta2=check_real(self.beta2, "beta2", low=0.0, high=1.0, high_open=True),
            epsilon=check_real(self.epsilon, "epsilon", low=0.0, low_open=True),
            l2=check_real(self.l2, "l2", low=0.0),
            keep_prob=check_keep_prob(self.keep_prob),
            lr_schedule=get_schedule(self.lr_schedule),
            validation_split=check_real(self.validation_split, "validation_split", low=0.0,
                                        high=1.0, high_open=True),
            early_stopping=check_bool(self.early_stopping, "early_stopping"),
            patience=check_positive_int(self.patience, "patience"),
            min_delta=check_real(self.min_delta, "min_delta", low=0.0),
            shuffle=check_bool(self.shuffle, "shuffle"),
            verbose=check_positive_int(self.verbose, "verbose", minimum=0),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def rule(self):
        """The :class:`~deepnet_fast.registry.Optimizer` of ``optimizer``."""
        return OPTIMIZERS[self.optimizer]

    def settings(self):
        """The fields as a flat dict of JSON scalars (the schedule by its repr),
        for checkpoints and logs."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["lr_schedule"] = repr(self.lr_schedule)
        return out

    def replace(self, **changes):
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


#: The optimizer's own settings. ``DeepNet.fit`` takes each as None by
#: default: a warm start then continues the last fit's, a fresh fit takes
#: FitConfig's default.
OPTIMIZER_FIELDS = ("optimizer", "learning_rate", "beta", "beta1", "beta2", "epsilon")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FitConfig)}


def optimizer_settings(given, last=None):
    """The optimizer's settings of a fit: each of ``given`` (a dict over
    :data:`OPTIMIZER_FIELDS`) that is not None, else the one in ``last`` (the
    settings a warm start continues, None for a fresh fit), else the default.
    """
    last = last or {}
    return {name: value if value is not None else last.get(name, _DEFAULTS[name])
            for name, value in given.items()}


