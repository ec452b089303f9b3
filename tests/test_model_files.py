"""Model files: round trip, and every kind of damage refused."""

import io
import json
import os
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import serialization
from deepnet_fast._validation import MAX_STEPS


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
    (dict(meta_update={"output_activation": "tanh"}), "invalid network"),
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


def test_load_of_a_directory_raises_is_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        dn.load(tmp_path)


# ------------------------------------------------------------ the file format alone

def _meta_and_arrays():
    rng = np.random.default_rng(3)
    meta = {"layer_dims": [4, 3, 2], "hidden_activation": "relu", "output_activation": "sigmoid",
            "dtype": "float64", "negative_slope": 0.01, "seed": 7}
    arrays = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((3, 1)),
              "W2": rng.standard_normal((2, 3)), "b2": np.zeros((2, 1))}
    return meta, arrays


def test_write_model_then_read_model_gives_back_meta_and_arrays(tmp_path):
    meta, arrays = _meta_and_arrays()
    serialization.write_model(tmp_path / "m.npz", meta, arrays)
    meta2, arrays2 = serialization.read_model(tmp_path / "m.npz")
    assert meta2 == dict(meta, training=None)
    assert sorted(arrays2) == sorted(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(arrays2[name], arr)
        assert arrays2[name].dtype == np.float64 and arrays2[name].flags.writeable


@pytest.mark.parametrize("name,value", [("W2", np.nan), ("b1", np.inf), ("W1", -np.inf)])
def test_write_model_refuses_non_finite_parameters_naming_the_array(tmp_path, name, value):
    meta, arrays = _meta_and_arrays()
    arrays[name] = arrays[name].copy()
    arrays[name][0, 0] = value
    with pytest.raises(ValueError, match=f"{name} holds NaN or infinite"):
        serialization.write_model(tmp_path / "m.npz", meta, arrays)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("key,value", [("seed", -1), ("seed", 2**70), ("layer_dims", [4]),
                                       ("dtype", "float16")])
def test_write_model_refuses_what_read_model_would_refuse(tmp_path, key, value):
    meta, arrays = _meta_and_arrays()
    meta[key] = value
    with pytest.raises(ValueError, match=key):
        serialization.write_model(tmp_path / "m.npz", meta, arrays)


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _zip(path, members, compress_type=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress_type) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _meta_npy(meta):
    return _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))


def _raw_meta(path):
    with np.load(path, allow_pickle=False) as f:
        return json.loads(f["meta"].tobytes())


def _loads_raising_only_documented_errors(path):
    """dn.load(path), or None when it raises one of the documented errors."""
    try:
        return dn.load(path)
    except (dn.ModelFileError, FileNotFoundError, IsADirectoryError):
        return None


# ------------------------------------------------------------ damage: only ModelFileError

def test_npy_renamed_npz_is_refused(tmp_path):
    bad = tmp_path / "array.npz"
    bad.write_bytes(_npy(np.zeros((3, 3))))
    with pytest.raises(dn.ModelFileError, match="not a readable"):
        dn.load(bad)


def test_deeply_nested_metadata_is_refused(trained, tmp_path):
    _, _, path = trained
    members = _members(path)
    members["meta.npy"] = _npy(np.frombuffer(b"[" * 100_000, np.uint8))
    bad = tmp_path / "bad.npz"
    _zip(bad, members)
    with pytest.raises(dn.ModelFileError, match="unreadable metadata"):
        dn.load(bad)


def _central_directory_offsets(data):
    offsets, pos = [], data.find(b"PK\x01\x02")
    while pos >= 0:
        offsets.append(pos)
        pos = data.find(b"PK\x01\x02", pos + 1)
    assert offsets
    return offsets


# Offsets inside a central directory record: general-purpose flags at 8,
# compression method at 10 (APPNOTE 4.3.12).
@pytest.mark.parametrize("field_offset,bit,match", [
    (10, 0x01, "compressed"),      # method 1 (shrink): NotImplementedError before
    (10, 0x08, "compressed"),      # method 8 (deflate) over stored data: zlib.error before
    (8, 0x01, "encrypted"),        # encrypted: RuntimeError before
    (8, 0x20, "patched"),          # compressed patched data
])
def test_flipped_zip_flags_or_compression_are_refused(trained, tmp_path, field_offset, bit, match):
    _, _, path = trained
    data = bytearray(path.read_bytes())
    for start in _central_directory_offsets(data):
        data[start + field_offset] ^= bit
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(dn.ModelFileError, match=match):
        dn.load(bad)


