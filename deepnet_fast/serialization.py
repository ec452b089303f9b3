"""Model files: a versioned, checksummed, pickle-free ``.npz``, and nothing else.

This module knows the file format and not the network: :func:`write_model`
takes a description of the network (a JSON-serialisable dict) and its
parameter arrays, :func:`read_model` gives them back, validated. Building a
:class:`~deepnet_fast.DeepNet` from them is the caller's business.

Layout of a model file (a zip archive as written by ``numpy.savez``, members
stored uncompressed):

- ``W1.npy, b1.npy, ..., WL.npy, bL.npy``: the parameters, plain C-order
  float32 or float64 arrays, all finite;
- ``meta.npy``: a uint8 array holding UTF-8 JSON with ``format``
  (``"deepnet_fast.model"``), ``version``, the description (``layer_dims``,
  ``hidden_activation``, ``output_activation``, ``dtype``, ``negative_slope``,
  ``seed``) and the SHA-256 of every array's bytes;
- version 2 only, optional, for checkpoints that training resumes from:
  ``v.npy`` and ``s.npy`` (the optimizer's flat moment vectors, each as long
  as the parameters or empty) and a ``training`` entry in the metadata with
  the ``optimizer``, its step counter ``t``, the shuffle stream's
  ``rng`` state (PCG64, as ``numpy.random.Generator.bit_generator.state``)
  and the last fit's ``settings`` (a flat dict of JSON scalars). Version 1
  files (parameters only) still load.

Reading is built for files that may be damaged or hostile. It raises only
:class:`~deepnet_fast.ModelFileError` (for anything wrong with the content) or
the ``OSError`` of opening the path (``FileNotFoundError``,
``IsADirectoryError``, ``PermissionError``), and its memory is bounded by the
size of the file: the member list, each member's compression, flags and
declared size, the metadata (at most :data:`MAX_META_BYTES`) and every
``.npy`` header are checked against one another before any array data is
read, and a member is read only up to the size its header announces. Nothing
in the file is ever unpickled or executed.

Saving writes a temporary file in the target's folder, flushes it to disk and
renames it over the target, so a crash mid-save leaves the old file intact.
The new file gets the permissions ``open`` would give it (``0o666`` less the
umask, as ``numpy.savez``), or those of the file it replaces. A target that is
not a regular file (a device such as ``/dev/null``, a FIFO) is refused rather
than replaced by the rename. A save killed
before the rename leaves ``.<name>.deepnet_fast-<pid>-<random>.tmp``; the next
save into that folder deletes such files whose process is gone or that are
older than :data:`STALE_TMP_SECONDS`.

Left out: compressed members (a deflated member can expand far beyond the
file's size), other archive writers, and symbolic links (a save replaces the
link, not the file it points to).
"""

import errno
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import time
import tokenize
import zipfile
import zlib

import numpy as np

from ._validation import FLOAT_DTYPE_NAMES, MAX_STEPS, shown
from .config import OPTIMIZER_FIELDS, FitConfig
from .exceptions import ModelFileError
from .initialization import check_seed

FORMAT = "deepnet_fast.model"
VERSION = 2
#: Versions read: 1 (parameters only) and 2 (optionally the training state).
READABLE_VERSIONS = (1, 2)
#: Keys of a training state (see :func:`write_model`).
TRAINING_KEYS = ("optimizer", "t", "rng", "settings")
#: Keys a training state may hold besides (written since they exist; a file
#: without them resumes at epoch 0, scale 1, with a split key from its stream).
OPTIONAL_TRAINING_KEYS = ("epoch", "lr_scale", "split_key")
_MOMENTS = ("v", "s")

#: Largest metadata accepted, in bytes: ~1,500 layers' checksums fit in it.
MAX_META_BYTES = 1 << 18
#: Largest ``.npy`` header accepted (numpy's own default limit).
MAX_NPY_HEADER = 10_000
#: Age after which a temporary file is deleted even if its pid seems alive
#: (pids are reused).
STALE_TMP_SECONDS = 6 * 3600

_DESCRIPTION = ("layer_dims", "hidden_activation", "output_activation", "dtype",
                "negative_slope", "seed")
