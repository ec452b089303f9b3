"""Choosing the BLAS library of the kernels: by measurement when both MKL and
SciPy's BLAS are installed (cached per machine), else SciPy's.

The chooser's logic is tested with fake timings (no timed assertion): which
library a real measurement prefers depends on the CPU.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import blas as blas_module
from deepnet_fast import engines
from deepnet_fast import params as flat
from deepnet_fast.architecture import Architecture
from deepnet_fast.config import FitConfig
from deepnet_fast.initialization import initialize_parameters
from deepnet_fast.kernels import blas as kblas
from deepnet_fast.state import TrainingState

HAVE_MKL = kblas.mkl_path() is not None


@pytest.fixture
def restore_blas():
    previous = dn.get_blas()["library"]
    yield
    dn.set_blas(previous)


@pytest.mark.parametrize("bad,exc,match", [
    (5, TypeError, "library must be a str"),
    (None, TypeError, "library must be a str"),
    ("openblas", ValueError, "one of auto, mkl, scipy"),
])
def test_set_blas_rejects_bad_names(bad, exc, match, restore_blas):
    before = dn.get_blas()
    with pytest.raises(exc, match=match):
        dn.set_blas(bad)
    assert dn.get_blas() == before


def test_mkl_asked_for_but_missing_is_an_error_and_auto_falls_back(restore_blas, monkeypatch):
    monkeypatch.setattr(kblas, "mkl_path", lambda: None)
    before = dn.get_blas()
    with pytest.raises(OSError, match="cannot use MKL: the mkl package is not installed"):
        dn.set_blas("mkl")
    assert dn.get_blas() == before
    assert dn.set_blas("auto") == "scipy"
    info = dn.get_blas()
    assert info["library"] == "scipy" and info["version"].startswith("SciPy ")


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A fresh user cache directory (the choice is cached there)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(kblas.ENV_VAR, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def fake_mkl(monkeypatch):
    """MKL 'installed' whatever the machine has: SciPy's pointers under MKL's
    name, so that the chooser's logic runs everywhere."""
    monkeypatch.setattr(kblas, "mkl_path", lambda: "/fake/libmkl_rt.so")
    monkeypatch.setitem(kblas._LOADERS, "mkl", lambda: (kblas._scipy_gemm()[0], "MKL fake"))


def _fake_measure(mkl, scipy, calls):
    def measure():
        calls.append(1)
        return {"scipy": list(scipy), "mkl": list(mkl)}
    return measure


def _no_measure():
    raise AssertionError("measured although the answer was known")


@pytest.mark.parametrize("mkl_seconds,expected", [
    ([1.0, 1.0, 4.0], "scipy"),    # geometric mean 1.59: MKL slower
    ([0.5, 0.9, 1.0], "mkl"),      # MKL faster on the mix
])
def test_auto_takes_the_faster_library_by_measurement_and_caches_it(
        mkl_seconds, expected, cache_home, fake_mkl, restore_blas, monkeypatch):
    calls = []
    monkeypatch.setattr(kblas, "measure", _fake_measure(mkl_seconds, [1.0, 1.0, 1.0], calls))
    assert dn.set_blas("auto") == expected
    info = dn.get_blas()
    assert info["library"] == expected and info["requested"] == "auto"
    assert "measured" in info["how"] and "cached in" in info["how"]
    assert calls == [1]
    path = blas_module.cache_path()
    assert path.startswith(str(cache_home))
    (entry,) = json.loads(Path(path).read_text()).values()
    assert entry["library"] == expected and entry["seconds"]["mkl"] == mkl_seconds
    # A second choice (another process, later) reads the cache.
    monkeypatch.setattr(kblas, "measure", _no_measure)
    assert dn.set_blas("auto") == expected
    assert "cached in" in dn.get_blas()["how"] and "measured" in dn.get_blas()["how"]


