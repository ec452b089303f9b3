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


@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "checkpoint"])
def test_a_warm_fit_continues_the_optimizer_settings_it_is_not_given(how, tmp_path):
    X, y = _data()
    kw = dict(learning_rate=0.02, optimizer="adam", beta1=0.8, beta2=0.99, epsilon=1e-6,
              verbose=0)
    straight = _net("reference")
    straight.fit(X, y, epochs=2, **kw)
    straight.fit(X, y, epochs=1, warm_start=True, **kw)
    net = _net("reference")
    net.fit(X, y, epochs=2, **kw)
    if how == "checkpoint":
        net.save(tmp_path / "ckpt.npz", training_state=True)
        net = dn.load(tmp_path / "ckpt.npz", backend="reference")
    if how == "partial_fit":
        net.partial_fit(X, y)
    else:
        net.fit(X, y, epochs=1, warm_start=True, verbose=0)
    assert net.training_state.t == straight.training_state.t == 3
    assert {k: net.training_state.settings[k] for k in kw} == kw
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


def test_given_optimizer_settings_override_and_a_cold_fit_takes_the_defaults():
    X, y = _data()
    net = _net("reference")
    net.fit(X, y, epochs=2, learning_rate=0.02, optimizer="adam", verbose=0)
    net.fit(X, y, epochs=1, warm_start=True, learning_rate=0.01, verbose=0)
    settings = net.training_state.settings
    assert (settings["optimizer"], settings["learning_rate"], net.training_state.t) == \
        ("adam", 0.01, 3)
    net.fit(X, y, epochs=1, warm_start=True, optimizer="momentum", verbose=0)
    settings = net.training_state.settings
    # Another optimizer: its own moments from zero, the rest continued.
    assert (settings["optimizer"], settings["learning_rate"], net.training_state.t) == \
        ("momentum", 0.01, 1)
    net.fit(X, y, epochs=1, verbose=0)
    settings = net.training_state.settings
    assert (settings["optimizer"], settings["learning_rate"], settings["beta1"]) == \
        ("gd", 0.0075, 0.9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_fits_and_checkpoints_continue_the_schedule_and_the_validation_split(backend,
                                                                                 tmp_path):
    """Six one-epoch warm fits, and three epochs then a checkpoint's three,
    equal one six-epoch fit: the schedule counts the state's epochs and the
    validation rows are the same in every fit."""
    X, y = _data()
    kw = dict(KW, lr_schedule="inverse_time", validation_split=0.25)
    straight = _net(backend)
    h = straight.fit(X, y, epochs=6, **kw)
    assert len(set(h.learning_rate)) == 6
    stepwise = _net(backend)
    parts = [stepwise.fit(X, y, epochs=1, warm_start=True, **kw) for _ in range(6)]
    for key in ("cost", "val_cost", "learning_rate"):
        assert [getattr(p, key)[0] for p in parts] == getattr(h, key), key
    first = _net(backend)
    h1 = first.fit(X, y, epochs=3, **kw)
    first.save(tmp_path / "ckpt.npz", training_state=True)
    resumed = dn.load(tmp_path / "ckpt.npz", backend=backend)
    assert resumed.training_state.epoch == 3
    h2 = resumed.fit(X, y, epochs=3, warm_start=True, **kw)
    assert h1.val_cost + h2.val_cost == h.val_cost
    for net in (stepwise, resumed):
        assert net.training_state.epoch == 6
        for k, v in straight.parameters.items():
            np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reduce_lr_on_plateau_reductions_carry_over_to_warm_fits_and_checkpoints(backend,
                                                                                 tmp_path):
    X, y = _data()
    plateau = dn.ReduceLROnPlateau(monitor="cost", factor=0.5, patience=1, min_delta=10.0)
    net = _net(backend)
    h = net.fit(X, y, epochs=3, callbacks=[plateau], **KW)
    assert h.learning_rate == [0.01, 0.01, 0.005]          # reduced after epochs 1 and 2
    assert net.training_state.lr_scale == 0.25
    net.save(tmp_path / "ckpt.npz", training_state=True)
    loaded = dn.load(tmp_path / "ckpt.npz", backend=backend)
    assert loaded.training_state.lr_scale == 0.25
    assert loaded.fit(X, y, epochs=1, warm_start=True, **KW).learning_rate == [0.0025]
    # A cold fit starts at the full rate again.
    assert loaded.fit(X, y, epochs=1, **KW).learning_rate == [0.01]


def test_checkpoints_of_earlier_versions_resume_with_the_default_clock(tmp_path):
    """A training state without epoch, lr_scale and split_key (as files
    written before them hold) loads at epoch 0 and scale 1, with the same
    split key at every load; the keys out of range are refused."""
    X, y = _data()
    net = _net("compiled")
    net.fit(X, y, epochs=2, **KW)
    meta, arrays = serialization.read_model(_saved(net, tmp_path / "new.npz"))
    old = {k: v for k, v in meta["training"].items()
           if k not in serialization.OPTIONAL_TRAINING_KEYS}
    params = {k: a for k, a in arrays.items() if k[0] in "Wb"}
    moments = dict(v=arrays["v"], s=arrays["s"])
    serialization.write_model(tmp_path / "old.npz", meta, params, dict(old, **moments))
    loads = [dn.load(tmp_path / "old.npz").training_state for _ in range(2)]
    assert [(s.epoch, s.lr_scale) for s in loads] == [(0, 1.0)] * 2
    assert loads[0].split_key == loads[1].split_key and 0 <= loads[0].split_key < 2**62
    for key, bad in [("epoch", -1), ("epoch", 1.5), ("lr_scale", 0.0), ("lr_scale", 2.0),
                     ("lr_scale", float("nan")), ("split_key", 2**62), ("split_key", "1")]:
        with pytest.raises(ValueError, match=f"training {key} must be"):
            serialization.write_model(tmp_path / "bad.npz", meta, params,
                                      dict(old, **moments, **{key: bad}))


def _saved(net, path):
    net.save(path, training_state=True)
    return path


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
    for missing in ("v", "s"):
        record = net.training_state.to_record()
        del record[missing]
        with pytest.raises(ValueError, match=f"the training state lacks {missing}"):
            serialization.write_model(tmp_path / "x.npz", net._description(), net.parameters,
                                      record)
    for bad in (dict(learning_rate=-1.0), dict(beta1=7), dict(optimizer="lbfgs")):
        record = net.training_state.to_record()
        record["settings"] = {**record["settings"], **bad}
        with pytest.raises(ValueError, match=f"training settings: {next(iter(bad))}"):
            serialization.write_model(tmp_path / "x.npz", net._description(), net.parameters,
                                      record)
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reduce_lr_on_plateau_stops_at_the_smallest_normal_rate(backend, dtype, tmp_path):
    X, y = _data()
    plateau = dn.ReduceLROnPlateau(monitor="cost", factor=1e-200, patience=1, min_delta=1e9)
    net = dn.DeepNet([4, 6, 3], "relu", "softmax", seed=2, backend=backend, dtype=dtype)
    h = net.fit(X, y, epochs=6, callbacks=[plateau], **dict(KW, optimizer="gd"))
    tiny = float(np.finfo(dtype).tiny)
    assert h.learning_rate[2] == pytest.approx(max(0.01 * 1e-200, tiny), rel=1e-12)
    assert h.learning_rate[-1] == pytest.approx(tiny, rel=1e-12)
    assert 0 < net.training_state.lr_scale
    net.save(tmp_path / "ckpt.npz", training_state=True)     # a valid checkpoint
    assert dn.load(tmp_path / "ckpt.npz").training_state.lr_scale == net.training_state.lr_scale


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


def test_callbacks_may_implement_some_hooks_only():
    X, y = _data()

    class EpochsOnly:
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, epoch, logs):
            self.epochs.append(epoch)

    cb = EpochsOnly()
    _net("compiled").fit(X, y, epochs=3, callbacks=[cb], **KW)
    assert cb.epochs == [0, 1, 2]