# Zip general-purpose flags: encrypted (bit 0), compressed patched data (bit 5),
# strong encryption (bit 6). zipfile answers them with RuntimeError or
# NotImplementedError; refuse them up front.
_UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40
# Reads of array data are chunked so that the only large allocation is the
# array itself.
_CHUNK = 1 << 20
# What zipfile and numpy's npy parser raise on malformed input; each becomes a
# ModelFileError. Fuzzing met more than BadZipFile: OSError (seeks before the
# start), NotImplementedError (zip versions), UnicodeDecodeError (member names),
# EOFError; RuntimeError and zlib.error belong to the flags and methods refused
# up front; SyntaxError and tokenize.TokenError come from numpy's parser of an
# npy header whose dict is malformed.
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
           TypeError, KeyError, IndexError, struct.error, OverflowError, NotImplementedError,
           RuntimeError, SyntaxError, tokenize.TokenError)
# A zip member's local header: signature, versions, flags, method, time, date,
# CRC, sizes, then the lengths of the name and of the extra field.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_TMP_RE = re.compile(r"^\..+\.deepnet_fast-(\d+)-[0-9a-f]+\.tmp$")
# Temporary files of deepnet_fast <= 0.1 (tempfile.mkstemp): no pid, age only.
_OLD_TMP_RE = re.compile(r"^\.deepnet_fast-[A-Za-z0-9_]{8}\.tmp$")


def _digest(arr):
    """SHA-256 of the array's values as little-endian bytes, so that a file
    written on a machine of either byte order verifies on the other."""
    arr = np.asarray(arr)
    return hashlib.sha256(np.ascontiguousarray(
        arr, dtype=arr.dtype.newbyteorder("<")).tobytes()).hexdigest()


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _finite(x):
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond float range
        return False


def _expected_shapes(layer_dims):
    shapes = {}
    for l in range(1, len(layer_dims)):
        shapes[f"W{l}"] = (layer_dims[l], layer_dims[l - 1])
        shapes[f"b{l}"] = (layer_dims[l], 1)
    return shapes


