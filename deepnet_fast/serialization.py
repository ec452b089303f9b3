"""Model files: a versioned, checksummed, pickle-free ``.npz``.

Layout of a model file (a zip archive as written by ``numpy.savez``):

- ``W1.npy, b1.npy, ..., WL.npy, bL.npy``: the parameters, plain arrays;
- ``meta.npy``: a uint8 array holding UTF-8 JSON with ``format``
  (``"deepnet_fast.model"``), ``version``, the constructor arguments
  (``layer_dims``, activations, ``dtype``, ``negative_slope``, ``seed``) and the
  SHA-256 of every parameter array's bytes.

Loading opens the archive with ``allow_pickle=False`` (nothing in the file is
ever executed), checks the format, version, shapes, dtypes and checksums, and
builds the network only after everything has passed: a damaged file is refused
whole. Saving writes a temporary file in the same folder, flushes it to disk
and renames it over the target, so a crash mid-save leaves the old file intact.
"""

import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

from .exceptions import ModelFileError

FORMAT = "deepnet_fast.model"
VERSION = 1


def _digest(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def save_model(net, path):
    """Atomically write ``net`` to ``path`` (see the module docstring)."""
    path = os.fspath(path)
    params = net.parameters
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "layer_dims": net.layer_dims,
        "hidden_activation": (net.hidden_activation if isinstance(net.hidden_activation, str)
                              else list(net.hidden_activation)),
        "output_activation": net.output_activation,
        "dtype": net.dtype.name,
        "negative_slope": net.negative_slope,
        "seed": None if net.seed is None else int(net.seed),
        "sha256": {k: _digest(v) for k, v in params.items()},
    }
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".deepnet_fast-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=blob, **params)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path):
    """Every array of the archive, read fully, without pickle."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path!s} is not a readable deepnet_fast model file "
                             f"(damaged or truncated): {exc}") from None


def load_model(path):
    """Read a model written by :meth:`DeepNet.save`.

    Raises
    ------
    ModelFileError
        For a truncated, corrupted, tampered, wrong-version or inconsistent file.
    """
    from .network import DeepNet

    arrays = _read(os.fspath(path))
    if "meta" not in arrays or arrays["meta"].dtype != np.uint8 or arrays["meta"].ndim != 1:
        raise ModelFileError(f"{path!s} has no deepnet_fast metadata")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path!s} has unreadable metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!s} is not a deepnet_fast model file")
    if meta.get("version") != VERSION:
        raise ModelFileError(f"{path!s} has model format version {meta.get('version')!r}; "
                             f"this deepnet_fast reads version {VERSION}")
    try:
        dims = [int(n) for n in meta["layer_dims"]]
        dtype = np.dtype(meta["dtype"])
        digests = dict(meta["sha256"])
        L = len(dims) - 1
        expected = {}
        for l in range(1, L + 1):
            expected[f"W{l}"] = (dims[l], dims[l - 1])
            expected[f"b{l}"] = (dims[l], 1)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!s} has incomplete metadata: {exc}") from None
    if set(arrays) != set(expected):
        raise ModelFileError(f"{path!s} holds arrays {sorted(arrays)}; expected {sorted(expected)}")
    for name, shape in expected.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype != dtype:
            raise ModelFileError(f"{path!s}: {name} has shape {arr.shape} and dtype {arr.dtype}; "
                                 f"expected {shape} and {dtype}")
        if digests.get(name) != _digest(arr):
            raise ModelFileError(f"{path!s}: checksum of {name} does not match (file damaged "
                                 "or modified)")
    try:
        net = DeepNet(dims, meta["hidden_activation"], meta["output_activation"],
                      init=arrays, seed=meta.get("seed"), dtype=dtype.name,
                      negative_slope=meta["negative_slope"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!s} describes an invalid network: {exc}") from None
    return net