def test_the_cache_is_per_cpu_libraries_and_kernel_variables(cache_home, fake_mkl, restore_blas,
                                                              monkeypatch):
    calls = []
    # These machines set OPENBLAS_CORETYPE=Haswell: start from OpenBLAS's own choice.
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(kblas, "measure", _fake_measure([2.0], [1.0], calls))
    assert dn.set_blas("auto") == "scipy"
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")      # another OpenBLAS kernel
    monkeypatch.setattr(kblas, "measure", _fake_measure([0.5], [1.0], calls))
    assert dn.set_blas("auto") == "mkl"
    monkeypatch.setattr(blas_module, "cpu_name", lambda: "Another CPU")
    assert dn.set_blas("auto") == "mkl"
    assert len(calls) == 3
    assert len(json.loads(Path(blas_module.cache_path()).read_text())) == 3


def test_an_unwritable_or_broken_cache_costs_a_measurement_not_an_error(
        tmp_path, fake_mkl, restore_blas, monkeypatch):
    monkeypatch.delenv(kblas.ENV_VAR, raising=False)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    calls = []
    monkeypatch.setattr(kblas, "measure", _fake_measure([0.5], [1.0], calls))
    assert dn.set_blas("auto") == "mkl"
    assert "not writable" in dn.get_blas()["how"]
    assert dn.set_blas("auto") == "mkl" and len(calls) == 2
    # A corrupt file is measured over and replaced.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = blas_module.cache_path()
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as fh:
        fh.write("{not json")
    assert dn.set_blas("auto") == "mkl" and len(calls) == 3
    assert len(json.loads(Path(path).read_text())) == 1


def test_a_failing_measurement_falls_back_to_scipy(cache_home, fake_mkl, restore_blas,
                                                   monkeypatch):
    def broken():
        raise RuntimeError("no timer")
    monkeypatch.setattr(kblas, "measure", broken)
    assert dn.set_blas("auto") == "scipy"
    assert "the choice failed (RuntimeError: no timer)" in dn.get_blas()["how"]


def test_auto_without_mkl_takes_scipy_without_measuring(cache_home, restore_blas, monkeypatch):
    monkeypatch.setattr(kblas, "mkl_path", lambda: None)
    monkeypatch.setattr(kblas, "measure", _no_measure)
    assert dn.set_blas("auto") == "scipy"
    assert dn.get_blas()["how"] == "auto: MKL is not installed"
    assert not os.path.exists(blas_module.cache_path())


def test_an_explicit_choice_says_so(restore_blas):
    dn.set_blas("scipy")
    info = dn.get_blas()
    assert (info["library"], info["requested"], info["how"]) == ("scipy", "scipy",
                                                                 "asked for 'scipy'")


def test_slowdown_is_the_geometric_mean_of_the_ratios():
    seconds = {"mkl": [2.0, 0.5, 1.0], "scipy": [1.0, 1.0, 1.0]}
    assert kblas.slowdown(seconds, "mkl", "scipy") == pytest.approx(1.0)
    assert kblas.slowdown({"a": [4.0], "b": [1.0]}, "a", "b") == pytest.approx(4.0)


@pytest.mark.parametrize("library", ["scipy"] + (["mkl"] if HAVE_MKL else []))
@pytest.mark.parametrize("dtype,n,k,mb", kblas.CALIBRATION_LAYERS)
def test_the_calibration_products_compute_a_training_steps_products(library, dtype, n, k, mb):
    # A timing of a wrong product (wrong transposes or leading dimensions)
    # would compare the libraries on other work than the kernels'.
    rng = np.random.default_rng(1)
    pointers = kblas._LOADERS[library]()[0]
    products = kblas._step_products(n, k, mb, np.dtype(dtype), rng)
    assert [(A.flags.c_contiguous, B.flags.c_contiguous) for A, B in products] == [
        (True, True), (True, False), (False, True)]
    for A, B in products:
        call, C = kblas._fortran_call(pointers[0 if dtype == "float32" else 1], dtype, A, B)
        call()
        rtol = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(C, A @ B, rtol=rtol, atol=rtol * np.abs(A @ B).max())


