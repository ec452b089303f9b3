"""Choosing the BLAS library of the kernels: MKL when installed, else SciPy's."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import engines
from deepnet_fast.architecture import Architecture
from deepnet_fast.config import FitConfig
from deepnet_fast.state import TrainingState
from deepnet_fast import params as flat
from deepnet_fast.initialization import initialize_parameters
from deepnet_fast.kernels import blas as kblas

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


@pytest.mark.skipif(not HAVE_MKL, reason="the mkl package is not installed")
def test_auto_prefers_mkl_when_installed(restore_blas):
    assert dn.set_blas(" AUTO ") == "mkl"
    assert dn.get_blas()["version"].startswith("MKL ")


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
    ("auto", "mkl" if HAVE_MKL else "scipy", False),
    ("bogus", "scipy", True),
])
def test_the_environment_variable_chooses_at_the_first_product(value, expected, warns):
    env = dict(os.environ, DEEPNET_FAST_BLAS=value)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
    assert ("RuntimeWarning" in out.stderr and "DEEPNET_FAST_BLAS='" + value + "'"
            in out.stderr) == warns, out.stderr
