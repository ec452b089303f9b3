"""Model files: round trip, and every kind of damage refused."""

import json
import os
import zipfile

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import serialization


@pytest.fixture
def trained(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = rng.integers(0, 3, 60)
    net = dn.DeepNet([5, 7, 3], ["tanh"], "softmax", seed=1, dtype="float32", negative_slope=0.2)
    net.fit(X, y, epochs=5, learning_rate=0.1, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path)
    return net, X, path


def test_save_load_gives_identical_predictions(trained):
    net, X, path = trained
    loaded = dn.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.layer_dims == net.layer_dims and loaded.activations == net.activations
    assert loaded.dtype == np.float32 and loaded.negative_slope == 0.2


def test_model_file_holds_no_pickle(trained):
    _, _, path = trained
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            header = zf.read(name)[:200]
            assert b"'descr': '|O'" not in header and b"descr': '|O" not in header
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(f["meta"].tobytes())
    assert meta["format"] == "deepnet_fast.model" and meta["version"] == serialization.VERSION


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_files_are_refused(trained, tmp_path, fraction):
    _, _, path = trained
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(dn.ModelFileError):
        dn.load(bad)


def test_every_flipped_byte_in_the_arrays_is_refused(trained, tmp_path):
    _, _, path = trained
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    for pos in rng.choice(len(data), 40, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 0x40
        bad.write_bytes(bytes(flipped))
        try:
            net = dn.load(bad)
        except dn.ModelFileError:
            continue
        # A flip in zip padding or an unused header field may leave the
        # content intact: then the loaded model must be exactly the original.
        orig = dn.load(path)
        for k, v in orig.parameters.items():
            np.testing.assert_array_equal(net.parameters[k], v)


def _rewrite(path, out, arrays=None, meta_update=None):
    with np.load(path, allow_pickle=False) as f:
        contents = {k: f[k] for k in f.files}
    meta = json.loads(contents.pop("meta").tobytes())
    if meta_update:
        meta.update(meta_update)
    contents.update(arrays or {})
    np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **contents)


@pytest.mark.parametrize("change,match", [
    (dict(meta_update={"version": 99}), "version 99"),
    (dict(meta_update={"format": "other"}), "not a deepnet_fast model"),
    (dict(arrays={"W1": np.zeros((7, 4), np.float32)}), "W1 has shape"),
    (dict(arrays={"b2": np.ones((3, 1), np.float32)}), "checksum of b2"),
    (dict(arrays={"W9": np.ones((3, 1), np.float32)}), "holds arrays"),
    (dict(meta_update={"output_activation": "relu"}), "invalid network"),
])
def test_tampered_or_inconsistent_files_are_refused(trained, tmp_path, change, match):
    _, _, path = trained
    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, **change)
    with pytest.raises(dn.ModelFileError, match=match):
        dn.load(bad)


def test_pickled_payload_is_never_loaded(tmp_path):
    bad = tmp_path / "evil.npz"
    np.savez(bad, meta=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(dn.ModelFileError):
        dn.load(bad)


def test_interrupted_save_leaves_the_old_file(trained, monkeypatch):
    net, X, path = trained
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        net.save(path)
    assert path.read_bytes() == before
    assert [p for p in os.listdir(path.parent) if p.endswith(".tmp")] == []
    np.testing.assert_array_equal(dn.load(path).predict(X), net.predict(X))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        dn.load(tmp_path / "nope.npz")
