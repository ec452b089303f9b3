"""Callbacks and resumable checkpoints, on both backends, against independent
computations (a run without the callback, the file contents, the logs)."""

import csv

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import serialization

BACKENDS = ["compiled", "reference"]


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, rng.integers(0, 3, n)


def _net(backend, seed=2):
    return dn.DeepNet([4, 6, 3], "relu", "softmax", seed=seed, backend=backend)


KW = dict(learning_rate=0.01, batch_size=8, optimizer="adam", keep_prob=0.8, verbose=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "gd"])
def test_checkpoint_resume_equals_an_uninterrupted_run_bitwise(backend, optimizer, tmp_path):
    X, y = _data()
    kw = dict(KW, optimizer=optimizer)
    straight = _net(backend)
    h = straight.fit(X, y, epochs=6, **kw)
    first = _net(backend)
    h1 = first.fit(X, y, epochs=3, **kw)
    first.save(tmp_path / "ckpt.npz", training_state=True)
    resumed = dn.load(tmp_path / "ckpt.npz", backend=backend)
    h2 = resumed.fit(X, y, epochs=3, warm_start=True, **kw)
    assert h1.cost + h2.cost == h.cost
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(resumed.parameters[k], v)
    assert resumed.training_state.t == straight.training_state.t
    assert resumed.training_state.settings["optimizer"] == optimizer


def test_a_model_file_without_training_state_starts_fresh(tmp_path):
    X, y = _data()
    net = _net("compiled")
    net.fit(X, y, epochs=2, **KW)
    net.save(tmp_path / "m.npz")
    loaded = dn.load(tmp_path / "m.npz")
    assert loaded.training_state.t == 0 and loaded.training_state.optimizer is None
    meta, arrays = serialization.read_model(tmp_path / "m.npz")
    assert meta["training"] is None and set(arrays) == {"W1", "b1", "W2", "b2"}


def test_version_1_files_still_load(tmp_path):
    # A version 1 file: what deepnet_fast 0.1 wrote (no training state).
    X, y = _data()
    net = _net("compiled")
    net.fit(X, y, epochs=2, **KW)
    path = tmp_path / "v1.npz"
    original = serialization.VERSION
    try:
        serialization.VERSION = 1
        net.save(path)
    finally:
        serialization.VERSION = original
    loaded = dn.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_a_training_state_whose_moments_do_not_fit_the_optimizer_is_refused(tmp_path):
    X, y = _data()
    net = _net("compiled")
    net.fit(X, y, epochs=1, **dict(KW, optimizer="momentum"))
    record = net.training_state.to_record()
    record["optimizer"] = "adam"          # adam keeps s too: s is empty here
    serialization.write_model(tmp_path / "bad.npz", net._description(), net.parameters, record)
    with pytest.raises(dn.ModelFileError, match="do not fit optimizer 'adam'"):
        dn.load(tmp_path / "bad.npz")


def test_checkpoint_files_are_refused_when_damaged(tmp_path):
    X, y = _data()
    net = _net("compiled")
    net.fit(X, y, epochs=1, **KW)
    record = net.training_state.to_record()
    record["v"] = record["v"].copy()
    record["v"][0] = np.nan
    with pytest.raises(ValueError, match="v holds NaN"):
        serialization.write_model(tmp_path / "x.npz", net._description(), net.parameters, record)
    record = net.training_state.to_record()
    record["rng"] = {"bit_generator": "MT19937", "state": {}}
    with pytest.raises(ValueError, match="PCG64"):
        serialization.write_model(tmp_path / "x.npz", net._description(), net.parameters, record)
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------- built-in callbacks


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_checkpoint_every_n_epochs_and_best_only(backend, tmp_path):
    X, y = _data()
    every = dn.ModelCheckpoint(tmp_path / "e{epoch}.npz", every=2)
    best = dn.ModelCheckpoint(tmp_path / "best.npz", save_best_only=True, monitor="val_cost")
    net = _net(backend)
    h = net.fit(X, y, epochs=6, validation_split=0.25, callbacks=[every, best], **KW)
    assert every.saved == [str(tmp_path / f"e{e}.npz") for e in (1, 3, 5)]
    # The last periodic file is the final model, with its training state.
    final = dn.load(every.saved[-1], backend=backend)
    np.testing.assert_array_equal(final.predict_proba(X), net.predict_proba(X))
    assert final.training_state.t == net.training_state.t
    # The best file holds the epoch of the lowest validation cost.
    best_epoch = int(np.argmin(h.val_cost))
    assert len(best.saved) >= 1
    replay = _net(backend)
    replay.fit(X, y, epochs=best_epoch + 1, validation_split=0.25, **KW)
    np.testing.assert_array_equal(dn.load(tmp_path / "best.npz", backend=backend)
                                  .predict_proba(X), replay.predict_proba(X))


@pytest.mark.parametrize("backend", BACKENDS)
def test_reduce_lr_on_plateau_scales_the_rate_after_patience(backend):
    X, y = _data()
    # A cost that never improves after the first epoch: a monitor on a fixed log.
    plateau = dn.ReduceLROnPlateau(monitor="cost", factor=0.5, patience=2, min_delta=10.0,
                                   min_lr=0.002)
    h = _net(backend).fit(X, y, epochs=8, callbacks=[plateau], **dict(KW, learning_rate=0.01))
    # epoch 0 sets the best; epochs 1, 2 do not improve by 10: reduce after 2,
    # again after 4, then the floor 0.002 holds.
    np.testing.assert_allclose(h.learning_rate, [0.01, 0.01, 0.01, 0.005, 0.005, 0.0025,
                                                 0.0025, 0.002])


