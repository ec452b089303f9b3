"""Which BLAS library the compiled kernels' matrix products run on.

The kernels call ``sgemm``/``dgemm`` through a table filled at the first
product (see :mod:`deepnet_fast.kernels.blas`): Intel MKL when the ``mkl``
package is installed (``pip install "deepnet_fast[mkl]"``), else SciPy's BLAS
(OpenBLAS in SciPy's wheels). Measured on 2-core AVX-512 machines, MKL ran
the benchmark networks' products 1.1–1.35× faster, one thread each; results
agree with either library to rounding. ``DEEPNET_FAST_BLAS=scipy`` (or
``mkl``, ``auto``) in the environment sets the first choice.
"""

from .kernels import blas as _kblas

__all__ = ["set_blas", "get_blas"]


def set_blas(library="auto"):
    """Run the compiled kernels' matrix products on ``library``.

    Parameters
    ----------
    library : {"auto", "mkl", "scipy"}
        ``"auto"`` takes MKL when the ``mkl`` package is installed, else
        SciPy's BLAS.

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
    """The BLAS library of the compiled kernels.

    Returns
    -------
    dict
        ``{"library": "mkl" or "scipy", "version": str}``; binds the default
        choice (see :func:`set_blas`) when no product has run yet.
    """
    name, version = _kblas.library()
    return {"library": name, "version": version}
