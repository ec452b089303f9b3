"""The per-layer cache that forward propagation hands to backward propagation."""

from typing import NamedTuple

import numpy as np


class LayerCache(NamedTuple):
    """What layer ``l`` remembers from the forward pass.

    Attributes
    ----------
    A_prev : ndarray of shape (n[l-1], m)
        Activations of the previous layer (``X`` for the first layer).
    W : ndarray of shape (n[l], n[l-1])
        Weights of the layer.
    b : ndarray of shape (n[l], 1)
        Biases of the layer.
    Z : ndarray of shape (n[l], m)
        Pre-activation ``W @ A_prev + b``.
    """

    A_prev: np.ndarray
    W: np.ndarray
    b: np.ndarray
    Z: np.ndarray
