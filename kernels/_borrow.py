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
"""

from numba import types
from numba.core import cgutils, ir_utils
from numba.extending import intrinsic


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
