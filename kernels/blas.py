"""General matrix products on strided views, on the fastest BLAS at hand.

Numba's ``np.dot`` wants contiguous operands and has no ``alpha``/``beta``. The
threaded epoch needs strided views: a thread's share of a layer is a block of
rows or of columns of a larger matrix, read or written in place. :func:`gemm`
calls the Fortran ``sgemm``/``dgemm`` through a table of two function
pointers, filled the first time a product runs:

- ``"mkl"``: Intel MKL's sequential ``?gemm`` when the ``mkl`` package from PyPI
  is installed (``pip install deepnet_fast[mkl]``). On these machines it ran the
  products of the benchmark networks 1.1–1.35× faster than OpenBLAS, one thread
  each (``python -m deepnet_fast.kernels.blas`` measures it);
- ``"scipy"``: SciPy's BLAS (OpenBLAS in SciPy's wheels), the one Numba's own
  ``np.dot`` calls; always available.

Compiled code names the table and the resolver by symbol, never by address,
so kernels keep ``cache=True`` and one cache serves either library.
:func:`use` switches libraries between kernel calls; ``DEEPNET_FAST_BLAS``
(``auto``, ``mkl`` or ``scipy``) sets the first choice.
"""

import ctypes
import os
import threading

from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import JIT

LIBRARIES = ("auto", "mkl", "scipy")
ENV_VAR = "DEEPNET_FAST_BLAS"

_TABLE_SYMBOL = "deepnet_fast_gemm_table"
_RESOLVE_SYMBOL = "deepnet_fast_gemm_resolve"
_table = (ctypes.c_void_p * 2)()      # Fortran sgemm, dgemm
_state = {"library": None, "version": None, "error": None}
_lock = threading.Lock()


def _capsule_pointer(capsule):
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return pointer(capsule, name(capsule))


def _scipy_gemm():
    from scipy.linalg import cython_blas
    capi = cython_blas.__pyx_capi__
    import scipy
    return [_capsule_pointer(capi[f]) for f in ("sgemm", "dgemm")], f"SciPy {scipy.__version__}"


def mkl_path():
    """Path of ``mkl_rt`` from the ``mkl`` package, or None when not installed."""
    from importlib import metadata
    try:
        dist = metadata.distribution("mkl")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        name = f.name.lower()
        if "mkl_rt" in name and (".so" in name or name.endswith(".dll") or ".dylib" in name):
            path = os.path.realpath(dist.locate_file(f))
            if os.path.exists(path):
                return path
    return None


_MKL_THREADING_SEQUENTIAL = 1


def _mkl_gemm():
    path = mkl_path()
    if path is None:
        raise OSError("the mkl package is not installed (pip install mkl)")
    lib = ctypes.CDLL(path)
    # Every product runs on the calling thread: the threads are the kernels'
    # own (one share of a batch each), so MKL must not start a pool of its own.
    # Must precede any other MKL call to take effect.
    lib.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_THREADING_SEQUENTIAL))
    from importlib import metadata
    pointers = [ctypes.cast(getattr(lib, f), ctypes.c_void_p).value for f in ("sgemm", "dgemm")]
    return pointers, f"MKL {metadata.version('mkl')}"


def use(library=None):
    """Bind the products of every kernel to a BLAS library.

    Parameters
    ----------
    library : {"auto", "mkl", "scipy"}, optional
        ``"auto"`` (the default, or the value of ``DEEPNET_FAST_BLAS``) takes MKL
        when the ``mkl`` package is installed, else SciPy's BLAS.

    Returns
    -------
    str
        The library now bound: ``"mkl"`` or ``"scipy"``.

    Raises
    ------
    ValueError
        For an unknown name.
    OSError
        When ``"mkl"`` is asked for and cannot be loaded.

    Notes
    -----
    Not to be called while a kernel runs in another thread.
    """
    if library is None:
        library = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if library not in LIBRARIES:
        raise ValueError(f"BLAS library must be one of {', '.join(LIBRARIES)}; got {library!r}")
    with _lock:
        error = None
        if library in ("auto", "mkl"):
            try:
                pointers, version = _mkl_gemm()
                chosen = "mkl"
            except (OSError, AttributeError) as exc:
                if library == "mkl":
                    raise OSError(f"cannot use MKL: {exc}") from exc
                error = str(exc)
                library = "scipy"
        if library == "scipy":
            pointers, version = _scipy_gemm()
            chosen = "scipy"
        _table[0], _table[1] = pointers
        _state.update(library=chosen, version=version, error=error)
    return chosen


def library():
    """``(name, version)`` of the BLAS the kernels call, binding it if needed."""
    if _state["library"] is None:
        use()
    return _state["library"], _state["version"]


