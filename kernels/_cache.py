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
"""

import hashlib
import os

from numba.core import caching

PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))

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
        return ("deepnet_fast.kernels", sources_fingerprint())


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


def install():
    """Put :data:`LOCATORS` first in Numba's list (once; idempotent). They decline
    every file outside this package, which then gets Numba's own locators."""
    impl = _numba_class("CacheImpl", "_CacheImpl")
    classes = impl._locator_classes
    for cls in reversed(LOCATORS):
        if cls not in classes:
            classes.insert(0, cls)
