"""Tests for deepnet_fast.kernels.simd_math: accuracy in ulp against NumPy,
special values, dtype preservation, vectorisation and caching."""
import platform
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numba import njit

from deepnet_fast.kernels.simd_math import (fast_exp, fast_expm1, fast_log, fast_sigmoid,
                                            fast_tanh)

F32, F64 = np.float32, np.float64
NAMES = ["exp", "expm1", "tanh", "sigmoid", "log"]
FUNCS = {"exp": fast_exp, "expm1": fast_expm1, "tanh": fast_tanh,
         "sigmoid": fast_sigmoid, "log": fast_log}

# Bounds: the module docstring's measured maxima, rounded up.  float32 is
# measured against the float64 NumPy value (not rounded to float32).
# float64 against a long double reference where NumPy has one, else against
# NumPy float64 with one more ulp for NumPy's own error.
MAX_ULP = {
    (F64, "exp"): 1.1, (F64, "expm1"): 1.8, (F64, "tanh"): 2.6, (F64, "sigmoid"): 2.5,
    (F32, "exp"): 1.1, (F32, "expm1"): 1.5, (F32, "tanh"): 2.6, (F32, "sigmoid"): 2.5,
    (F64, "log"): 1.0, (F32, "log"): 1.0,
}
LONG_DOUBLE = np.finfo(np.longdouble).nmant > 60


def _stable_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


REFERENCE = {"exp": np.exp, "expm1": np.expm1, "tanh": np.tanh,
             "sigmoid": _stable_sigmoid, "log": np.log}


def _make_apply(f):
    @njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = f(x[i])
        return out
    return apply


APPLY = {name: _make_apply(FUNCS[name]) for name in NAMES}


def reference(name, x, precise=False):
    """NumPy's value in float64, or in long double when ``precise``."""
    with np.errstate(all="ignore"):
        return REFERENCE[name](x.astype(np.longdouble if precise else F64))


def ulp_error(y, ref, dtype):
    """|y - ref| in units of the ``dtype`` spacing at ``ref``."""
    with np.errstate(all="ignore"):
        ref_d = ref.astype(dtype)  # rounds to inf where the result overflows
        spacing = np.spacing(np.abs(ref_d)).astype(ref.dtype)
        err = (np.abs(y.astype(ref.dtype) - ref) / spacing).astype(F64)
    same = (y == ref_d) | (np.isnan(y) & np.isnan(ref))
    err[same] = 0.0
    err[~same & ~np.isfinite(err)] = np.inf
    return err


def sweep(dtype, name):
    if name == "log":
        # every binade (subnormals too), around 1 where log cancels, and
        # evenly spaced and random points; negative x give nan on both sides
        info = np.finfo(dtype)
        every = np.geomspace(F64(info.smallest_subnormal), F64(info.max) / 4, 1_000_001)
        near_one = 1 + np.linspace(-1e-3, 1e-3, 200_001)
        rand = np.random.default_rng(12345).uniform(0, 1e3, 200_000)
        return np.concatenate([every, near_one, np.linspace(-2, 20, 1_000_001),
                               rand]).astype(dtype)
    lo, hi = (-750.0, 750.0) if dtype == F64 else (-110.0, 100.0)
    if name == "tanh":
        lo, hi = -25.0, 25.0
    tiny = np.logspace(-40 if dtype == F64 else -20, 0.5, 100_000)
    sub = np.linspace(-746, -708, 100_000) if dtype == F64 else np.linspace(-104, -87, 100_000)
    rand = np.random.default_rng(12345).uniform(lo, hi, 200_000)
    return np.concatenate([np.linspace(lo, hi, 1_000_001), tiny, -tiny, sub, rand]).astype(dtype)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", NAMES)
