"""Borrowed arrays: views that skip Numba's reference counting.

Numba counts references on every array view a kernel holds (a slice, a
reshape, a transpose, a field of a named tuple), with an atomic increment and
decrement of the array's memory record each time. A digits-small batch
(64-32-10, 32 samples) makes dozens of views: perf (cpu-clock samples on a
2-core AMD EPYC, family 26 model 2) put 37% of its epoch in Numba's
``NRT_incref``/``NRT_decref``, about 2.7 us of a 7.4-us batch, against 4.2 us
for all its products, activations, loss and update.

:func:`borrow` gives the same array with no memory record: its views carry
none either, and the reference counting skips them (a null check). Nothing
then keeps the memory alive but the array borrowed from, so a kernel borrows
only its arguments (the caller holds them for the whole call) and never
returns a borrowed view. The one-thread epoch borrows its arguments (but the
rows X, which may be sparse and are read only by the gather): 35% less time
per digits-small epoch.

Numba's dead-code elimination keeps a write into an array only when the array
may alias an argument of the function, and knows no call that returns its
argument's memory: writes that inlined code made through a borrowed array
were removed. :func:`returns_its_argument` tells it.

:func:`matrix_view` makes the other views the kernels take most often, a
matrix inside a flat buffer, in place: the same array a slice and a reshape
give, without their arithmetic and Numba's reshape helper.
"""

from numba import types
from numba.core import cgutils, ir_utils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


@intrinsic
def borrow(typingctx, arr):
    """The array ``arr`` without a memory record (see the module docstring):
    for a kernel's own arguments only.

    An intrinsic, emitted in place: a compiled function per array type cost
    ~2 s of a first fit.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, value=args[0])
        dst = context.make_array(arr)(context, builder)
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, field, getattr(src, field))
        return dst._getvalue()

    return arr(arr), codegen


@intrinsic
def matrix_view(typingctx, flat, offset, rows, cols):
    """``flat[offset:offset + rows * cols].reshape((rows, cols))`` for a 1-d
    C-contiguous ``flat``, built in place: no slice arithmetic and no call
    to Numba's reshape helper (views of the buffers took ~8% of a
    digits-small epoch that way). It holds ``flat``'s memory record, if any.

    Nothing is checked here: the caller makes sure that the view lies inside
    ``flat`` (``kernels.training._matrix`` does).
    """
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"
            and all(isinstance(t, types.Integer) for t in (offset, rows, cols))):
        return None
    matrix = types.Array(flat.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        src = context.make_array(flat)(context, builder, value=args[0])
        dst = context.make_array(matrix)(context, builder)
        off, n_rows, n_cols = (context.cast(builder, v, t, types.intp)
                               for v, t in zip(args[1:], signature.args[1:]))
        populate_array(dst, data=builder.gep(src.data, [off]), shape=[n_rows, n_cols],
                       strides=[builder.mul(n_cols, src.itemsize), src.itemsize],
                       itemsize=src.itemsize, meminfo=src.meminfo)
        return impl_ret_borrowed(context, builder, matrix, dst._getvalue())

    return matrix(flat, offset, rows, cols), codegen


def _alias_of_first_argument(lhs, args, alias_map, arg_aliases):
    ir_utils._add_alias(lhs, args[0].name, alias_map, arg_aliases)


def returns_its_argument(function):
    """Tell Numba's dead-code elimination that ``function``'s result holds
    the memory of its first argument (see the module docstring); returns it."""
    # Numba names a call by the callee's __name__ and __module__ (a
    # dispatcher and an intrinsic both have them).
    key = (function.__name__, function.__module__)
    ir_utils.alias_func_extensions[key] = _alias_of_first_argument
    return function


returns_its_argument(borrow)
returns_its_argument(matrix_view)
