"""The L2 penalty's gradient, shared by both backends (it is not a hot path).

The cost's penalty ``λ/(2m) Σ_l ‖W[l]‖²`` is each backend's ``l2_cost``; its
gradient is one scaled addition per weight matrix, which the course adds to
dW[l] after backward propagation. A kernel would give nothing here: the
addition reads each array once and is bound by memory, as NumPy's is. The
training kernels add the same term inside their epoch
(``kernels.training.regularise_share``), and the reference engine calls this
function, so the rule is written once for each path.
"""

from ._step_args import prepare_l2_gradient

__all__ = ["l2_gradient"]


def l2_gradient(grads, parameters, l2, m):
    """The weights' gradients with the L2 penalty's added: dW[l] + (λ/m) W[l].

    The derivative of ``l2_cost(parameters, l2, m)`` added to the gradients of
    :func:`~deepnet_fast.reference.backward`, as the course's backward
    propagation with regularisation does. The biases are not penalised.

    Parameters
    ----------
    grads : dict
        ``dW1, db1, ..., dWL, dbL``, each shaped like its parameter; other
        entries (``dA0``, ...) are passed through.
    parameters : dict
        ``W1, b1, ..., WL, bL``, float arrays.
    l2 : float >= 0
        λ.
    m : int >= 1
        The number of examples the cost averages over.

    Returns
    -------
    dict
        A new dict: each ``dW[l]`` replaced by a new array in its parameter's
        dtype, every other entry as given. The inputs are not modified.
    """
    L, grads = prepare_l2_gradient(grads, parameters, l2, m)
    out = dict(grads)
    for l in range(1, L + 1):
        W = parameters[f"W{l}"]
        out[f"dW{l}"] = grads[f"dW{l}"] + W.dtype.type(l2 / m) * W
    return out
