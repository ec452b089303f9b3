"""Vectorisable elementary functions for ``@njit`` code.

Numba from PyPI has no SVML, so ``np.exp``/``np.tanh``/``math.exp`` inside
jitted loops become scalar libm calls and the loops do not vectorise.  The
functions here use only arithmetic, compares/selects, ``fabs``/``copysign``
and integer<->float bit casts, so a loop such as ``for i in range(n):
out[i] = fast_sigmoid(z[i])`` auto-vectorises.  They are dtype-generic: a
float32 argument is computed entirely in float32 (float32 constants, twice
the SIMD lanes) and returns float32, a float64 argument returns float64,
integers are treated as float64.  Outside Numba the names fall back to NumPy.

Method: ``x = k*ln2 + r`` (Cody-Waite hi/lo split of ln2, ``|r| <= ln2/2``),
``k`` rounded with the 1.5*2**p shifter trick so that the bits of the
shifted value already hold the exponent of ``2**k``; relative-error minimax
polynomials for ``exp(r)`` (degree 11 / 6 for float64 / float32) and
``expm1(r) = r + r**2 Q(r)`` (degree 11 / 7).  Overflow, underflow, gradual
underflow, nan and +-inf are handled by clamping and selects, no branches
and no floating-point warnings.  tanh = -em / (2 + em), em = expm1(-2|x|),
with a float32 expm1 of degree 6: its loop is bound by the number of vector
operations (19), and NumPy's AVX-512 tanh is the one to beat.

Each function also marks the calling function with LLVM's
``"prefer-vector-width"="512"``: LLVM's tuning for Skylake-X and later
Xeons otherwise limits auto-vectorised loops to 256 bits, so with the hint
the caller's loops use 16 float32 / 8 float64 lanes (zmm) like NumPy's own
AVX-512 loops; no effect on machines without AVX-512.  Set
``PREFER_512_BIT = False`` before the callers compile to keep LLVM's choice.
Numba's cache does not track this module: after editing it, clear the
callers' ``__pycache__``.

Measured max error in ulp, over 10 million evenly spaced points of
[-750, 750] (float64) / [-110, 100] (float32), [-25, 25] for tanh, plus
+-logspace up to 3, the subnormal range and 60 million random points.
float64: against NumPy float64 (whole ulp, NumPy's own error included;
in brackets against a long double reference).  float32: against the
float64 value (in brackets: that value rounded to float32).  Sigmoid's
reference is the stable form of `fast_sigmoid` in higher precision.

=============  ===========  ===========
function       float64      float32
=============  ===========  ===========
fast_exp       1  (1.01)    1.06  (1)
fast_expm1     2  (1.72)    1.41  (1)
fast_tanh      3  (2.56)    2.50  (2)
fast_sigmoid   2  (2.41)    2.41  (2)
fast_log       (0.77)       0.80
=============  ===========  ===========

fast_log is fdlibm's log (as musl has it, tableless): over 2.4 million
points, every binade from the smallest subnormal up, [1 - 1e-3, 1 + 1e-3]
and [0, 1000], against long double (float64) and NumPy float64 (float32).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["fast_exp", "fast_expm1", "fast_tanh", "fast_sigmoid", "fast_log"]

PREFER_512_BIT = True  # read when a caller is compiled (see docstring)

# "contract" lets LLVM fuse Horner steps and ``s*e + (s-1)`` into FMAs (more
# accurate and faster).  No nnan/ninf (special values must survive) and no
# reassoc (it would fold the shifter trick and the Cody-Waite reduction).
# error_model="numpy": no zero-division check, which would block vectorising.
_JIT_OPTIONS = {"error_model": "numpy", "fastmath": {"contract"}}


@intrinsic
def _exp2_bits(typingctx, z):
    """``2.0**n`` from ``z = 1.5 * 2**mant + bias + n``, in registers."""
    if not isinstance(z, types.Float):
        return None

    def codegen(context, builder, sig, args):
        nbits = sig.args[0].bitwidth
        ity = ir.IntType(nbits)
        # bits(z) = bits(1.5 * 2**mant) + bias + n; the shifter's own bits
        # are all shifted out, leaving the biased exponent bias + n.
        bits = builder.bitcast(args[0], ity)
        bits = builder.shl(bits, ir.Constant(ity, 23 if nbits == 32 else 52))
        return builder.bitcast(bits, args[0].type)

    return z(z), codegen


@intrinsic
def _log_reduce(typingctx, x):
    """``(m, k)`` with ``x = 2**k * m``, ``m`` in [sqrt(2)/2, sqrt(2)), for a
    positive normal ``x``; ``k`` as a float of x's type.  Integer work in
    x's own width, so that float32 loops keep 16 lanes."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, sig, args):
        nbits = sig.args[0].bitwidth
        ity = ir.IntType(nbits)
        fty = args[0].type
        mant = 23 if nbits == 32 else 52
        bias = 0x7F if nbits == 32 else 0x3FF
        # bits of sqrt(2)/2: adding (one - them) carries into the exponent
        # exactly when the mantissa is >= sqrt(2)/2's (musl's log and logf)
        low = 0x3F3504F3 if nbits == 32 else 0x3FE6A09E << 32
        one = 0x3F800000 if nbits == 32 else 0x3FF00000 << 32
        bits = builder.add(builder.bitcast(args[0], ity), ir.Constant(ity, one - low))
        k = builder.sub(builder.ashr(bits, ir.Constant(ity, mant)), ir.Constant(ity, bias))
        m = builder.add(builder.and_(bits, ir.Constant(ity, (1 << mant) - 1)),
                        ir.Constant(ity, low))
        return context.make_tuple(builder, sig.return_type,
                                  [builder.bitcast(m, fty), builder.sitofp(k, fty)])

    return types.UniTuple(x, 2)(x), codegen


