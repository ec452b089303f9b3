"""General matrix products on strided views, on the faster BLAS at hand.

Numba's ``np.dot`` wants contiguous operands and has no ``alpha``/``beta``. The
threaded epoch needs strided views: a thread's share of a layer is a block of
rows or of columns of a larger matrix, read or written in place. :func:`gemm`
calls the Fortran ``sgemm``/``dgemm`` through a table of two function
pointers, filled the first time a product runs:

- ``"mkl"``: Intel MKL's sequential ``?gemm`` when the ``mkl`` package from PyPI
  is installed (``pip install deepnet_fast[mkl]``);
- ``"scipy"``: SciPy's BLAS (OpenBLAS in SciPy's wheels), the one Numba's own
  ``np.dot`` calls; always available.

Neither is faster everywhere: on an Intel AVX-512 machine one thread of MKL
ran the benchmark networks' products 1.1–1.35× faster than OpenBLAS, on AMD
Zen 5 OpenBLAS ran twice as fast as MKL (MKL takes a generic path on AMD).
So ``"auto"`` asks a policy (:func:`set_auto_policy`; ``deepnet_fast.blas``
installs one that caches its answer per machine), by default
:func:`measure`: the products of a training step on each library, one
thread each, in a few tens of milliseconds.

Every product goes to BLAS, however small: Numba kernels lost to it on the
small networks' products. Measured on an AMD EPYC Zen 4 (family 25 model 17,
2 cores, AVX-512), one thread, OpenBLAS 0.3.30 on its SkylakeX kernels
(issue 16 item 3): the five products of a digits-small batch (64-32-10, 32
samples) take 0.23–2.1 µs in float32 (38–108 GFLOP/s), a call from compiled
code ~50 ns. A register-blocked kernel on explicit 512-bit vectors (8×32 and
4×32 tiles, masked edges; ``vfmadd231ps zmm`` with broadcasts in its
assembly), with B transposed into a buffer first where its columns are the
contiguous side, took 1.1–1.75× BLAS's time on every one of them, in both
dtypes; plain Numba loops (LLVM's vectoriser: runtime alias checks, scalar
remainders on 10–64-wide rows) 3–10×.

Compiled code names the table and the resolver by symbol, never by address,
so kernels keep ``cache=True`` and one cache serves either library.
:func:`use` switches libraries between kernel calls; ``DEEPNET_FAST_BLAS``
(``auto``, ``mkl`` or ``scipy``) sets the first choice.
"""

import ctypes
import math
import os
import threading
import time

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import INLINE, JIT

LIBRARIES = ("auto", "mkl", "scipy")
ENV_VAR = "DEEPNET_FAST_BLAS"

_TABLE_SYMBOL = "deepnet_fast_gemm_table"
_RESOLVE_SYMBOL = "deepnet_fast_gemm_resolve"
_table = (ctypes.c_void_p * 2)()      # Fortran sgemm, dgemm
_state = {"library": None, "version": None, "error": None, "requested": None, "how": None,
          "seconds": None}
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


def _mkl_library():
    path = mkl_path()
    if path is None:
        raise OSError("the mkl package is not installed (pip install mkl)")
    lib = ctypes.CDLL(path)
    # Every product runs on the calling thread: the threads are the kernels'
    # own (one share of a batch each), so MKL must not start a pool of its own.
    # Must precede any other MKL call to take effect.
    lib.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_THREADING_SEQUENTIAL))
    return lib


def _mkl_gemm():
    lib = _mkl_library()
    from importlib import metadata
    pointers = [ctypes.cast(getattr(lib, f), ctypes.c_void_p).value for f in ("sgemm", "dgemm")]
    return pointers, f"MKL {metadata.version('mkl')}"


_LOADERS = {"mkl": _mkl_gemm, "scipy": _scipy_gemm}


class _MKLVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("update", ctypes.c_int),
                ("status", ctypes.c_char_p), ("build", ctypes.c_char_p),
                ("processor", ctypes.c_char_p), ("platform", ctypes.c_char_p)]


def mkl_processor():
    """The processor family MKL's code path is optimised for (its
    ``MKL_Get_Version`` ``Processor`` field, e.g. "Intel(R) Architecture
    processors", the generic path, on AMD), or None without MKL."""
    try:
        lib = _mkl_library()
        version = _MKLVersion()
        lib.MKL_Get_Version(ctypes.byref(version))
    except (OSError, AttributeError):
        return None
    return version.processor.decode(errors="replace") if version.processor else None


