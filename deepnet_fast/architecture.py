"""``Architecture``: what a network computes, as one immutable value.

Layer sizes, the activation of every layer, leaky ReLU's slope and the dtype
are all that the engines, the training session, prediction and the model
files need to know of a network; :class:`~deepnet_fast.DeepNet` builds its
``architecture`` once and hands that around instead of itself.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import params as flat
from .kernels.training import Network
from .registry import ACTIVATIONS, OUTPUT_HEADS


@dataclass(frozen=True)
class Architecture:
    """A checked network description (see :class:`~deepnet_fast.DeepNet`).

    Attributes
    ----------
    layer_dims : tuple of int
        ``(n0, n1, ..., nL)``.
    activations : tuple of str
        One name per layer, the output activation last.
    negative_slope : float
    dtype : numpy.dtype
    """

    layer_dims: tuple
    activations: tuple
    negative_slope: float
    dtype: np.dtype

    @property
    def n_layers(self):
        """L, the number of layers with parameters (hidden and output)."""
        return len(self.layer_dims) - 1

    @property
    def head(self):
        """The :class:`~deepnet_fast.heads.OutputHead` of the output activation."""
        return OUTPUT_HEADS[self.activations[-1]]

    @property
    def n_parameters(self):
        """The length of the flat parameter vector (every W[l] and b[l])."""
        return int(self.layout[2])

    @cached_property
    def layout(self):
        """``(offW, offb, size)`` of the flat parameter vector (:func:`params.layout`)."""
        return flat.layout(self.layer_dims)

    @cached_property
    def kernel_network(self):
        """The network as the kernels describe it (:data:`deepnet_fast.kernels.
        training.Network`): layer sizes, activation codes, where each W[l] and
        b[l] starts in the flat vector, and ``negative_slope`` in the network's
        dtype."""
        offW, offb, _ = self.layout
        codes = np.asarray([ACTIVATIONS[a] for a in self.activations], dtype=np.int64)
        return Network(np.asarray(self.layer_dims, dtype=np.int64), codes, offW, offb,
                       self.dtype.type(self.negative_slope))

    @cached_property
    def _multiply_adds_per_sample(self):
        dims = self.layer_dims
        return sum(a * b for a, b in zip(dims[:-1], dims[1:]))

    def multiply_adds(self, n_samples):
        """Multiply-adds of one forward pass over ``n_samples`` samples."""
        return n_samples * self._multiply_adds_per_sample