def _check_description(meta):
    """The description keys of ``meta``, checked and normalised.

    Raises
    ------
    ValueError
        Naming the first key that is missing or out of range.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"the description must be a dict; got {type(meta).__name__}")
    missing = [key for key in _DESCRIPTION if key not in meta]
    if missing:
        raise ValueError(f"the description lacks {', '.join(missing)}")
    dims = meta["layer_dims"]
    if (not isinstance(dims, (list, tuple)) or len(dims) < 2
            or not all(_is_int(n) and n >= 1 for n in dims)):
        raise ValueError(f"layer_dims must be a list of at least 2 positive integers; "
                         f"got {shown(dims)}")
    hidden = meta["hidden_activation"]
    if not (isinstance(hidden, str)
            or isinstance(hidden, (list, tuple)) and all(isinstance(a, str) for a in hidden)):
        raise ValueError(f"hidden_activation must be a name or a list of names; "
                         f"got {shown(hidden)}")
    if not isinstance(meta["output_activation"], str):
        raise ValueError(f"output_activation must be a name; "
                         f"got {shown(meta['output_activation'])}")
    if meta["dtype"] not in FLOAT_DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(FLOAT_DTYPE_NAMES)}; got {shown(meta['dtype'])}")
    slope = meta["negative_slope"]
    if (not isinstance(slope, (int, float, np.integer, np.floating)) or isinstance(slope, bool)
            or not _finite(slope) or slope < 0):
        raise ValueError(f"negative_slope must be a finite number >= 0; got {shown(slope)}")
    try:
        seed = check_seed(meta["seed"])
    except TypeError as exc:      # every fault of the metadata is a ValueError
        raise ValueError(str(exc)) from None
    return {
        "layer_dims": [int(n) for n in dims],
        "hidden_activation": hidden if isinstance(hidden, str) else list(hidden),
        "output_activation": meta["output_activation"],
        "dtype": meta["dtype"],
        "negative_slope": float(slope),
        "seed": seed,
    }


def _check_training(training):
    """The JSON part of a training state, checked and normalised (ValueError)."""
    if not isinstance(training, dict):
        raise ValueError(f"the training state must be a dict; got {type(training).__name__}")
    missing = [key for key in TRAINING_KEYS if key not in training]
    if missing:
        raise ValueError(f"the training state lacks {', '.join(missing)}")
    optimizer, t, rng, settings = (training[key] for key in TRAINING_KEYS)
    if not isinstance(optimizer, str):
        raise ValueError(f"training optimizer must be a name; got {shown(optimizer)}")
    if not (_is_int(t) and 0 <= t < MAX_STEPS):
        raise ValueError(f"training t must be an integer in [0, 2**{MAX_STEPS.bit_length() - 1}); "
                         f"got {shown(t)}")
    if not (isinstance(rng, dict) and rng.get("bit_generator") == "PCG64"
            and isinstance(rng.get("state"), dict)
            and set(rng["state"]) == {"state", "inc"}
            and all(_is_int(v) and 0 <= v < 2**128 for v in rng["state"].values())
            and _is_int(rng.get("has_uint32")) and rng["has_uint32"] in (0, 1)
            and _is_int(rng.get("uinteger")) and 0 <= rng["uinteger"] < 2**32):
        raise ValueError("training rng must be a PCG64 bit_generator.state")
    if not (isinstance(settings, dict) and len(settings) <= 64 and all(
            isinstance(k, str) and (v is None or isinstance(v, (str, bool, int, float)))
            for k, v in settings.items())):
        raise ValueError("training settings must be a flat dict of numbers, strings, "
                         "booleans and None")
    # A warm fit continues the optimizer's settings: FitConfig's rules for them.
    given = {k: settings[k] for k in OPTIMIZER_FIELDS if settings.get(k) is not None}
    try:
        FitConfig(**given)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"training settings: {exc}") from None
    out = {"optimizer": optimizer, "t": int(t),
           "rng": {"bit_generator": "PCG64",
                   "state": {k: int(v) for k, v in rng["state"].items()},
                   "has_uint32": int(rng["has_uint32"]), "uinteger": int(rng["uinteger"])},
           "settings": dict(settings)}
    # Optional (files written before them resume with their defaults).
    epoch, lr_scale, split_key = (training.get(key) for key in OPTIONAL_TRAINING_KEYS)
    if epoch is not None:
        if not (_is_int(epoch) and 0 <= epoch < MAX_STEPS):
            raise ValueError(f"training epoch must be an integer in "
                             f"[0, 2**{MAX_STEPS.bit_length() - 1}); got {shown(epoch)}")
        out["epoch"] = int(epoch)
    if lr_scale is not None:
        if not (isinstance(lr_scale, (int, float)) and not isinstance(lr_scale, bool)
                and 0 < lr_scale <= 1):
            raise ValueError(f"training lr_scale must be a number in (0, 1]; got {shown(lr_scale)}")
        out["lr_scale"] = float(lr_scale)
    if split_key is not None:
        if not (_is_int(split_key) and 0 <= split_key < 2**62):
            raise ValueError(f"training split_key must be an integer in [0, 2**62); "
                             f"got {shown(split_key)}")
        out["split_key"] = int(split_key)
    return out


def _check_moment(moment, name, description, error):
    """A moment vector: 1-D, the parameters' dtype, as long as them or empty, finite."""
    n = sum(math.prod(shape) for shape in _expected_shapes(description["layer_dims"]).values())
    dtype = np.dtype(description["dtype"])
    if moment.ndim != 1 or moment.dtype != dtype or moment.shape[0] not in (0, n):
        raise error(f"{name} has shape {moment.shape} and dtype {moment.dtype}; expected "
                    f"({n},) or (0,) and {dtype}")
    if not np.isfinite(moment).all():
        raise error(f"{name} holds NaN or infinite values")


# ------------------------------------------------------------------ writing