# ---------------------------------------------------------------- measurement

# (dtype, units n, inputs k, batch mb): the three products of a training
# step of a layer k -> n (see _step_products), each on both libraries. A
# benchmark-sized layer in float32, a small one in float32 (call overhead),
# and a tall-skinny first layer in float64 (course-cat's kind, scaled down).
CALIBRATION_LAYERS = (("float32", 256, 512, 128), ("float32", 32, 64, 32),
                      ("float64", 20, 2048, 209))
_C_SCALAR = {"float32": ctypes.c_float, "float64": ctypes.c_double}


def _step_products(n, k, mb, dtype, rng):
    """``(A, B)`` pairs of the row-major products of one training step, in
    the layouts the kernels pass them: Z = W A_prev, dW = dZ A_prevᵀ and
    dA_prev = Wᵀ dZ (the transposes are views)."""
    W = rng.random((n, k), dtype=dtype) - 0.5
    A_prev = rng.random((k, mb), dtype=dtype)
    dZ = rng.random((n, mb), dtype=dtype) - 0.5
    return [(W, A_prev), (dZ, A_prev.T), (W.T, dZ)]


def _fortran_call(pointer, dtype, A, B):
    """A ctypes call of Fortran ?gemm computing C = A @ B row-major (A, B
    C-contiguous or transposes of C-contiguous arrays); returns ``(call, C)``."""
    scalar = _C_SCALAR[dtype]
    fn = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(pointer)
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=dtype)

    def layout(X):
        if X.flags.c_contiguous:
            return b"n", X.shape[1]
        return b"t", X.shape[0]          # the transpose of a C-contiguous array

    (ta, lda), (tb, ldb) = layout(A), layout(B)
    keep = [ctypes.c_char(tb), ctypes.c_char(ta), ctypes.c_int(N), ctypes.c_int(M),
            ctypes.c_int(K), scalar(1.0), ctypes.c_int(ldb), ctypes.c_int(lda), scalar(0.0),
            ctypes.c_int(N)]
    ref = [ctypes.c_void_p(ctypes.addressof(v)) for v in keep]
    data = [ctypes.c_void_p(X.ctypes.data) for X in (B, A, C)]
    # Row-major C = A B is column-major Cᵀ = Bᵀ Aᵀ: B goes first.
    args = ref[:6] + [data[0], ref[6], data[1], ref[7], ref[8], data[2], ref[9]]

    def call(arrays=(A, B, C, keep)):    # the arrays live as long as the call
        fn(*args)

    return call, C


