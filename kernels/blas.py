"""General matrix products on strided views, through the BLAS Numba itself calls.

Numba's ``np.dot`` wants contiguous operands and has no ``alpha``/``beta``. The
threaded epoch needs both: a thread's share of a batch is a block of rows of a
larger matrix, and a gradient split by rows is summed over the batch's shares
with ``beta = 1``. :func:`gemm` reaches the same ``?gemm`` of SciPy's OpenBLAS
through Numba's own helper symbol (``numba_xxgemm``), so kernels using it keep
``cache=True``.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import JIT

_KIND = {types.float32: "s", types.float64: "d"}
_char = ir.IntType(8)
_int32 = ir.IntType(32)
_voidp = cgutils.voidptr_t


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major ``c = alpha op(a) op(b) + beta c`` on the arrays' data."""
    if not all(isinstance(x, types.Array) for x in (a, b, c)) or c.dtype not in _KIND:
        return None
    # Typing runs only when compiling: a process loading cached kernels does
    # not import SciPy until the first product (Numba's helper does it then).
    from numba.np.linalg import ensure_blas
    ensure_blas()
    dtype = c.dtype
    sig = types.int32(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(_int32, [_char, _char, _char, intp, intp, intp,
                                        _voidp, _voidp, intp, _voidp, intp, _voidp, _voidp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        argtys = signature.args

        def integer(i):
            return context.cast(builder, args[i], argtys[i], types.intp)

        def char(i):
            return builder.trunc(integer(i), _char)

        def scalar_slot(i):
            value = context.cast(builder, args[i], argtys[i], dtype)
            slot = cgutils.alloca_once_value(builder, value)
            return builder.bitcast(slot, _voidp)

        def data(i):
            array = context.make_array(argtys[i])(context, builder, args[i])
            return builder.bitcast(array.data, _voidp)

        kind = ir.Constant(_char, ord(_KIND[dtype]))
        return builder.call(fn, (kind, char(0), char(1), integer(2), integer(3), integer(4),
                                 scalar_slot(5), data(6), integer(7), data(8), integer(9),
                                 scalar_slot(10), data(11), integer(12)))

    return sig, codegen


_N, _T = ord("n"), ord("t")


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
    # Row-major C = A B is column-major Cᵀ = Bᵀ Aᵀ: B goes first.
    _xxgemm(trans_b, trans_a, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc)