@intrinsic
def _prefer_512_bit(typingctx):
    """Mark the function being compiled for 512-bit vector loops."""

    def codegen(context, builder, sig, args):
        if PREFER_512_BIT:
            # String attributes are not in llvmlite's whitelist.
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


_LOG2E, _LN2 = 1.4426950408889634, 0.6931471805599453


def _make_kernels(ft, exp_poly, q_poly, qt_poly, ln2_hi, ln2_lo, exp_lo, exp_hi,
                  m1_lo, tanh_hi, neg_shift, log_odd, log_even, log_ln2_hi, log_ln2_lo):
    """The five kernels for one float type.  Every constant is an ``ft``
    scalar so that Numba types every operation as ``ft``.  ``qt_poly`` is
    the ``Q`` of expm1 that tanh uses (float32 needs one term fewer there);
    ``log_odd``/``log_even`` are the odd and even halves of log's series in
    ``s**2`` and ``log_ln2_*`` its split of ln2 (fdlibm's, for its range of k)."""
    ft = np.dtype(ft).type
    mant, bias = np.finfo(ft).nmant, np.finfo(ft).maxexp - 1
    EXP_C = tuple(ft(c) for c in exp_poly[::-1])
    Q_C = tuple(ft(c) for c in q_poly[::-1])
    LOG2E, LN2_HI, LN2_LO = ft(_LOG2E), ft(ln2_hi), ft(ln2_lo)
    EXP_LO, EXP_HI, M1_LO, TANH_HI = ft(exp_lo), ft(exp_hi), ft(m1_lo), ft(tanh_hi)
    ZERO, HALF, ONE, TWO = ft(0), ft(0.5), ft(1), ft(2)
    PREC = ft(mant + 1)  # 2**k - 1 is exact for k <= PREC
    TINY = ft(2.0 ** -(mant + 2))  # expm1(x) rounds to x below this
    # Shifters: z = x*log2e + SH rounds x*log2e to an integer k and leaves
    # bias + k (+ offset) in the low bits of z.  2**k is built as
    # 2**(k + off) * 2**-off so both factors are normal over the whole range:
    # off = neg_shift for x < 0 (subnormal results round only in the last
    # multiply), off = -1 for x >= 0 (k = bias + 1 overflows only there).
    SH_NEG, F_NEG = ft(1.5 * 2.0**mant + bias + neg_shift), ft(2.0**-neg_shift)
    SH_POS, F_POS = ft(1.5 * 2.0**mant + bias - 1), ft(2)
    # tanh reduces in rho = -r/2 (see tanh): the -2 goes into its constants,
    # QT(rho) = -2 Q(-2 rho), exactly since all factors are powers of two.
    SH2 = ft(1.5 * 2.0**mant + bias + 1)  # leaves 2**(k+1) in z
    M2LOG2E, LN2_HALF = ft(-2 * _LOG2E), ft(_LN2 / 2)
    QT_C = tuple(ft(-2.0 * (-2.0) ** i * c)
                 for i, c in enumerate(qt_poly or q_poly))[::-1]
    LOG_ODD = tuple(ft(c) for c in log_odd[::-1])
    LOG_EVEN = tuple(ft(c) for c in log_even[::-1])
    LOG_LN2_HI, LOG_LN2_LO = ft(log_ln2_hi), ft(log_ln2_lo)
    NORMAL = ft(np.finfo(ft).tiny)
    SUB_SCALE, SUB_K = ft(2.0 ** (mant + 2)), ft(mant + 2)  # subnormal -> normal
    INF, NAN = ft(np.inf), ft(np.nan)

    @njit(**_JIT_OPTIONS)
    def reduce(x, sh):
        # x clamped (a nan propagates): k = rint(x/ln2), x = k*ln2 + r
        z = x * LOG2E + sh
        k = z - sh
        return z, k, (x - k * LN2_HI) - k * LN2_LO

    @njit(**_JIT_OPTIONS)
    def exp_r(r):
        h = EXP_C[0]
        for c in EXP_C[1:]:
            h = h * r + c
        return h

    @njit(**_JIT_OPTIONS)
    def expm1_r(r):
        # expm1(r) = r + p, with p = r**2 * Q(r), small relative to r
        h = Q_C[0]
        for c in Q_C[1:]:
            h = h * r + c
        return (r * r) * h

    def exp(x):
        xc = EXP_HI if x > EXP_HI else x  # nan passes and propagates
        xc = EXP_LO if xc < EXP_LO else xc
        neg = xc < ZERO
        z, _, r = reduce(xc, SH_NEG if neg else SH_POS)
        return (exp_r(r) * _exp2_bits(z)) * (F_NEG if neg else F_POS)

    def expm1(x):
        xc = EXP_HI if x > EXP_HI else x
        xc = M1_LO if xc < M1_LO else xc  # expm1 rounds to -1 below M1_LO
        z, k, r = reduce(xc, SH_POS)
        p = expm1_r(r)
        h = _exp2_bits(z)  # 2**(k-1): finite up to k = bias + 1
        s = TWO * h
        # 2**k (1 + r + p) - 1 summed from the large terms (s - 1 is exact,
        # for k = 1 even s*r + (s - 1) is) to the small one: 2 roundings.
        small = (s * r + (s - ONE)) + s * p
        big = ((ONE + (r + p)) * h) * TWO  # the -1 is <= 1/2 ulp here
        y = big if k > PREC else small
        # tiny |x|: expm1(x) rounds to x (also keeps -0.0 and nan)
        return y if abs(x) > TINY else x

    def tanh(x):
        # On |x|, so that tanh is exactly odd; the signed x would save the
        # abs and the copysign (one vector operation of 19, ~6%) and give up
        # that symmetry by up to 4 ulp.
        a = abs(x)
        a = TANH_HI if a > TANH_HI else a  # tanh rounds to 1 above TANH_HI
        # em = expm1(-2a) in (-1, 0]: k <= 0, so s - 1 is exact, nothing
        # cancels or overflows; tanh(a) = -em / (2 + em).  -2a = k*ln2 - 2rho
        # needs no hi/lo split of ln2: its error (or k*LN2's rounding
        # without FMA) enters em scaled by s = 2**k.
        z = a * M2LOG2E + SH2
        k = z - SH2
        rho = a + k * LN2_HALF
        h = QT_C[0]
        for c in QT_C[1:]:
            h = h * rho + c
        s2 = _exp2_bits(z)  # 2 * 2**k
        # em = s*e + (s - 1), e = expm1(-2 rho) = -2 (rho + rho**2 QT(rho))
        em = (s2 * HALF - ONE) - s2 * (rho + (rho * rho) * h)
        return math.copysign(em / (-TWO - em), x)

    def sigmoid(x):
        # stable form: e = exp(-|x|) in [0, 1]; 1/(1+e) or e/(1+e)
        u = -abs(x)
        u = EXP_LO if u < EXP_LO else u
        z, _, r = reduce(u, SH_NEG)
        e = (exp_r(r) * _exp2_bits(z)) * F_NEG
        return (ONE if x >= ZERO else e) / (ONE + e)

    def log(x):
        # fdlibm's log (as in musl): x = 2**k (1 + f), 1 + f in
        # [sqrt(2)/2, sqrt(2)); log(1 + f) = f - f**2/2 + s (f**2/2 + R(s**2)),
        # s = f / (2 + f); k*ln2 added last in two parts.  Selects, no
        # branches: subnormals scaled up first, then zero, negatives, inf and
        # nan replaced at the end.
        sub = x < NORMAL
        m, k = _log_reduce(x * SUB_SCALE if sub else x)
        k = k - SUB_K if sub else k
        f = m - ONE
        hfsq = HALF * f * f
        s = f / (TWO + f)
        z = s * s
        w = z * z
        t_odd = LOG_ODD[0]
        for c in LOG_ODD[1:]:
            t_odd = t_odd * w + c
        t_even = LOG_EVEN[0]
        for c in LOG_EVEN[1:]:
            t_even = t_even * w + c
        r = z * t_odd + w * t_even
        y = s * (hfsq + r) + k * LOG_LN2_LO - hfsq + f + k * LOG_LN2_HI
        y = y if x < INF else x  # inf stays, nan propagates
        y = -INF if x == ZERO else y
        return NAN if x < ZERO else y

    return {f.__name__: njit(**_JIT_OPTIONS)(f) for f in (exp, expm1, tanh, sigmoid, log)}


