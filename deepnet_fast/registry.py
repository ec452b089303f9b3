"""The library's vocabularies: one registry per word list, each mapping a public
name to what it means (as scikit-learn's ``neural_network/_base.py`` keeps
``ACTIVATIONS``, ``DERIVATIVES`` and ``LOSS_FUNCTIONS``).

Validation, the estimators' parameter constraints, the command line's choices
and the docs all read these dicts; adding an activation or an optimizer means
adding its entry here and its kernel, nothing else.

- :data:`HIDDEN_ACTIVATIONS`: hidden-layer activation → kernel code;
- :data:`ACTIVATIONS`: every activation the step functions accept → kernel code;
- :data:`OUTPUT_HEADS`: output activation → its :class:`~deepnet_fast.heads.OutputHead`
  (target encoding, loss, decision rule, score);
- :data:`OPTIMIZERS`: optimizer → :class:`Optimizer` (kernel code, the moments it keeps);
- :data:`INITIALIZERS`: weight initialisation → scale of ``randn`` for a layer
  of ``n_prev`` inputs.

Two more registries live beside the code they name: the backends
(:data:`deepnet_fast.engines.ENGINES`) and the learning-rate schedules
(:data:`deepnet_fast.schedules.SCHEDULES`).
"""

from dataclasses import dataclass

import numpy as np

from .heads import IdentityHead, ReluHead, SigmoidHead, SoftmaxHead
from .kernels import activations as kact
from .kernels import updates as kupd

HIDDEN_ACTIVATIONS = {name: kact.CODES[name]
                      for name in ("relu", "leaky_relu", "tanh", "sigmoid", "identity")}

OUTPUT_HEADS = {head.name: head
                for head in (SigmoidHead(), SoftmaxHead(), IdentityHead(), ReluHead())}

ACTIVATIONS = {**HIDDEN_ACTIVATIONS, **{name: head.code for name, head in OUTPUT_HEADS.items()}}


@dataclass(frozen=True)
class Optimizer:
    """An update rule: its kernel code and the moments it keeps per parameter
    (``"v"``: first moment, ``"s"``: second moment)."""

    name: str
    code: int
    moments: tuple

    def moment_sizes(self, n_parameters):
        """Lengths of the ``v`` and ``s`` arrays for ``n_parameters`` parameters
        (0 for a moment the rule does not keep)."""
        return tuple(n_parameters if m in self.moments else 0 for m in ("v", "s"))


OPTIMIZERS = {
    "gd": Optimizer("gd", kupd.GD, ()),
    "momentum": Optimizer("momentum", kupd.MOMENTUM, ("v",)),
    "rmsprop": Optimizer("rmsprop", kupd.RMSPROP, ("s",)),
    "adam": Optimizer("adam", kupd.ADAM, ("v", "s")),
}

INITIALIZERS = {
    "he": lambda n_prev: np.sqrt(2.0 / n_prev),
    "xavier": lambda n_prev: np.sqrt(1.0 / n_prev),
    "small": lambda n_prev: 0.01,
}
