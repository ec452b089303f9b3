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