def test_extra_deflated_member_is_refused_before_decompressing(trained, tmp_path):
    # A few kB of deflate that expands to 64 MiB: refused on its name and
    # compression alone, so loading costs no more memory than a good file.
    import tracemalloc

    _, _, path = trained
    bad = tmp_path / "bomb.npz"
    bad.write_bytes(path.read_bytes())
    size = 64 << 20
    with zipfile.ZipFile(bad, "a", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("junk.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (size // 8,)})
            zeros = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(zeros)
    assert bad.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(dn.ModelFileError):
            dn.load(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_compressed_parameters_are_refused(trained, tmp_path):
    _, _, path = trained
    bad = tmp_path / "bad.npz"
    _zip(bad, _members(path), zipfile.ZIP_DEFLATED)
    with pytest.raises(dn.ModelFileError, match="compressed"):
        dn.load(bad)


def _huge_npy(shape, dtype="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + bytes(64)


def test_npy_header_claiming_a_huge_shape_is_refused(trained, tmp_path):
    # Was MemoryError: Unable to allocate 7.11 PiB.
    _, _, path = trained
    members = _members(path)
    members["W1.npy"] = _huge_npy((10**15,))
    bad = tmp_path / "bad.npz"
    _zip(bad, members)
    with pytest.raises(dn.ModelFileError, match="W1"):
        dn.load(bad)


def test_metadata_and_header_agreeing_on_a_huge_shape_are_refused(trained, tmp_path):
    # The metadata and the header agree; only the member's size betrays them.
    _, _, path = trained
    members = _members(path)
    meta = _raw_meta(path)
    meta["layer_dims"] = [10**7, 10**8, 3]
    members["meta.npy"] = _meta_npy(meta)
    members["W1.npy"] = _huge_npy((10**8, 10**7))
    members["b1.npy"] = _huge_npy((10**8, 1))
    members["W2.npy"] = _huge_npy((3, 10**8))
    bad = tmp_path / "bad.npz"
    _zip(bad, members)
    with pytest.raises(dn.ModelFileError, match="bytes"):
        dn.load(bad)


def test_oversized_metadata_is_refused(trained, tmp_path):
    _, _, path = trained
    members = _members(path)
    meta = _raw_meta(path)
    meta["padding"] = " " * (serialization.MAX_META_BYTES + 1)
    members["meta.npy"] = _meta_npy(meta)
    bad = tmp_path / "bad.npz"
    _zip(bad, members)
    with pytest.raises(dn.ModelFileError, match="larger than the limit"):
        dn.load(bad)


@pytest.mark.parametrize("key,value", [
    ("seed", -1), ("seed", 2**70), ("seed", True), ("seed", 1.5),
    ("negative_slope", -0.1), ("negative_slope", float("nan")), ("negative_slope", "0.1"),
    ("negative_slope", 10**400),
    ("dtype", "int8"), ("dtype", "float16"), ("dtype", ["float32"]),
    ("layer_dims", [5]), ("layer_dims", [5, 0, 3]), ("layer_dims", [5, True, 3]),
    ("layer_dims", "573"), ("layer_dims", [5, 7.0, 3]),
    ("hidden_activation", 3), ("hidden_activation", ["tanh", None]),
    ("output_activation", None),
])
def test_out_of_range_metadata_is_refused(trained, tmp_path, key, value):
    _, _, path = trained
    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, meta_update={key: value})
    with pytest.raises(dn.ModelFileError, match=key):
        dn.load(bad)


def test_boolean_version_is_refused(trained, tmp_path):
    _, _, path = trained
    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, meta_update={"version": True})
    with pytest.raises(dn.ModelFileError, match="version True"):
        dn.load(bad)


def test_non_finite_parameters_with_matching_checksum_are_refused(trained, tmp_path):
    _, _, path = trained
    W1 = dn.load(path).parameters["W1"].copy()
    W1[0, 0] = np.nan
    bad = tmp_path / "bad.npz"
    meta = _raw_meta(path)
    meta["sha256"]["W1"] = serialization._digest(W1)
    _rewrite(path, bad, arrays={"W1": W1}, meta_update={"sha256": meta["sha256"]})
    with pytest.raises(dn.ModelFileError, match="W1 holds NaN"):
        dn.load(bad)


def test_duplicate_members_are_refused(trained, tmp_path):
    _, _, path = trained
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(bad, "a") as zf:
            zf.writestr("W1.npy", _npy(np.zeros((7, 5), np.float32)))
    with pytest.raises(dn.ModelFileError, match="duplicate"):
        dn.load(bad)


def test_fortran_order_members_are_read_in_their_order(trained, tmp_path):
    net, X, path = trained
    other = tmp_path / "fortran.npz"
    params = net.parameters
    _rewrite(path, other, arrays={"W1": np.asfortranarray(params["W1"])})
    assert b"'fortran_order': True" in _members(other)["W1.npy"][:200]
    np.testing.assert_array_equal(dn.load(other).predict_proba(X), net.predict_proba(X))


# ------------------------------------------------------------ fuzzing

def _damaged_copies(data, rng, n):
    """``n`` damaged copies of ``data``: bit flips (a third of them inside zip
    records), truncations, insertions, deletions and overwrites."""
    records = [i for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06",
                             b"PK\x06\x07")
               for i in range(len(data)) if data.startswith(sig, i)]
    for k in range(n):
        bad = bytearray(data)
        kind = k % 6
        if kind in (0, 1):
            pos = (int(rng.integers(len(data))) if kind == 0
                   else min(len(data) - 1, int(rng.choice(records)) + int(rng.integers(64))))
            bad[pos] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            bad = bad[:int(rng.integers(len(data)))]
        elif kind == 3:
            pos = int(rng.integers(len(data) + 1))
            bad[pos:pos] = rng.bytes(int(rng.integers(1, 17)))
        elif kind == 4:
            pos = int(rng.integers(len(data)))
            del bad[pos:pos + int(rng.integers(1, 17))]
        else:
            pos = int(rng.integers(len(data)))
            span = int(rng.integers(1, 33))
            bad[pos:pos + span] = rng.bytes(len(bad[pos:pos + span]))
        yield bytes(bad)


def _fuzz(trained, tmp_path, n, seed):
    net, X, path = trained
    expected = net.predict_proba(X)
    bad = tmp_path / "fuzzed.npz"
    refused = 0
    for damaged in _damaged_copies(path.read_bytes(), np.random.default_rng(seed), n):
        bad.write_bytes(damaged)
        loaded = _loads_raising_only_documented_errors(bad)
        if loaded is None:
            refused += 1
        else:
            # Harmless damage (zip padding, an unused field): then the
            # checksums proved the arrays intact.
            np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    return refused


def test_fuzzed_files_raise_only_documented_errors(trained, tmp_path):
    refused = _fuzz(trained, tmp_path, 300, seed=2024)
    assert refused > 200


@pytest.mark.skipif(not os.environ.get("DEEPNET_FAST_FUZZ"),
                    reason="long fuzz run: set DEEPNET_FAST_FUZZ=1")
def test_fuzzed_files_raise_only_documented_errors_long(trained, tmp_path):
    _fuzz(trained, tmp_path, 10_000, seed=int(os.environ["DEEPNET_FAST_FUZZ"]))


# ------------------------------------------------------------ saving: permissions, leftovers

@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_permissions_follow_the_umask(trained, tmp_path, umask, mode):
    net, _, _ = trained
    previous = os.umask(umask)
    try:
        net.save(tmp_path / "new.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == mode


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_replaced_file_keeps_its_permissions(trained, mode):
    net, X, path = trained
    os.chmod(path, mode)
    previous = os.umask(0o077)
    try:
        net.save(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    np.testing.assert_array_equal(dn.load(path).predict(X), net.predict(X))


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_are_removed_by_the_next_save(trained, tmp_path):
    net, _, path = trained
    dead = tmp_path / f".model.npz.deepnet_fast-{_dead_pid()}-0a1b2c3d.tmp"
    alive = tmp_path / f".model.npz.deepnet_fast-{os.getppid()}-0a1b2c3d.tmp"
    alive_but_old = tmp_path / f".other.npz.deepnet_fast-{os.getppid()}-99.tmp"
    legacy_old = tmp_path / ".deepnet_fast-ab_cd123.tmp"
    unrelated = tmp_path / ".model.npz.someone-else-1.tmp"
    for p in (dead, alive, alive_but_old, legacy_old, unrelated):
        p.write_bytes(b"partial")
    day_ago = time.time() - 86400
    os.utime(alive_but_old, (day_ago, day_ago))
    os.utime(legacy_old, (day_ago, day_ago))
    os.utime(unrelated, (day_ago, day_ago))
    net.save(path)
    assert not dead.exists() and not alive_but_old.exists() and not legacy_old.exists()
    assert alive.exists() and unrelated.exists()


_KILLED_SAVE = """
import sys, time
import numpy as np
import deepnet_fast as dn

def hang(fh, **arrays):
    fh.write(b"PK partial")
    fh.flush()
    print("writing", flush=True)
    time.sleep(120)

np.savez = hang
dn.DeepNet([5, 7, 3], ["tanh"], "softmax", seed=1).save(sys.argv[1])
"""


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_save_killed_midway_leaves_a_named_temporary_file_that_the_next_save_removes(
        trained, tmp_path):
    net, X, path = trained
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    orphans = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert orphans == [p for p in orphans
                       if p.startswith(f".model.npz.deepnet_fast-{child.pid}-")] != []
    assert path.read_bytes() == before
    net.save(path)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    np.testing.assert_array_equal(dn.load(path).predict(X), net.predict(X))


# ------------------------------------------------------------ targets and sources of other kinds

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_save_refuses_a_fifo_and_leaves_it_a_fifo(trained, tmp_path):
    net, _, _ = trained
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        net.save(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_save_refuses_a_device_through_a_symlink(trained, tmp_path):
    net, _, _ = trained
    link = tmp_path / "null.npz"
    os.symlink("/dev/null", link)
    with pytest.raises(ValueError, match="is not a regular file"):
        net.save(link)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.path.islink(link)


def test_save_into_a_directory_raises_is_a_directory_and_writes_nothing(trained, tmp_path):
    net, _, _ = trained
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        net.save(folder)
    assert os.listdir(folder) == [] and not [p for p in os.listdir(tmp_path) if ".tmp" in p]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_load_of_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    code = f"import deepnet_fast as dn; dn.load({str(fifo)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "ModelFileError" in done.stderr
    assert "is not a regular file" in done.stderr


def _npy_with_header(header, data):
    """An npy member whose header dict is ``header`` (bytes), padded as numpy pads it."""
    header += b" " * ((64 - (11 + len(header)) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


@pytest.mark.parametrize("header", [
    b"{'descr': '<f4', 'fortran_order': False, 'shape': ((7, 5), }",     # tokenize.TokenError
    b"{'descr': '<,4', 'fortran_order': False, 'shape': (7, 5), }",      # SyntaxError
])
def test_malformed_npy_header_dict_is_refused(trained, tmp_path, header):
    _, _, path = trained
    members = _members(path)
    members["W1.npy"] = _npy_with_header(header, bytes(4 * 35))
    bad = tmp_path / "bad.npz"
    _zip(bad, members)
    with pytest.raises(dn.ModelFileError, match="not a readable deepnet_fast model file"):
        dn.load(bad)


def test_overlapping_members_are_refused(trained, tmp_path):
    """A member whose stored bytes run into the next member's: a small file
    would hold arrays larger than itself (CPython before 3.11.8 lets zipfile
    read them)."""
    _, _, path = trained
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    first, second = infos[0], infos[1]
    # Grow the first member's sizes (local header and central directory) so
    # that its data covers the second member's local header.
    grown = second.header_offset + 30 - (first.header_offset + 30 + len(first.filename))
    assert grown > first.compress_size
    for offset in (first.header_offset + 18, first.header_offset + 22):
        data[offset:offset + 4] = grown.to_bytes(4, "little")
    entry = _central_directory_offsets(bytes(data))[0]
    for offset in (entry + 20, entry + 24):
        data[offset:offset + 4] = grown.to_bytes(4, "little")
    bad = tmp_path / "overlap.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(dn.ModelFileError, match="overlaps the member before it"):
        dn.load(bad)


def test_file_written_in_the_other_byte_order_loads(trained, tmp_path):
    """As write_model would write it on a big-endian machine: its native
    arrays, checksummed as little-endian bytes."""
    net, X, path = trained
    meta = _raw_meta(path)
    arrays = {name: value.astype(value.dtype.newbyteorder(">"))
              for name, value in net.parameters.items()}
    assert all(serialization._digest(a) == meta["sha256"][n] for n, a in arrays.items())
    members = {"meta.npy": _meta_npy(meta), **{f"{n}.npy": _npy(a) for n, a in arrays.items()}}
    other = tmp_path / "big_endian.npz"
    _zip(other, members)
    loaded = dn.load(other)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


def test_step_counter_bound_is_checked_on_write_and_read(trained, tmp_path):
    """The kernels count steps in int64: a counter near 2**63 would overflow."""
    net, _, _ = trained
    record = net.training_state.to_record()
    message = r"training t must be an integer in \[0, 2\*\*62\)"
    for t in (MAX_STEPS, 2**63 - 3):
        with pytest.raises(ValueError, match=message):
            serialization.write_model(tmp_path / "x.npz", net._description(), net.parameters,
                                      {**record, "t": t})
    assert not (tmp_path / "x.npz").exists()
    path = tmp_path / "checkpoint.npz"
    net.save(path, training_state=True)
    members = _members(path)
    meta = _raw_meta(path)
    meta["training"]["t"] = MAX_STEPS
    members["meta.npy"] = _meta_npy(meta)
    bad = tmp_path / "bad.npz"
    _zip(bad, members)
    with pytest.raises(dn.ModelFileError, match=message):
        dn.load(bad)


def test_model_files_take_the_seeds_a_network_takes(tmp_path):
    from deepnet_fast.initialization import SEED_LIMIT
    meta, arrays = _meta_and_arrays()
    serialization.write_model(tmp_path / "m.npz", dict(meta, seed=SEED_LIMIT - 1), arrays)
    assert serialization.read_model(tmp_path / "m.npz")[0]["seed"] == SEED_LIMIT - 1
    for seed in (SEED_LIMIT, -1, "7", 7.0, False):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
            serialization.write_model(tmp_path / "x.npz", dict(meta, seed=seed), arrays)
    assert not (tmp_path / "x.npz").exists()