def test_early_stopping_and_plateau_start_each_fit_afresh():
    X, y = _data()
    es = dn.EarlyStopping(monitor="cost", patience=2, min_delta=10.0)
    plateau = dn.ReduceLROnPlateau(monitor="cost", factor=0.5, patience=2, min_delta=10.0)
    first = _net("compiled").fit(X, y, epochs=10, callbacks=[es, plateau], **KW)
    assert first.stopped_epoch == 2 and es.stopped_epoch == 2
    assert first.learning_rate == [0.01] * 3
    # The same objects on a new network: the counts start again, nothing is
    # carried over (a stale stopped_epoch or best value would stop at once).
    second = _net("compiled", seed=5).fit(X, y, epochs=10, callbacks=[es, plateau], **KW)
    assert second.stopped_epoch == 2 and len(second.cost) == 3
    assert es.best == min(second.cost)
    assert second.learning_rate == [0.01] * 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_fit_ends_its_callbacks_and_keeps_the_last_finite_epoch(backend, tmp_path):
    X, _ = _data()
    y = X[:, 0]
    net = dn.DeepNet([4, 8, 1], "relu", "identity", seed=0, dtype="float32", backend=backend)
    net.fit(X, y, epochs=2, learning_rate=0.1, verbose=0)
    before = net.parameters
    log = dn.CSVLogger(tmp_path / "log.csv")
    es = dn.EarlyStopping(monitor="cost", patience=5)
    with pytest.raises(dn.DivergenceError):
        net.fit(X * 1e3, y * 1e3, epochs=5, learning_rate=3e38, verbose=0, warm_start=True,
                callbacks=[log, es])
    assert log._file is None        # closed by on_train_end
    # Not early stopping's best epoch: the divergence contract holds.
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)


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
    (lambda: dn.ModelCheckpoint("m{foo}.npz"), ValueError, r"path 'm\{foo\}.npz' names \{foo\}"),
    (lambda: dn.ModelCheckpoint("m{.npz"), ValueError, "path 'm{.npz' is not a valid format"),
    (lambda: dn.EarlyStopping(restart="no"), TypeError, "restart"),
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