def write_model(path, meta, arrays, training=None):
    """Atomically write a model file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    meta : dict
        The network's description: ``layer_dims``, ``hidden_activation``,
        ``output_activation``, ``dtype``, ``negative_slope``, ``seed``. Other
        keys are ignored.
    arrays : dict of ndarray
        ``W1, b1, ..., WL, bL`` with the shapes ``layer_dims`` implies.
    training : dict, optional
        A training state to resume from: ``optimizer`` (str), ``t`` (int >= 0),
        ``rng`` (a PCG64 ``bit_generator.state`` dict), ``settings`` (a flat
        dict of JSON scalars), ``v`` and ``s`` (flat moment vectors of the
        parameters' dtype, each as long as the parameters or empty); and
        optionally ``epoch`` (int >= 0), ``lr_scale`` (in (0, 1]) and
        ``split_key`` (int in [0, 2**62)).

    Raises
    ------
    ValueError
        If the description is invalid, an array is missing, extra, of the
        wrong shape or dtype, or holds NaN or infinite values (the message
        names it), or if ``path`` exists and is not a regular file. Nothing
        is written then.
    IsADirectoryError
        If ``path`` is a directory.
    """
    path = os.fspath(path)
    description = _check_description(meta)
    dtype = np.dtype(description["dtype"])
    expected = _expected_shapes(description["layer_dims"])
    if set(arrays) != set(expected):
        raise ValueError(f"arrays {sorted(arrays)} do not match layer_dims "
                         f"{description['layer_dims']}: expected {sorted(expected)}")
    params = {}
    for name, shape in expected.items():
        arr = np.asarray(arrays[name])
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"{name} has shape {arr.shape} and dtype {arr.dtype}; "
                             f"expected {shape} and {dtype}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} holds NaN or infinite values; refusing to save them")
        params[name] = np.ascontiguousarray(arr)
    header = {"format": FORMAT, "version": VERSION, **description}
    if training is not None:
        header["training"] = _check_training(training)
        missing = [name for name in _MOMENTS if name not in training]
        if missing:
            raise ValueError(f"the training state lacks {', '.join(missing)}")
        for name in _MOMENTS:
            moment = np.ascontiguousarray(np.asarray(training[name]))
            _check_moment(moment, name, description, ValueError)
            params[name] = moment
    header["sha256"] = {name: _digest(arr) for name, arr in params.items()}
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    write_atomically(path, lambda fh: np.savez(fh, meta=blob, **params))