_KERNELS = {
    64: _make_kernels(
        np.float64,
        exp_poly=(1.0, 1.0, 0.5000000000000018, 0.1666666666666617,
                  0.04166666666649277, 0.008333333333559262,
                  0.0013888888951223842, 0.00019841269432698292,
                  2.4801486521572583e-05, 2.7557622514042697e-06,
                  2.7632293229671593e-07, 2.499431022434232e-08),
        q_poly=(0.5000000000000007, 0.16666666666666696, 0.0416666666665625,
                0.008333333333293249, 0.0013888888936151168,
                0.0001984126998684344, 2.480149978749534e-05,
                2.7557116971828936e-06, 2.762821644246606e-07,
                2.516134446324215e-08),
        # fdlibm split: ln2_hi has 32 trailing zero bits, k*ln2_hi is exact
        ln2_hi=6.93147180369123816490e-01, ln2_lo=1.90821492927058770002e-10,
        qt_poly=None,  # the same Q
        exp_lo=-746.0, exp_hi=710.0, m1_lo=-45.0, tanh_hi=20.0, neg_shift=512,
        # fdlibm e_log.c: Lg1, Lg3, Lg5, Lg7 and Lg2, Lg4, Lg6
        log_odd=(6.666666666666735130e-01, 2.857142874366239149e-01,
                 1.818357216161805012e-01, 1.479819860511658591e-01),
        log_even=(3.999999999940941908e-01, 2.222219843214978396e-01,
                  1.531383769920937332e-01),
        log_ln2_hi=6.93147180369123816490e-01, log_ln2_lo=1.90821492927058770002e-10),
    32: _make_kernels(
        np.float32,
        exp_poly=(1.0000000005541663, 1.0000000363231398, 0.4999999207978417,
                  0.16666420170074334, 0.04166822558269339,
                  0.0083748157907283, 0.001383684513031708),
        q_poly=(0.5000000053024873, 0.16666666902347999, 0.041666327122753886,
                0.00833322004618723, 0.0013943198197925684,
                0.0001996214767005428),
        # Q for tanh only, one term fewer (its loop is bound by the vector
        # operations): relative error of expm1 2**-26.2 on |r| <= ln2/2
        qt_poly=(0.49999998154884306, 0.16666543671167472, 0.041667199798707324,
                 0.008366513903638599, 0.001388250939105285),
        # 0x3f317200: 16 significant bits, k*ln2_hi exact for |k| < 256
        ln2_hi=0.693145751953125, ln2_lo=1.428606765330187e-06,
        exp_lo=-104.0, exp_hi=89.0, m1_lo=-18.0, tanh_hi=10.0, neg_shift=64,
        # musl logf.c: Lg1, Lg3 and Lg2, Lg4; ln2 split as 0x3f317180 +
        # 0x3717f7d1
        log_odd=(float.fromhex("0xaaaaaa.0p-24"), float.fromhex("0x91e9ee.0p-25")),
        log_even=(float.fromhex("0xccce13.0p-25"), float.fromhex("0xf89e26.0p-26")),
        log_ln2_hi=float.fromhex("0x1.62e3p-1"), log_ln2_lo=9.0580006145e-06),
}