def test_accuracy_ulp(name, dtype):
    x = sweep(dtype, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = APPLY[name](x)
    assert y.dtype == dtype
    precise = dtype == F64 and LONG_DOUBLE
    err = ulp_error(y, reference(name, x, precise), dtype)
    bound = MAX_ULP[dtype, name] + (dtype == F64 and not LONG_DOUBLE)
    worst = int(np.argmax(err))
    assert err[worst] <= bound, (name, dtype, x[worst], err[worst])


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, 1e300, -1e300]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", NAMES)
def test_special_values(name, dtype):
    with np.errstate(over="ignore"):
        x = np.array(SPECIAL).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = APPLY[name](x)
    with np.errstate(all="ignore"):
        ref = REFERENCE[name](x)
    np.testing.assert_array_equal(y, ref)
    # the sign of zero: exp(+-0) = 1, sigmoid(+-0) = 0.5, odd functions keep it
    num = ~np.isnan(ref)
    assert np.array_equal(np.signbit(y[num]), np.signbit(ref[num]))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_exp_overflow_underflow_thresholds(dtype):
    info = np.finfo(dtype)
    over = np.log(F64(info.max))  # ~709.78 / ~88.72
    zero = np.log(F64(info.smallest_subnormal)) - np.log(2)  # ~-745.13 / ~-103.97
    x = np.concatenate([np.linspace(over - 0.01, over + 0.01, 20_001),
                        np.linspace(zero - 0.05, zero + 0.05, 20_001)]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = APPLY["exp"](x)
    assert ulp_error(y, reference("exp", x), dtype).max() <= 1.0
    assert np.isinf(y[x > over + 1e-5]).all() and np.isfinite(y[x < over - 1e-5]).all()
    assert (y[x < zero - 1e-3] == 0).all() and (y[x > zero + 1e-3] > 0).all()


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", ["exp", "sigmoid"])
def test_subnormal_results(name, dtype):
    tiny, lo = (np.finfo(dtype).smallest_normal, -746 if dtype == F64 else -104)
    x = np.linspace(lo, np.log(F64(tiny)), 200_001).astype(dtype)
    y = APPLY[name](x)
    ref = reference(name, x)
    assert (ref.astype(dtype) < tiny).mean() > 0.9
    # subnormal spacing is absolute: errors stay within one unit
    assert ulp_error(y, ref, dtype).max() <= 1.0


@pytest.mark.parametrize("dtype", [F32, F64])
def test_sigmoid_large_and_stable_form(dtype):
    x = np.array([1e4, -1e4, 50.0, -50.0, 800.0, -800.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = APPLY["sigmoid"](x)
    assert y[0] == 1.0 and y[1] == 0.0 and y[2] == 1.0 and y[4] == 1.0 and y[5] == 0.0
    z = np.linspace(-40, 40, 100_001).astype(dtype)
    rtol = 1e-10 if dtype == F64 else 1e-4
    np.testing.assert_allclose(APPLY["sigmoid"](z), _stable_sigmoid(z.astype(F64)), rtol=rtol)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_tanh_odd_and_saturates(dtype):
    x = np.linspace(0, 30, 300_001).astype(dtype)
    y = APPLY["tanh"](x)
    np.testing.assert_array_equal(APPLY["tanh"](-x), -y)
    assert (y[x > 20] == 1).all() and (APPLY["tanh"](-x)[x > 20] == -1).all()
    t = np.array([1e-30, 1e-9, np.finfo(dtype).smallest_subnormal], dtype=dtype)
    np.testing.assert_array_equal(APPLY["tanh"](t), t)  # rounds to x
    np.testing.assert_array_equal(APPLY["expm1"](t[::2]), t[::2])


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", NAMES)
def test_monotone_spot_checks(name, dtype):
    lo = 1e-3 if name == "log" else -30
    x = np.unique(np.random.default_rng(7).uniform(lo, 30, 20_000).astype(dtype))
    y, ref = APPLY[name](x), reference(name, x)
    # neighbours whose true values differ by more than the error bounds
    clear = np.diff(ref) > 8 * np.spacing(np.abs(ref[1:]).astype(dtype))
    assert clear.sum() > 2000
    assert (np.diff(y)[clear] > 0).all()
    assert (np.diff(y) >= -2 * np.spacing(np.abs(y[1:]))).all()  # 1-ulp wiggles only


@pytest.mark.parametrize("dtype", [F32, F64])
def test_scalar_calls_preserve_dtype(dtype):
    @njit
    def all_four(v):
        return fast_exp(v), fast_expm1(v), fast_tanh(v), fast_sigmoid(v)

    res = all_four(dtype(0.5))
    np.testing.assert_allclose(res, [np.exp(0.5), np.expm1(0.5), np.tanh(0.5),
                                     1 / (1 + np.exp(-0.5))], rtol=1e-6)
    all_four(2)  # integers are computed as float64, like NumPy
    returns = {str(sig.return_type) for sig in all_four.nopython_signatures}
    assert f"UniTuple({np.dtype(dtype).name} x 4)" in returns
    assert "UniTuple(float64 x 4)" in returns


def test_python_fallbacks():
    x = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(fast_exp(x), np.exp(x))
    np.testing.assert_allclose(fast_tanh(x), np.tanh(x))
    np.testing.assert_allclose(fast_sigmoid(x), _stable_sigmoid(x))
    np.testing.assert_allclose(fast_log(np.abs(x) + 1), np.log(np.abs(x) + 1))
    assert fast_sigmoid(F32(1e4)) == 1.0 and fast_sigmoid(-1e4) == 0.0


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="checks x86 assembly")
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", NAMES)
def test_loop_vectorises(name, dtype):
    f = FUNCS[name]

    @njit
    def loop(z, out):
        for i in range(z.size):
            out[i] = f(z[i])

    z = np.ones(8, dtype)
    loop(z, np.empty_like(z))
    asm = loop.inspect_asm(loop.signatures[0])
    suffix = "ps" if dtype == F32 else "pd"
    assert re.search(r"\b(v?mul|vfn?madd\d+)" + suffix + r"\b", asm)
    assert not re.search(r"(?<![\w.])(expf?|expm1f?|tanhf?|logf?)(?![\w.])", asm)  # no libm


def test_cache_with_caller_in_other_module(tmp_path):
    (tmp_path / "caller_mod.py").write_text(textwrap.dedent("""
        import numpy as np
        from numba import njit
        from deepnet_fast.kernels.simd_math import fast_sigmoid, fast_tanh

        @njit(cache=True, nogil=True)
        def act(z, out):
            for i in range(z.size):
                out[i] = fast_sigmoid(z[i]) + fast_tanh(z[i])
    """))
    script = textwrap.dedent("""
        import numpy as np, caller_mod
        z = np.linspace(-3, 3, 7, dtype=np.float32)
        out = np.empty_like(z)
        caller_mod.act(z, out)
        ref = 1 / (1 + np.exp(-z.astype(float))) + np.tanh(z)
        assert np.allclose(out, ref, rtol=1e-6)
        print(sum(caller_mod.act.stats.cache_hits.values()))
    """)
    runs = [subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert [r.stdout.strip() for r in runs] == ["0", "1"]