def test_measure_times_every_product_on_every_library():
    seconds = kblas.measure(rounds=1, layers=(("float32", 8, 16, 4), ("float64", 3, 40, 5)))
    assert set(seconds) == ({"scipy", "mkl"} if HAVE_MKL else {"scipy"})
    for values in seconds.values():
        assert len(values) == 6 and all(0 < v < 1 for v in values)


def test_cpu_name_and_kernel_info_describe_the_machine(restore_blas):
    assert dn.set_blas("scipy") == "scipy"
    assert blas_module.cpu_name() and blas_module.cpu_name() != "unknown"
    info = blas_module.kernel_info()
    assert info["library"] == "scipy" and info["version"].startswith("SciPy ")
    if info["internal_api"] == "openblas":       # SciPy's wheels
        assert info["architecture"]
        assert "numpy" not in info["filepath"]


@pytest.mark.skipif(not HAVE_MKL, reason="the mkl package is not installed")
def test_kernel_info_of_mkl_names_its_code_path(restore_blas):
    dn.set_blas("mkl")
    info = blas_module.kernel_info()
    assert info["internal_api"] == "mkl" and "processor" in info["architecture"].lower()


def _epoch_theta(dtype):
    dims, acts, m, batch = [9, 12, 7, 3], ("relu", "tanh", "softmax"), 61, 16
    rng = np.random.default_rng(4)
    X = rng.standard_normal((m, dims[0])).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, m)]
    theta = flat.pack(initialize_parameters(dims, "he", seed=4), dims, dtype)
    arch = Architecture(tuple(dims), acts, 0.0, np.dtype(dtype))
    eng = engines.CompiledEngine(arch, FitConfig(optimizer="adam"), batch, m)
    state = TrainingState(theta)
    state.use_optimizer("adam")
    costs, failed = eng.epoch(state, X, Y, rng.permutation(m), 0.01)
    assert failed == -1
    return state.theta, costs.copy()


@pytest.mark.skipif(not HAVE_MKL, reason="the mkl package is not installed")
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_the_libraries_train_alike_to_rounding(dtype, rtol, restore_blas):
    dn.set_blas("scipy")
    theta_s, cost_s = _epoch_theta(dtype)
    dn.set_blas("mkl")
    theta_m, cost_m = _epoch_theta(dtype)
    np.testing.assert_allclose(cost_m, cost_s, rtol=rtol)
    np.testing.assert_allclose(theta_m, theta_s, rtol=rtol, atol=rtol * 1e-2)
    assert not np.array_equal(theta_m, np.zeros_like(theta_m))


_CHILD = textwrap.dedent("""
    import warnings, numpy as np
    warnings.simplefilter("always")
    from deepnet_fast.kernels.blas import gemm
    import deepnet_fast as dn
    A = np.arange(12.0).reshape(3, 4); B = np.arange(8.0).reshape(4, 2)
    C = np.zeros((3, 2))
    gemm(1.0, A, B, 0.0, C)          # the first product binds the library
    assert np.array_equal(C, A @ B), C
    print(dn.get_blas()["library"])
""")


@pytest.mark.parametrize("value,expected,warns", [
    ("scipy", "scipy", False),
    ("mkl", "mkl" if HAVE_MKL else "scipy", not HAVE_MKL),
    ("auto", ("mkl", "scipy") if HAVE_MKL else "scipy", False),
    ("bogus", "scipy", True),
])
def test_the_environment_variable_chooses_at_the_first_product(value, expected, warns, tmp_path):
    env = dict(os.environ, DEEPNET_FAST_BLAS=value, XDG_CACHE_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in (expected if isinstance(expected, tuple) else (expected,))
    assert ("RuntimeWarning" in out.stderr and "DEEPNET_FAST_BLAS='" + value + "'"
            in out.stderr) == warns, out.stderr
