"""Exceptions raised by deepnet_fast."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite cost or gradient.

    The model keeps the parameters of the last epoch that finished with finite
    values; ``epoch`` is the (0-based) epoch in which the divergence happened.
    """

    def __init__(self, epoch, what="cost", learning_rate=None):
        self.epoch = epoch
        hint = "" if learning_rate is None else f" (learning_rate={learning_rate:g})"
        super().__init__(
            f"training diverged in epoch {epoch}: the {what} became NaN or infinite; "
            f"try a smaller learning rate{hint}, feature scaling or another initialisation. "
            "The model holds the parameters of the last finite epoch."
        )


class ModelFileError(ValueError):
    """A model file is damaged, tampered with, of an unknown version or inconsistent."""
