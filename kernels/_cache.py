"""When a kernel's cached machine code is stale: after an edit to any kernel module.

Numba stamps a function's on-disk cache with a hash of the one file that
defines it (and keys each entry on the function's own bytecode). A kernel's
machine code also holds every kernel it calls, from other modules:
``training`` calls ``activations``, which inlines ``simd_math``'s polynomials
and ``_scalars``' constants. With Numba's stamp, an edit to ``simd_math.py``
left ``training``'s cache serving the old polynomials.

The locators here take over, for the files of this package only, Numba's three
file-backed locators (``NUMBA_CACHE_DIR``, the package's ``__pycache__``, the
user's cache directory: same directories, same order, same file names) and
stamp every kernel cache with one fingerprint of all the package's sources.
An edit to any kernel module recompiles every kernel on its next use; an
unchanged tree loads from the cache as before. The fingerprint is one hash of
some 3,000 lines, computed once per process.

Two processes may compile the same kernels at once (a fit and the helper that
compiles its prediction kernel beside it, dask workers on a first run).
Numba numbers a function's data files in the order their signatures arrive:
two processes that read the same index pick the same number for two
different signatures, and the index can end up naming, for one signature,
the file of the other (numba/numba#10128: the wrong machine code for the
argument types). :class:`KeyedDataFiles` names each data file of this
package by a hash of its key instead, and writes it before the index: an
interleaving can lose an index entry (a later miss, compiled again), never
pair a key with another key's code.
"""

import hashlib
import os

from numba.core import caching

PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))

# The first item of this package's source stamp, which marks its cache files.
STAMP = "deepnet_fast.kernels"

_fingerprint = None


def sources_fingerprint():
    """SHA-256 of every ``.py`` file of the kernel package (names and contents)."""
    global _fingerprint
    if _fingerprint is None:
        digest = hashlib.sha256()
        for name in sorted(os.listdir(PACKAGE_DIR)):
            if name.endswith(".py"):
                with open(os.path.join(PACKAGE_DIR, name), "rb") as f:
                    source = f.read()
                digest.update(b"%s\0%d\0" % (name.encode(), len(source)))
                digest.update(source)
        _fingerprint = digest.hexdigest()
    return _fingerprint


def _in_package(py_file):
    try:
        return os.path.dirname(os.path.realpath(py_file)) == PACKAGE_DIR
    except (OSError, TypeError, ValueError):
        return False


class _KernelSources:
    """Mixin for a Numba locator: only this package's files, stamped with the
    fingerprint of all of them."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _in_package(py_file):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return (STAMP, sources_fingerprint())


def _numba_class(*names):
    # Numba renamed its locators (``_InTreeCacheLocator`` → ``InTreeCacheLocator``).
    for name in names:
        cls = getattr(caching, name, None)
        if cls is not None:
            return cls
    raise ImportError(f"numba.core.caching has none of {names}")


class UserProvidedLocator(_KernelSources, _numba_class("UserProvidedCacheLocator",
                                                       "_UserProvidedCacheLocator")):
    """``NUMBA_CACHE_DIR`` (or the directory ``_config`` falls back to)."""


class InTreeLocator(_KernelSources, _numba_class("InTreeCacheLocator", "_InTreeCacheLocator")):
    """The package's ``__pycache__``."""


class UserWideLocator(_KernelSources, _numba_class("UserWideCacheLocator",
                                                   "_UserWideCacheLocator")):
    """The user's cache directory (``~/.cache/numba``)."""


LOCATORS = (UserProvidedLocator, InTreeLocator, UserWideLocator)

class KeyedDataFiles(caching.IndexDataCacheFile):
    """Numba's index and data files, with this package's data files named by
    their key (see the module's docstring); other files as Numba names them."""

    def save(self, key, data):
        if not (isinstance(self._source_stamp, tuple) and self._source_stamp[:1] == (STAMP,)):
            return super().save(key, data)
        number = int(hashlib.sha256(repr(key).encode()).hexdigest()[:12], 16)
        name = self._data_name(number)
        self._save_data(name, data)
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def install():
    """Put :data:`LOCATORS` first in Numba's list (once; idempotent). They decline
    every file outside this package, which then gets Numba's own locators."""
    impl = _numba_class("CacheImpl", "_CacheImpl")
    classes = impl._locator_classes
    for cls in reversed(LOCATORS):
        if cls not in classes:
            classes.insert(0, cls)
    # Numba's Cache creates its files through this module-level name.
    caching.IndexDataCacheFile = KeyedDataFiles