def _register(stub, name):
    # Only the hint is inlined into the caller (Numba IR level) so that it
    # marks the caller's function; the kernel keeps its own error model and
    # fast-math flags, and LLVM inlines and vectorises it.
    @overload(stub, inline="always")
    def _ol(x):
        if isinstance(x, types.Float) and x.bitwidth in _KERNELS:
            kernel = _KERNELS[x.bitwidth][name]

            def impl(x):
                _prefer_512_bit()
                return kernel(x)

            return impl
        if isinstance(x, types.Integer):  # like NumPy: integers -> float64
            return lambda x: stub(np.float64(x))


def fast_exp(x):
    """Exponential, ``exp(x)``, vectorisable inside ``@njit`` loops.

    Parameters
    ----------
    x : float32 or float64 scalar (array-like outside Numba)

    Returns
    -------
    Same dtype as `x`.  Overflow gives ``inf``, underflow is gradual
    (correctly rounded subnormals) then ``0``; ``nan`` propagates.
    """
    return np.exp(x)


def fast_expm1(x):
    """``exp(x) - 1``, accurate for small ``|x|``, vectorisable in ``@njit``.

    Parameters
    ----------
    x : float32 or float64 scalar (array-like outside Numba)

    Returns
    -------
    Same dtype as `x`; ``expm1(-inf) = -1``, ``expm1(-0.0) = -0.0``.
    """
    return np.expm1(x)


