import os

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _blas_libraries():
    from deepnet_fast.kernels.blas import mkl_path
    return ["scipy"] + (["mkl"] if mkl_path() else [])


@pytest.fixture(params=_blas_libraries())
def blas_library(request):
    """Each BLAS library the kernels can run on here (MKL where installed);
    restores the previous choice afterwards."""
    import deepnet_fast as dn
    previous = dn.get_blas()["library"]
    dn.set_blas(request.param)
    yield request.param
    dn.set_blas(previous)


# A first fit with an empty cache starts a helper process that compiles the
# prediction kernel beside it (compilation.compile_beside): not in the suite,
# whose tests count compiles; tests/test_compilation.py turns it on where it
# tests it.
os.environ.setdefault("DEEPNET_FAST_COMPILE_BESIDE", "0")