def test_model_checkpoint_refuses_a_missing_folder_before_training(tmp_path):
    X, y = _data()
    net = _net("compiled")
    before = net.parameters
    cb = dn.ModelCheckpoint(tmp_path / "missing" / "m.npz")
    with pytest.raises(FileNotFoundError, match="folder that does not exist"):
        net.fit(X, y, epochs=2, callbacks=[cb], **KW)
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)


def _raises_at(epoch, exc):
    """A constant schedule that raises ``exc`` (Ctrl-C: KeyboardInterrupt) when
    asked for ``epoch``'s rate."""
    def schedule(e, rate):
        if e == epoch:
            raise exc
        return rate
    return schedule


class _FailsAtStart(dn.Callback):
    def on_train_begin(self, session):
        raise RuntimeError("refused at the start")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fit_failing_before_its_first_epoch_leaves_a_trained_network_as_it_was(backend):
    X, y = _data()
    net = _net(backend)
    net.fit(X, y, epochs=4, **KW)                     # adam, trained
    state = net.training_state
    before = (state.theta.copy(), state.v.copy(), state.s.copy(), state.t, state.optimizer,
              dict(state.settings), state.rng.bit_generator.state, state.epoch)
    for warm in (False, True):
        with pytest.raises(RuntimeError, match="refused at the start"):
            net.fit(X, y, epochs=2, warm_start=warm, callbacks=[_FailsAtStart()],
                    **dict(KW, optimizer="gd"))
        after = net.training_state
        assert after is state
        np.testing.assert_array_equal(after.theta, before[0])
        np.testing.assert_array_equal(after.v, before[1])
        np.testing.assert_array_equal(after.s, before[2])
        assert (after.t, after.optimizer, after.settings, after.rng.bit_generator.state,
                after.epoch) == before[3:]
    # ... and it still continues as if the failed fits had not been.
    straight = _net(backend)
    straight.fit(X, y, epochs=4, **KW)
    straight.fit(X, y, epochs=2, warm_start=True, verbose=0)
    net.fit(X, y, epochs=2, warm_start=True, verbose=0)
    np.testing.assert_array_equal(net.training_state.theta, straight.training_state.theta)


