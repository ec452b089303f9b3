"""Learning-rate schedules: ``schedule(epoch, initial_rate) -> rate``.

Any callable with that signature works as ``fit(lr_schedule=...)``; these are
the usual ones, also selectable by name with their default settings. Their
rates never go below the smallest normal float64 (about 2.2e-308): a long
decay slows training to a stop instead of reaching 0, which ``fit`` refuses.
"""

import math
import numbers

import numpy as np

from ._validation import check_real

_SMALLEST_RATE = float(np.finfo(np.float64).tiny)


def _whole_steps(epoch, step):
    """floor(epoch / step); inf when the quotient overflows (a tiny step)."""
    q = epoch / step
    return math.floor(q) if math.isfinite(q) else q


class Constant:
    """α_e = α_0."""

    def __call__(self, epoch, initial_rate):
        return initial_rate

    def __repr__(self):
        return "Constant()"


class InverseTimeDecay:
    """α_e = α_0 / (1 + decay_rate · floor(e / decay_steps)) (the course's decay)."""

    def __init__(self, decay_rate=1.0, decay_steps=1):
        self.decay_rate = check_real(decay_rate, "decay_rate", low=0.0)
        self.decay_steps = check_real(decay_steps, "decay_steps", low=0.0, low_open=True)

    def __call__(self, epoch, initial_rate):
        n = _whole_steps(epoch, self.decay_steps)
        # decay_rate 0 is no decay, even after infinitely many steps (not 0 * inf).
        return max(initial_rate / (1.0 + (self.decay_rate * n if self.decay_rate else 0.0)),
                   _SMALLEST_RATE)

    def __repr__(self):
        return f"InverseTimeDecay(decay_rate={self.decay_rate}, decay_steps={self.decay_steps})"


class ExponentialDecay:
    """α_e = α_0 · decay_rate^(e / decay_steps)."""

    def __init__(self, decay_rate=0.96, decay_steps=10):
        self.decay_rate = check_real(decay_rate, "decay_rate", low=0.0, low_open=True, high=1.0)
        self.decay_steps = check_real(decay_steps, "decay_steps", low=0.0, low_open=True)

    def __call__(self, epoch, initial_rate):
        return max(initial_rate * self.decay_rate ** (epoch / self.decay_steps), _SMALLEST_RATE)

    def __repr__(self):
        return f"ExponentialDecay(decay_rate={self.decay_rate}, decay_steps={self.decay_steps})"


class StepDecay:
    """α_e = α_0 · factor^floor(e / step_size)."""

    def __init__(self, factor=0.5, step_size=100):
        self.factor = check_real(factor, "factor", low=0.0, low_open=True, high=1.0)
        self.step_size = check_real(step_size, "step_size", low=0.0, low_open=True)

    def __call__(self, epoch, initial_rate):
        return max(initial_rate * self.factor ** _whole_steps(epoch, self.step_size),
                   _SMALLEST_RATE)

    def __repr__(self):
        return f"StepDecay(factor={self.factor}, step_size={self.step_size})"


SCHEDULES = {
    "constant": Constant,
    "inverse_time": InverseTimeDecay,
    "exponential": ExponentialDecay,
    "step": StepDecay,
}


def get_schedule(schedule):
    """Resolve ``None``, a name from ``SCHEDULES`` or a callable into a callable."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(SCHEDULES)} or a callable "
                             f"(epoch, initial_rate) -> rate; got {schedule!r}")
        return SCHEDULES[schedule]()
    if isinstance(schedule, type):
        # A class is callable too, but calling it builds a schedule.
        raise TypeError(f"lr_schedule must be a schedule, not the class {schedule.__name__}: "
                        f"pass an instance such as {schedule.__name__}()")
    if callable(schedule):
        return schedule
    raise TypeError(f"lr_schedule must be None, a name from {list(SCHEDULES)} or a callable; "
                    f"got {type(schedule).__name__}")


def rate_at(schedule, epoch, initial_rate):
    """Evaluate a schedule and check that it gave a usable rate."""
    rate = schedule(epoch, initial_rate)
    if not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"lr_schedule returned {rate!r} at epoch {epoch}; "
                         "expected a finite number > 0")
    return float(rate)
