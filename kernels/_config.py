"""Compilation settings shared by every kernel module."""

from numba import njit

# fastmath without "nnan"/"ninf": keeps NaN and inf semantics (divergence must
# be detectable) while allowing contraction into FMA and reassociation.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Kernels release the GIL so that threads (and dask workers) run side by side.
JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)

jit = njit(**JIT)