def measure(rounds=5, layers=CALIBRATION_LAYERS, seed=0):
    """Seconds of the products of a training step on each library, one thread.

    For every layer of ``layers`` the three products of a step (forward, dW,
    dA) are timed on MKL and on SciPy's BLAS alternately, ``rounds`` times;
    each product keeps its best time. A product of fewer than ~2 MFLOP is
    timed in a loop that reaches that many flops. About 40 ms on an idle
    2-core machine (both libraries loaded).

    Returns
    -------
    dict
        ``{"scipy": [seconds, ...], "mkl": [seconds, ...]}``, one entry per
        product in the order of ``layers`` (no ``"mkl"`` when MKL cannot be
        loaded). Compare them with :func:`slowdown`.
    """
    from threadpoolctl import threadpool_limits

    libraries = {"scipy": _scipy_gemm()[0]}
    try:
        libraries["mkl"] = _mkl_gemm()[0]
    except (OSError, AttributeError):
        pass
    rng = np.random.default_rng(seed)
    calls = {name: [] for name in libraries}
    for dtype, n, k, mb in layers:
        slot = 0 if dtype == "float32" else 1
        for A, B in _step_products(n, k, mb, np.dtype(dtype), rng):
            inner = max(1, int(2e6 // (2 * A.shape[0] * A.shape[1] * B.shape[1])))
            for name, pointers in libraries.items():
                call, _ = _fortran_call(pointers[slot], dtype, A, B)
                call()                       # first-call set-up, page faults
                calls[name].append((call, inner))
    best = {name: [math.inf] * len(c) for name, c in calls.items()}
    # One thread, as the compiled kernels call BLAS (MKL is sequential).
    with threadpool_limits(limits=1, user_api="blas"):
        for r in range(rounds):
            # Alternate which library goes first: a change of load during the
            # measurement then affects both alike.
            for name in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
                for i, (call, inner) in enumerate(calls[name]):
                    start = time.perf_counter()
                    for _ in range(inner):
                        call()
                    best[name][i] = min(best[name][i], (time.perf_counter() - start) / inner)
    return best


def slowdown(seconds, library, other):
    """Geometric mean over the products of ``seconds[library] / seconds[other]``
    (> 1: ``library`` is slower)."""
    ratios = [a / b for a, b in zip(seconds[library], seconds[other])]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def measured_choice():
    """The default policy of ``"auto"``: measure each time (no cache)."""
    if mkl_path() is None:
        return "scipy", "MKL is not installed", None
    seconds = measure()
    if "mkl" not in seconds:
        return "scipy", "MKL cannot be loaded", None
    ratio = slowdown(seconds, "mkl", "scipy")
    choice = "mkl" if ratio < 1.0 else "scipy"
    return choice, f"measured: MKL takes {ratio:.2f}x SciPy's time", seconds


_auto_policy = measured_choice


def set_auto_policy(policy=None):
    """Install ``policy()`` -> ``(library, how, seconds)`` as the rule of
    ``"auto"`` (None: measure every time, :func:`measure`)."""
    global _auto_policy
    _auto_policy = policy or measured_choice


def use(library=None):
    """Bind the products of every kernel to a BLAS library.

    Parameters
    ----------
    library : {"auto", "mkl", "scipy"}, optional
        ``"auto"`` (the default, or the value of ``DEEPNET_FAST_BLAS``) takes
        the policy's choice (:func:`set_auto_policy`): by default the faster
        library here by :func:`measure`, SciPy's BLAS when MKL is missing.

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
    how = None
    if library is None:
        library = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        how = f"{ENV_VAR}={library}" if ENV_VAR in os.environ else None
    if library not in LIBRARIES:
        raise ValueError(f"BLAS library must be one of {', '.join(LIBRARIES)}; got {library!r}")
    requested, seconds, error = library, None, None
    if library == "auto":
        try:
            library, auto_how, seconds = _auto_policy()
        except Exception as exc:   # noqa: BLE001 - a failed measurement must not stop training
            library, auto_how = "scipy", f"the choice failed ({type(exc).__name__}: {exc})"
        how = f"{how}: {auto_how}" if how else f"auto: {auto_how}"
    with _lock:
        try:
            pointers, version = _LOADERS[library]()
        except (OSError, AttributeError) as exc:
            if requested == "mkl":
                raise OSError(f"cannot use MKL: {exc}") from exc
            error = str(exc)
            library, how = "scipy", f"auto: MKL cannot be loaded ({exc})"
            pointers, version = _scipy_gemm()
        _table[0], _table[1] = pointers
        _state.update(library=library, version=version, error=error, requested=requested,
                      how=how or f"asked for {requested!r}", seconds=seconds)
    return library


def library():
    """``(name, version)`` of the BLAS the kernels call, binding it if needed."""
    if _state["library"] is None:
        use()
    return _state["library"], _state["version"]


def choice():
    """How the bound library was chosen: ``{"requested", "how", "seconds"}``
    (binding the default first if needed)."""
    library()
    return {k: _state[k] for k in ("requested", "how", "seconds")}


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


@njit(**INLINE)
def gemm(alpha, A, B, beta, C):
    """C = alpha · A @ B + beta · C, in place.

    A (M, K), B (K, N), C (M, N) of one float dtype; A and B need contiguous
    rows or contiguous columns (a block of rows, a block of columns or a
    transpose of a C-contiguous array all qualify), C contiguous rows.
    """
    # Every operand typed any-strided: one compiled product per dtype, not
    # one per combination of C, F and strided layouts (BLAS reads the
    # strides at run time anyway).
    _gemm(alpha, A[:, 0:A.shape[1]], B[:, 0:B.shape[1]], beta, C[:, 0:C.shape[1]])


@njit(**JIT)
def _gemm(alpha, A, B, beta, C):
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