def test_a_cold_fit_diverging_in_its_first_epoch_gives_back_the_trained_parameters():
    X, y = _data()
    net = _net("compiled")
    net.fit(X, y, epochs=3, **KW)
    before = net.parameters
    with pytest.raises(dn.DivergenceError, match="epoch 0"):
        net.fit(X * 1e3, y, epochs=3, learning_rate=1e300, batch_size=8, verbose=0)
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_interrupt_keeps_the_rate_reductions_of_the_last_complete_epoch(backend, tmp_path):
    X, y = _data()
    plateau = dn.ReduceLROnPlateau(monitor="cost", factor=0.5, patience=1, min_delta=1e9)
    net = _net(backend)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        h = net.fit(X, y, epochs=6, callbacks=[plateau],
                    lr_schedule=_raises_at(3, KeyboardInterrupt), **dict(KW, optimizer="gd"))
    # No epoch improves by 1e9: the scale halves at the end of epochs 1 and 2,
    # the last one just before the interrupt.
    assert len(h.cost) == 3
    np.testing.assert_allclose(h.learning_rate, [0.01, 0.01, 0.005])
    assert net.training_state.lr_scale == 0.25
    ckpt = tmp_path / "c.npz"
    net.save(ckpt, training_state=True)
    assert dn.load(ckpt).training_state.lr_scale == 0.25


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_in_the_first_epoch_of_a_cold_refit_keeps_the_trained_network(backend):
    X, y = _data()
    net = _net(backend)
    net.fit(X, y, epochs=3, **KW)
    before, history = net.parameters, net.history_
    with pytest.warns(RuntimeWarning, match="after 0 complete epochs"):
        h = net.fit(X, y, epochs=3, lr_schedule=_raises_at(0, KeyboardInterrupt), **KW)
    assert h.interrupted and len(h) == 0 and net.history_ is h
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)
    with pytest.raises(ZeroDivisionError):
        net.fit(X, y, epochs=3, lr_schedule=_raises_at(0, ZeroDivisionError), **KW)
    assert net.history_ is h               # a failed fit leaves the last history too


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_error_after_some_epochs_leaves_the_last_complete_one(backend):
    X, y = _data()
    straight = _net(backend)
    straight.fit(X, y, epochs=2, **KW)
    net = _net(backend)
    with pytest.raises(ZeroDivisionError):
        net.fit(X, y, epochs=5, lr_schedule=_raises_at(2, ZeroDivisionError), **KW)
    np.testing.assert_array_equal(net.training_state.theta, straight.training_state.theta)
    assert net.training_state.epoch == 2 and net.training_state.t == straight.training_state.t
    assert (net.training_state.rng.bit_generator.state
            == straight.training_state.rng.bit_generator.state)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_error_keeps_the_last_complete_epoch_not_early_stoppings_best(backend):
    X, y = _data()
    straight = _net(backend)
    rising = lambda e, a: a * (e + 1)                       # noqa: E731 - epoch 0 is the best
    straight.fit(X, y, epochs=3, lr_schedule=rising, **dict(KW, optimizer="gd"))

    def fails_at_3(e, a):
        if e == 3:
            raise ZeroDivisionError
        return rising(e, a)
    es = dn.EarlyStopping(monitor="learning_rate", patience=10, restore_best=True)
    net = _net(backend)
    with pytest.raises(ZeroDivisionError):
        net.fit(X, y, epochs=6, lr_schedule=fails_at_3, callbacks=[es],
                **dict(KW, optimizer="gd"))
    assert es.best_epoch == 0
    np.testing.assert_array_equal(net.training_state.theta, straight.training_state.theta)


def test_early_stopping_that_continues_across_fits_reports_only_its_own_fits_stop():
    X, y = _data()
    net = _net("compiled")
    es = dn.EarlyStopping(monitor="learning_rate", patience=1, restore_best=False,
                          restart=False)
    h1 = net.fit(X, y, epochs=5, lr_schedule=lambda e, a: a * (e + 1), callbacks=[es],
                 **dict(KW, optimizer="gd"))
    assert (len(h1.cost), h1.stopped_epoch, es.stopped_epoch) == (2, 1, 1)
    h2 = net.fit(X, y, epochs=3, lr_schedule=lambda e, a: a / (e + 2), callbacks=[es],
                 **dict(KW, optimizer="gd"))
    assert (len(h2.cost), h2.stopped_epoch, es.stopped_epoch) == (3, None, None)


def test_model_checkpoint_names_a_validation_field_without_validation_data(tmp_path):
    X, y = _data()
    cb = dn.ModelCheckpoint(str(tmp_path / "m{val_cost:.3f}.npz"))
    with pytest.raises(ValueError, match=r"names \{val_cost\}, which this fit's logs do not hold"):
        _net("compiled").fit(X, y, epochs=2, callbacks=[cb], **KW)