@ctypes.CFUNCTYPE(None)
def _resolve():
    # Called (with the GIL, by ctypes) from compiled code that found the table
    # empty: the first product of the process. An exception cannot cross into
    # compiled code, so fall back to SciPy, which is always installed.
    if _table[0] and _table[1]:
        return
    try:
        use()
    except Exception as exc:   # noqa: BLE001 - see above
        import warnings
        warnings.warn(f"{exc}; the kernels use SciPy's BLAS ({ENV_VAR}="
                      f"{os.environ.get(ENV_VAR, '')!r})", RuntimeWarning, stacklevel=1)
        use("scipy")


llvm.add_symbol(_TABLE_SYMBOL, ctypes.addressof(_table))
llvm.add_symbol(_RESOLVE_SYMBOL, ctypes.cast(_resolve, ctypes.c_void_p).value)

_KIND = {types.float32: 0, types.float64: 1}
_char = ir.IntType(8)
_int32 = ir.IntType(32)
_voidp = cgutils.voidptr_t


def _table_slot(builder, index):
    module = builder.module
    table = module.globals.get(_TABLE_SYMBOL)
    if table is None:
        table = ir.GlobalVariable(module, ir.ArrayType(_voidp, 2), _TABLE_SYMBOL)
        table.linkage = "external"
    zero = ir.Constant(_int32, 0)
    return builder.gep(table, [zero, ir.Constant(_int32, index)])


@intrinsic
def _fortran_gemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major ``c = alpha op(a) op(b) + beta c`` on the arrays' data
    (integers must fit in 32 bits: the LP64 interface)."""
    if not all(isinstance(x, types.Array) for x in (a, b, c)) or c.dtype not in _KIND:
        return None
    dtype = c.dtype
    sig = types.none(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        value_t = context.get_value_type(dtype)
        ptr = ir.PointerType
        fnty = ir.FunctionType(ir.VoidType(), [
            ptr(_char), ptr(_char), ptr(_int32), ptr(_int32), ptr(_int32), ptr(value_t),
            ptr(value_t), ptr(_int32), ptr(value_t), ptr(_int32), ptr(value_t), ptr(value_t),
            ptr(_int32)])

        def slot(value):
            return cgutils.alloca_once_value(builder, value)

        def char(i):
            return slot(builder.trunc(context.cast(builder, args[i], argtys[i], types.int64),
                                      _char))

        def int32(i):
            return slot(builder.trunc(context.cast(builder, args[i], argtys[i], types.int64),
                                      _int32))

        def scalar(i):
            return slot(context.cast(builder, args[i], argtys[i], dtype))

        def data(i):
            array = context.make_array(argtys[i])(context, builder, args[i])
            return array.data

        entry = _table_slot(builder, _KIND[dtype])
        empty = builder.icmp_unsigned("==", builder.load(entry), _voidp(None))
        with builder.if_then(empty, likely=False):
            resolve = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), _RESOLVE_SYMBOL)
            builder.call(resolve, ())
        fn = builder.bitcast(builder.load(entry), fnty.as_pointer())
        builder.call(fn, (char(0), char(1), int32(2), int32(3), int32(4), scalar(5), data(6),
                          int32(7), data(8), int32(9), scalar(10), data(11), int32(12)))
        return context.get_dummy_value()

    return sig, codegen


_N, _T = ord("n"), ord("t")
_INT32_MAX = 2**31 - 1


@njit(**JIT)
def _layout(X):
    """How BLAS reads ``X``'s memory as a column-major matrix.

    Returns ``(trans, ld)``: ``'n'`` when X's rows are contiguous (the memory
    is Xᵀ, with leading dimension the row stride), ``'t'`` when its columns are
    (the memory is X itself). -1 when neither holds.
    """
    r, c = X.shape
    size = X.itemsize
    if c == 1 or X.strides[1] == size:
        ld = X.strides[0] // size if r > 1 else c
        return _N, max(ld, c, 1)
    if r == 1 or X.strides[0] == size:
        ld = X.strides[1] // size if c > 1 else r
        return _T, max(ld, r, 1)
    return -1, 0


@njit(**JIT)
def gemm(alpha, A, B, beta, C):
    """C = alpha · A @ B + beta · C, in place.

    A (M, K), B (K, N), C (M, N) of one float dtype; A and B need contiguous
    rows or contiguous columns (a block of rows, a block of columns or a
    transpose of a C-contiguous array all qualify), C contiguous rows.
    """
    M, K = A.shape
    N = B.shape[1]
    if B.shape[0] != K or C.shape[0] != M or C.shape[1] != N:
        raise ValueError("gemm: operand shapes do not match")
    if M == 0 or N == 0:
        return
    trans_c, ldc = _layout(C)
    trans_a, lda = _layout(A)
    trans_b, ldb = _layout(B)
    if trans_c != _N or trans_a < 0 or trans_b < 0:
        raise ValueError("gemm: an operand has neither contiguous rows nor columns")
    if max(M, N, K, lda, ldb, ldc) > _INT32_MAX:
        raise ValueError("gemm: a dimension exceeds the 32-bit BLAS interface")
    # Row-major C = A B is column-major Cᵀ = Bᵀ Aᵀ: B goes first.
    _fortran_gemm(trans_b, trans_a, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc)
