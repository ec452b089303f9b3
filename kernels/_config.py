"""Compilation settings shared by every kernel module, and where their cache lives.

Numba picks a cache directory for each ``cache=True`` function when it is
decorated, and raises ("no locator available") when neither the package's
``__pycache__`` nor the user's cache directory (``~/.cache/numba``) is
writable: a read-only install used by an account without a home. Every kernel
module imports this one first, so it checks once, on a function of this
directory, and otherwise points Numba's ``CACHE_DIR`` at a private directory
under the system temp directory (this also moves the cache of any other Numba
code of the process). When even that fails, the kernels compile without a
cache, with one warning.

Before that, it installs the kernel package's cache locators (:mod:`._cache`):
a kernel's cache is stale after an edit to *any* kernel module, not only to
the file that defines it.
"""

import os
import stat
import tempfile
import warnings

from numba import config, njit

from . import _cache

# fastmath without "nnan"/"ninf": keeps NaN and inf semantics (divergence must
# be detectable) while allowing contraction into FMA and reassociation.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Kernels release the GIL so that threads (and dask workers) run side by side.
JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)


def _probe():
    """A function beside the kernels: Numba locates its cache as theirs."""


def _cache_located():
    from numba.core.caching import FunctionCache
    try:
        FunctionCache(_probe)
    except RuntimeError:
        return False
    return True


def _private_temp_dir():
    """``<tmp>/deepnet_fast-numba-<uid>``, owned by this user and closed to
    others: cache files are code, so a directory another user could have
    created or can write into is refused (OSError)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(),
                        "deepnet_fast-numba" + ("" if uid is None else f"-{uid}"))
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or (uid is not None and (st.st_uid != uid
                                                              or st.st_mode & 0o077)):
        raise OSError(f"{path} is not a private directory")
    return path


def _locate_cache():
    if _cache_located():
        return
    previous = config.CACHE_DIR
    try:
        config.CACHE_DIR = _private_temp_dir()
        if _cache_located():
            return
    except OSError:
        pass
    config.CACHE_DIR = previous
    JIT["cache"] = False
    warnings.warn("deepnet_fast: no writable Numba cache directory (set NUMBA_CACHE_DIR); "
                  "the kernels compile again in every process", RuntimeWarning, stacklevel=2)


_cache.install()
_locate_cache()

jit = njit(**JIT)

# The glue between the kernels (views, shares, the steps of a batch) is
# inlined into its caller when typed, not compiled as a function of its own:
# Numba optimises and compiles to machine code each function together with
# everything it calls, so every level of calls compiled all the code below it
# once more (a first fit: 84 compiled functions, ~19 s of CPU; inlined, ~14 s).
# The leaves (activations, losses, updates, BLAS calls) stay functions, each
# compiled once.
INLINE = dict(JIT, inline="always")
