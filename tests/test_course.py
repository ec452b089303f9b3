"""The course's ideas that the library embodies, each checked against what the
course says should happen."""

import warnings

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast.initialization import symmetric_units


def _symmetric_init(rng):
    # Hidden units 0 and 2 share incoming weights, bias and outgoing weights.
    W1 = rng.standard_normal((3, 4))
    W1[2] = W1[0]
    W2 = rng.standard_normal((1, 3))
    W2[0, 2] = W2[0, 0]
    return {"W1": W1, "b1": np.zeros((3, 1)), "W2": W2, "b2": np.zeros((1, 1))}


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_identical_units_warn_and_stay_identical(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(UserWarning, match=r"units \[0, 2\] of hidden layer 1 start identical"):
        net = dn.DeepNet([4, 3, 1], "tanh", init=_symmetric_init(rng), backend=backend)
    net.fit(X, y, epochs=50, learning_rate=0.5, verbose=0)
    P = net.parameters
    np.testing.assert_allclose(P["W1"][2], P["W1"][0], rtol=1e-12)
    np.testing.assert_allclose(P["W2"][0, 2], P["W2"][0, 0], rtol=1e-12)
    assert not np.allclose(P["W1"][1], P["W1"][0])      # the third unit learned its own


def test_identical_units_warning_names_the_argument_that_set_them():
    net = dn.DeepNet([4, 3, 1], "tanh", seed=0)
    with pytest.warns(UserWarning, match=r"^parameters: units \[0, 2\] of hidden layer 1 "
                                         r"start identical.* Pass random weights") as record:
        net.set_parameters(_symmetric_init(np.random.default_rng(0)))
    assert not any(str(w.message).startswith("init:") for w in record)
    with pytest.warns(UserWarning, match=r"^init: units .* Draw random weights \(e.g. init='he'\)"):
        dn.DeepNet([4, 3, 1], "tanh", init=_symmetric_init(np.random.default_rng(0)))


def test_all_zero_weights_make_every_hidden_unit_the_same():
    zeros = {"W1": np.zeros((5, 2)), "b1": np.zeros((5, 1)),
             "W2": np.zeros((1, 5)), "b2": np.zeros((1, 1))}
    groups = symmetric_units(zeros, 1)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3, 4]]
    with pytest.warns(UserWarning, match="start identical"):
        dn.DeepNet([2, 5, 1], init=zeros)


def test_random_initialisations_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = dn.DeepNet([4, 16, 8, 1], seed=0)
        dn.DeepNet([4, 16, 8, 1], init=net.parameters)
