"""Which BLAS library the compiled kernels' matrix products run on.

The kernels call ``sgemm``/``dgemm`` through a table filled at the first
product (see :mod:`deepnet_fast.kernels.blas`): Intel MKL (the ``mkl`` package,
``pip install "deepnet_fast[mkl]"``) or SciPy's BLAS (OpenBLAS in SciPy's
wheels). Neither is faster on every CPU: one thread of MKL ran the benchmark
networks' products 1.1–1.35× faster than OpenBLAS on an Intel AVX-512
machine, and half as fast on AMD Zen 5, where MKL takes a generic path. So
``"auto"`` measures: at the first use with both libraries installed it times
the products of a training step on each (:func:`deepnet_fast.kernels.blas.measure`,
a few tens of milliseconds) and keeps the faster. The answer is cached as JSON
in the user's cache directory (:func:`cache_path`), keyed by the CPU, the two
libraries' versions and the variables that steer their kernels, so later
processes only read it; an unwritable cache costs a measurement per process,
never an error. ``DEEPNET_FAST_BLAS=scipy`` (or ``mkl``, ``auto``) in the
environment sets the first choice; results agree with either library to
rounding.
"""

import json
import os
import platform
import sys
import tempfile

from .kernels import blas as _kblas

__all__ = ["cache_path", "cpu_name", "get_blas", "kernel_info", "set_blas"]

# Part of the cache key: a new calibration (other products, another rule)
# must not read the answers of the old one.
_CALIBRATION_VERSION = 1
# Environment variables that change which kernels a library runs.
_KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS",
                     "MKL_CBWR", "MKL_DEBUG_CPU_TYPE")
_MAX_ENTRIES = 64


def set_blas(library="auto"):
    """Run the compiled kernels' matrix products on ``library``.

    Parameters
    ----------
    library : {"auto", "mkl", "scipy"}
        ``"auto"`` takes the library that ran a training step's products
        faster on this machine (measured once, then read from the cache), or
        SciPy's BLAS when MKL is not installed.

    Returns
    -------
    str
        The library now in use, ``"mkl"`` or ``"scipy"``.

    Raises
    ------
    TypeError
        When ``library`` is not a string.
    ValueError
        For another name.
    OSError
        When ``"mkl"`` is asked for and the ``mkl`` package cannot be loaded.

    Notes
    -----
    Takes effect for the next kernel call; do not call it while another
    thread trains or predicts.
    """
    if not isinstance(library, str):
        raise TypeError(f"library must be a str, one of {', '.join(_kblas.LIBRARIES)}; "
                        f"got {type(library).__name__}")
    return _kblas.use(library.strip().lower())


def get_blas():
    """The BLAS library of the compiled kernels and how it was chosen.

    Returns
    -------
    dict
        ``{"library": "mkl" or "scipy", "version": str, "requested": "auto",
        "mkl" or "scipy", "how": str}``, where ``how`` says whether a
        measurement, the cache, a missing MKL, ``set_blas`` or
        ``DEEPNET_FAST_BLAS`` decided. Binds the default choice (see
        :func:`set_blas`) when no product has run yet.
    """
    name, version = _kblas.library()
    choice = _kblas.choice()
    return {"library": name, "version": version, "requested": choice["requested"],
            "how": choice["how"]}


# ---------------------------------------------------------------- the machine


def cpu_name():
    """The CPU's model name, with vendor, family and model where the model
    name is vague (virtual machines often say just "AMD EPYC")."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break                   # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields:
        name += (f" ({fields.get('vendor_id', '?')} family {fields['cpu family']} "
                 f"model {fields.get('model', '?')})")
    return name


def cache_path():
    """The JSON file of measured choices: ``$XDG_CACHE_HOME/deepnet_fast/blas.json``
    (``~/.cache`` by default; ``%LOCALAPPDATA%`` on Windows,
    ``~/Library/Caches`` on macOS)."""
    if sys.platform == "win32":
        root = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
    elif sys.platform == "darwin":
        root = os.path.expanduser("~/Library/Caches")
    else:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "deepnet_fast", "blas.json")


def _key():
    """What the measured choice depends on."""
    from importlib import metadata

    import scipy
    try:
        mkl = metadata.version("mkl")
    except metadata.PackageNotFoundError:
        mkl = None
    env = {v: os.environ[v] for v in _KERNEL_VARIABLES if v in os.environ}
    key = {"calibration": _CALIBRATION_VERSION, "cpu": cpu_name(),
           "machine": platform.machine(), "scipy": scipy.__version__, "mkl": mkl,
           "environment": env}
    return json.dumps(key, sort_keys=True)


def _read_cache(path):
    try:
        with open(path, encoding="utf-8") as fh:
            entries = json.load(fh)
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_cache(path, entries):
    """Write atomically (a concurrent reader sees the old or the new file);
    False when the directory is not writable."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".blas-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entries, fh, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return False
    return True


def _choose_auto():
    """The policy of ``"auto"``: ``(library, how, seconds)``."""
    if _kblas.mkl_path() is None:
        return "scipy", "MKL is not installed", None
    path = cache_path()
    try:
        key = _key()
    except Exception:   # noqa: BLE001 - no key, no cache: measure
        key = None
    entries = _read_cache(path) if key else {}
    entry = entries.get(key) if key else None
    if isinstance(entry, dict) and entry.get("library") in ("mkl", "scipy"):
        return (entry["library"], f"{entry.get('how', 'measured')} (cached in {path})",
                entry.get("seconds"))
    library, how, seconds = _kblas.measured_choice()
    if key and seconds is not None:
        entries[key] = {"library": library, "how": how, "seconds": seconds}
        for old in list(entries)[:-_MAX_ENTRIES]:
            del entries[old]
        where = f"cached in {path}" if _write_cache(path, entries) else f"{path} not writable"
        how = f"{how} ({where})"
    return library, how, seconds


_kblas.set_auto_policy(_choose_auto)


# ---------------------------------------------------------------- the kernel


def _scipy_first(info):
    path = info.get("filepath") or ""
    scipys = ("scipy.libs", "scipy_openblas32", f"{os.sep}scipy{os.sep}")
    return (not any(s in path for s in scipys), "numpy" in path or "openblas64" in path)


def kernel_info():
    """The bound library's kernel as threadpoolctl reports it.

    Returns
    -------
    dict
        ``{"library", "version", "internal_api", "lib_version", "architecture",
        "filepath"}``; ``architecture`` is OpenBLAS's kernel (e.g. "Haswell",
        "SkylakeX", "Zen") or, for MKL, the processor family of its code path.
        Fields threadpoolctl does not know are None.
    """
    name, version = _kblas.library()
    import scipy.linalg.cython_blas  # noqa: F401 - loaded, so threadpoolctl sees it
    from threadpoolctl import threadpool_info
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if name == "mkl":
        found = [i for i in blas if i.get("internal_api") == "mkl"]
    else:
        # SciPy's wheels bundle their own OpenBLAS (scipy.libs, or the
        # scipy-openblas32 package); NumPy's is a different copy.
        found = sorted(blas, key=_scipy_first)
    info = found[0] if found else {}
    architecture = info.get("architecture")
    if name == "mkl":
        architecture = _kblas.mkl_processor()
    return {"library": name, "version": version, "internal_api": info.get("internal_api"),
            "lib_version": info.get("version"), "architecture": architecture,
            "filepath": info.get("filepath")}