def write_atomically(path, write):
    """Create or replace the file ``path`` with what ``write(fh)`` writes into
    a binary file object, atomically (see the module docstring): model files
    and ONNX exports alike.

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    ValueError
        If ``path`` exists and is not a regular file (a device, a FIFO, a
        socket), which the rename would replace. Nothing is written then.
    """
    path = os.fspath(path)
    mode = target_mode(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_tmp_files(folder)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.deepnet_fast-{os.getpid()}-"
                               f"{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def target_mode(path):
    """The permission bits a save into ``path`` keeps: those of the regular
    file it replaces, or None for a new file (which then gets 0o666 less the
    umask from ``os.open``).

    Raises
    ------
    IsADirectoryError, ValueError
        As :func:`write_atomically`, for a path that is a directory or
        another kind of file than a regular one.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"path {path!r} exists and is not a regular file (a device, FIFO or "
                         "socket); refusing to replace it")
    return stat.S_IMODE(st.st_mode)


def _fsync_folder(folder):
    # Makes the rename itself durable; not possible on every OS/filesystem.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid):
    if os.name == "nt":
        # os.kill(pid, 0) on Windows sends CTRL_C_EVENT: rely on age alone there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _remove_stale_tmp_files(folder):
    """Delete temporary files of killed saves into ``folder``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    now = time.time()
    for name in names:
        match = _TMP_RE.match(name)
        if match is None and _OLD_TMP_RE.match(name) is None:
            continue
        full = os.path.join(folder, name)
        try:
            old = now - os.lstat(full).st_mtime > STALE_TMP_SECONDS
            if old or (match is not None and not _pid_alive(int(match.group(1)))):
                os.unlink(full)
        except (OSError, ValueError, OverflowError):
            pass  # gone already, or not ours to delete


# ------------------------------------------------------------------ reading

def read_model(path):
    """Read and validate a model file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    meta : dict
        ``layer_dims`` (list of int), ``hidden_activation`` (str or list of
        str), ``output_activation`` (str), ``dtype`` (``"float32"`` or
        ``"float64"``), ``negative_slope`` (float), ``seed`` (int or None),
        ``training`` (None, or the dict ``optimizer``, ``t``, ``rng``,
        ``settings`` and those of ``epoch``, ``lr_scale``, ``split_key`` it holds,
        of :func:`write_model`). The activation and optimizer
        names are not checked against the library's.
    arrays : dict of ndarray
        ``W1, b1, ..., WL, bL`` (and ``v``, ``s`` with a training state),
        writable, C-contiguous, of ``meta["dtype"]``, finite, with their
        checksums verified.

    Raises
    ------
    ModelFileError
        For a file that is not a model file, or truncated, corrupted,
        tampered with, of another version or inconsistent.
    FileNotFoundError, IsADirectoryError, PermissionError
        From opening ``path``.
    """
    path = os.fspath(path)
    # Opened outside the try: failing to open is about the path, not the content.
    with _open_for_reading(path) as fh:
        try:
            return _read_archive(fh)
        except ModelFileError as exc:
            raise ModelFileError(f"{path!s}: {exc}") from None
        except _DAMAGE as exc:
            raise ModelFileError(f"{path!s} is not a readable deepnet_fast model file (damaged "
                                 f"or truncated): {type(exc).__name__}: {exc}") from None


def _open_for_reading(path):
    """``path`` opened for binary reading without blocking: ``open`` of a FIFO
    waits for a writer, before :func:`_read_archive` could refuse it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            # What ``open`` raises for a folder (os.open opens one).
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_archive(fh):
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError("is not a regular file")
    with zipfile.ZipFile(fh) as zf:
        infos = _check_members(zf, fh, st.st_size)
        if "meta.npy" not in infos:
            raise ModelFileError("has no deepnet_fast metadata")
        meta, digests = _read_meta(zf, infos["meta.npy"])
        dtype = np.dtype(meta["dtype"])
        expected = _expected_shapes(meta["layer_dims"])
        if meta["training"] is not None:
            n = sum(math.prod(shape) for shape in expected.values())
            for name in _MOMENTS:
                # A moment is as long as the parameters, or empty: its member
                # says which, within what the size check below allows.
                length = n if name + ".npy" in infos and infos[name + ".npy"].file_size >= \
                    n * dtype.itemsize else 0
                expected[name] = (length,)
        found = sorted(name[:-4] if name.endswith(".npy") else name
                       for name in infos if name != "meta.npy")
        if found != sorted(expected):
            raise ModelFileError(f"holds arrays {found}; expected {sorted(expected)}")
        missing = sorted(set(expected) - set(digests))
        if missing:
            raise ModelFileError(f"metadata has no checksum for {', '.join(missing)}")
        # Every declared size against the metadata before any data is read:
        # a member's size bounds the memory it may cost.
        for name, shape in expected.items():
            _check_size(infos[name + ".npy"], name, math.prod(shape) * dtype.itemsize)
        arrays = {}
        for name, shape in expected.items():
            arr = _read_npy(zf, infos[name + ".npy"], name, shape, dtype)
            if digests[name] != _digest(arr):
                raise ModelFileError(f"checksum of {name} does not match (file damaged "
                                     "or modified)")
            if not np.isfinite(arr).all():
                raise ModelFileError(f"{name} holds NaN or infinite values")
            arrays[name] = arr
    return meta, arrays


def _check_members(zf, fh, file_size):
    """Name -> ZipInfo, after checking what can be checked without reading
    more than the members' local headers from ``fh``."""
    infos = zf.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise ModelFileError("holds duplicate members")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"member {info.filename!r} is compressed (method "
                                 f"{info.compress_type}); model files store members uncompressed")
        if info.flag_bits & _UNSUPPORTED_FLAGS:
            raise ModelFileError(f"member {info.filename!r} is encrypted or patched "
                                 f"(flags {info.flag_bits:#x})")
        if (info.compress_size != info.file_size
                or info.header_offset + info.compress_size > file_size):
            raise ModelFileError(f"member {info.filename!r} claims {info.file_size} bytes; "
                                 f"the file has {file_size}")
    _check_disjoint(fh, infos)
    return dict(zip(names, infos))


def _check_disjoint(fh, infos):
    """Refuses members whose bytes overlap: each member's local header and
    data must end before the next one starts. Overlapping members let a small
    file hold many large arrays (the bytes of one array holding the next
    member), which would break the bound of memory by the file's size;
    zipfile only checks this from CPython 3.11.8/3.12.2 (CVE-2024-0450)."""
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise ModelFileError(f"member {info.filename!r} overlaps the member before it")
        fh.seek(info.header_offset)
        local = fh.read(_LOCAL_HEADER.size)
        if len(local) != _LOCAL_HEADER.size:
            raise ModelFileError(f"member {info.filename!r} is truncated")
        fields = _LOCAL_HEADER.unpack(local)
        end = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1] + \
            info.compress_size