def test_reduce_lr_on_plateau_checks_its_factor():
    with pytest.raises(ValueError, match="factor"):
        dn.ReduceLROnPlateau(factor=1.5)


@pytest.mark.parametrize("append", [False, True])
def test_csv_logger_writes_every_epoch(append, tmp_path):
    X, y = _data()
    path = tmp_path / "log.csv"
    net = _net("compiled")
    h = net.fit(X, y, epochs=3, validation_split=0.2, callbacks=[dn.CSVLogger(path)], **KW)
    if append:
        h2 = net.fit(X, y, epochs=2, warm_start=True, validation_split=0.2,
                     callbacks=[dn.CSVLogger(path, append=True)], **KW)
    rows = list(csv.DictReader(path.open()))
    costs = h.cost + (h2.cost if append else [])
    assert [float(r["cost"]) for r in rows] == pytest.approx(costs, rel=1e-15)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] + ([0, 1] if append else [])
    assert set(rows[0]) >= {"cost", "learning_rate", "time", "val_cost", "val_accuracy"}


def test_callbacks_see_every_epoch_and_may_stop():
    X, y = _data()

    class Stop(dn.Callback):
        def __init__(self):
            self.seen, self.began, self.ended = [], False, False

        def on_train_begin(self, session):
            self.began = True

        def on_epoch_end(self, epoch, logs):
            self.seen.append((epoch, logs["cost"]))
            return epoch == 2

        def on_train_end(self, session):
            self.ended = True

    cb = Stop()
    h = _net("compiled").fit(X, y, epochs=10, callbacks=[cb], **KW)
    assert cb.began and cb.ended and len(h) == 3
    assert [c for _, c in cb.seen] == h.cost


def test_early_stopping_callback_equals_the_fit_option():
    X, y = _data(200)
    kw = dict(KW, validation_split=0.3)
    a = _net("compiled").fit(X, y, epochs=200, early_stopping=True, patience=3, **kw)
    es = dn.EarlyStopping(patience=3)
    b = _net("compiled").fit(X, y, epochs=200, callbacks=[es], **kw)
    assert a.cost == b.cost and a.best_epoch == b.best_epoch == es.best_epoch
    assert a.stopped_epoch == b.stopped_epoch is not None


# ---------------------------------------------------------------- constructor arguments

BAD_CALLBACK_ARGUMENTS = [
    (lambda: dn.EarlyStopping(patience="x"), TypeError, "patience"),
    (lambda: dn.EarlyStopping(patience=0), ValueError, "patience"),
    (lambda: dn.EarlyStopping(patience=2.5), TypeError, "patience"),
    (lambda: dn.EarlyStopping(min_delta=-1.0), ValueError, "min_delta"),
    (lambda: dn.EarlyStopping(min_delta="x"), TypeError, "min_delta"),
    (lambda: dn.EarlyStopping(monitor=3), TypeError, "monitor"),
    (lambda: dn.ModelCheckpoint("m.npz", every=0), ValueError, "every"),
    (lambda: dn.ModelCheckpoint("m.npz", every=1.0), TypeError, "every"),
    (lambda: dn.ModelCheckpoint("m.npz", monitor=None), TypeError, "monitor"),
    (lambda: dn.ModelCheckpoint(3), TypeError, "path"),
    (lambda: dn.ModelCheckpoint(b"m.npz"), TypeError, "path"),
    (lambda: dn.ReduceLROnPlateau(factor="x"), TypeError, "factor"),
    (lambda: dn.ReduceLROnPlateau(factor=0.0), ValueError, "factor"),
    (lambda: dn.ReduceLROnPlateau(factor=float("nan")), ValueError, "factor"),
    (lambda: dn.ReduceLROnPlateau(patience=0), ValueError, "patience"),
    (lambda: dn.ReduceLROnPlateau(patience="x"), TypeError, "patience"),
    (lambda: dn.ReduceLROnPlateau(cooldown=-1), ValueError, "cooldown"),
    (lambda: dn.ReduceLROnPlateau(cooldown=0.5), TypeError, "cooldown"),
    (lambda: dn.ReduceLROnPlateau(min_lr=-0.1), ValueError, "min_lr"),
    (lambda: dn.ReduceLROnPlateau(min_lr="x"), TypeError, "min_lr"),
    (lambda: dn.ReduceLROnPlateau(min_delta=float("inf")), ValueError, "min_delta"),
    (lambda: dn.CSVLogger(None), TypeError, "path"),
    (lambda: dn.CSVLogger("log.csv", append="yes"), TypeError, "append must be True or False"),
    (lambda: dn.EarlyStopping(restore_best=1), TypeError, "restore_best must be True or False"),
    (lambda: dn.ModelCheckpoint("m.npz", save_best_only="no"), TypeError, "save_best_only"),
    (lambda: dn.ModelCheckpoint("m.npz", training_state=None), TypeError, "training_state"),
]


@pytest.mark.parametrize("make, error, name", BAD_CALLBACK_ARGUMENTS)
def test_callback_arguments_are_checked_when_constructed(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_patience_may_be_infinite_as_n_iter_no_change():
    assert dn.EarlyStopping(patience=np.inf).patience == np.inf
    assert dn.ReduceLROnPlateau(patience=float("inf"), cooldown=0, min_lr=0).patience == np.inf