def fast_tanh(x):
    """Hyperbolic tangent, vectorisable inside ``@njit`` loops.

    Parameters
    ----------
    x : float32 or float64 scalar (array-like outside Numba)

    Returns
    -------
    Same dtype as `x`: odd (keeps the sign of zero), exactly ``+-1`` for
    large ``|x|``, never overflows; ``nan`` propagates.
    """
    return np.tanh(x)


def fast_sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, vectorisable in ``@njit``.

    Uses the stable form ``e = exp(-|x|)``; ``1/(1+e)`` for ``x >= 0``,
    ``e/(1+e)`` otherwise: nothing overflows, very negative `x` gives
    correctly rounded tiny (subnormal, then zero) results.

    Parameters
    ----------
    x : float32 or float64 scalar (array-like outside Numba)

    Returns
    -------
    Same dtype as `x`, in ``[0, 1]``; ``nan`` propagates.
    """
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))[()]


def fast_log(x):
    """Natural logarithm, vectorisable inside ``@njit`` loops.

    Parameters
    ----------
    x : float32 or float64 scalar (array-like outside Numba)

    Returns
    -------
    Same dtype as `x`; ``log(0) = -inf``, ``log(inf) = inf``, negative `x`
    and ``nan`` give ``nan``; subnormal `x` are exact.
    """
    return np.log(x)


for _name, _stub in [("exp", fast_exp), ("expm1", fast_expm1),
                     ("tanh", fast_tanh), ("sigmoid", fast_sigmoid), ("log", fast_log)]:
    _register(_stub, _name)