def _check_size(info, name, nbytes):
    if not nbytes <= info.file_size <= nbytes + MAX_NPY_HEADER:
        raise ModelFileError(f"{name} has {info.file_size} bytes; the metadata implies "
                             f"{nbytes} of data")


def _read_meta(zf, info):
    """The validated description and the checksums from ``meta.npy``."""
    too_large = f"metadata of {{}} bytes is larger than the limit ({MAX_META_BYTES})"
    if info.file_size > MAX_META_BYTES + MAX_NPY_HEADER:
        raise ModelFileError(too_large.format(info.file_size))
    with zf.open(info) as member:
        shape, fortran, dtype, header_len = _read_npy_header(member, "metadata")
        if dtype != np.uint8 or len(shape) != 1 or header_len + shape[0] != info.file_size:
            raise ModelFileError("has no deepnet_fast metadata (meta is not a byte string)")
        if shape[0] > MAX_META_BYTES:
            raise ModelFileError(too_large.format(shape[0]))
        raw = _read_exact(member, shape[0], "metadata")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise ModelFileError(f"has unreadable metadata: {type(exc).__name__}: "
                             f"{shown(str(exc), 200)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError("is not a deepnet_fast model file")
    version = meta.get("version")
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise ModelFileError(f"has model format version {shown(version)}; this deepnet_fast "
                             f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    try:
        description = _check_description(meta)
        training = meta.get("training")
        if training is not None:
            if version < 2:
                raise ValueError("a version 1 file cannot hold a training state")
            training = _check_training(training)
        description["training"] = training
    except ValueError as exc:
        raise ModelFileError(f"has invalid metadata: {exc}") from None
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or not all(
            isinstance(d, str) and re.fullmatch(r"[0-9a-f]{64}", d) for d in digests.values()):
        raise ModelFileError("has invalid metadata: sha256 must map names to hex digests")
    return description, digests


def _read_npy_header(member, what):
    """``(shape, fortran_order, dtype, header length)`` of an ``.npy`` stream,
    reading at most :data:`MAX_NPY_HEADER` bytes."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ModelFileError(f"{what} has npy format version {version}")
    length_format = "<H" if version == (1, 0) else "<I"
    length_bytes = _read_exact(member, struct.calcsize(length_format), f"{what} header")
    (length,) = struct.unpack(length_format, length_bytes)
    # numpy would read a v2 header of any claimed length (up to 4 GiB) first.
    if length > MAX_NPY_HEADER:
        raise ModelFileError(f"{what} has an npy header of {length} bytes")
    buf = io.BytesIO(bytes(length_bytes) + bytes(_read_exact(member, length, f"{what} header")))
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    return shape, fortran, dtype, np.lib.format.MAGIC_LEN + len(length_bytes) + length


def _read_npy(zf, info, name, shape, dtype):
    with zf.open(info) as member:
        hshape, fortran, hdtype, header_len = _read_npy_header(member, name)
        # Same kind and width in either byte order: the file may come from a
        # machine of the other endianness.
        if tuple(hshape) != shape or hdtype.kind != "f" or hdtype.itemsize != dtype.itemsize:
            raise ModelFileError(f"{name} has shape {tuple(hshape)} and dtype {hdtype}; "
                                 f"expected {shape} and {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        if header_len + nbytes != info.file_size:
            raise ModelFileError(f"{name} has {info.file_size - header_len} bytes of data; "
                                 f"its header implies {nbytes}")
        buf = _read_exact(member, nbytes, name)
    arr = np.frombuffer(buf, dtype=hdtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr, dtype=dtype)


def _read_exact(member, nbytes, what):
    """``nbytes`` from ``member`` into one bytearray; ``nbytes`` was checked
    against the member's size, which was checked against the file's."""
    buf = bytearray(nbytes)
    view = memoryview(buf)
    pos = 0
    while pos < nbytes:
        chunk = member.read(min(_CHUNK, nbytes - pos))
        if not chunk:
            raise ModelFileError(f"{what} is truncated")
        view[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
    return buf
