"""deepnet_fast: fully connected deep networks on the CPU, compiled with Numba.

- :mod:`deepnet_fast.reference`: every step in plain NumPy (the oracle);
- :mod:`deepnet_fast.compiled`: the same steps on Numba kernels;
- :class:`DeepNet`: the training API (rows are samples);
- :class:`DeepNetClassifier`, :class:`DeepNetRegressor`: scikit-learn estimators.

``import deepnet_fast`` needs only NumPy, Numba and SciPy; scikit-learn, tqdm
and matplotlib are imported when first used.
"""


def _checkout_kernels():
    """Load a checkout's ``kernels/`` as ``deepnet_fast.kernels``.

    Installed, the kernels sit inside the package (pyproject.toml maps the
    top-level ``kernels/`` there). Python run from the root of a checkout
    imports the checkout's ``deepnet_fast/`` instead, with the kernels beside
    it: load that folder under the package's name.
    """
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    name = __name__ + ".kernels"
    folder = os.path.join(os.path.dirname(here), "kernels")
    init = os.path.join(folder, "__init__.py")
    if name in sys.modules or os.path.isdir(os.path.join(here, "kernels")) \
            or not os.path.isfile(init):
        return
    spec = importlib.util.spec_from_file_location(name, init,
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    globals()["kernels"] = module


_checkout_kernels()

from . import callbacks, compiled, reference, registry, schedules
from .blas import get_blas, set_blas
from .callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from .config import FitConfig
from .exceptions import DivergenceError, ModelFileError
from .gradcheck import gradient_check
from .history import History
from .layer_cache import LayerCache
from .network import DeepNet, load
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "DeepNet", "DeepNetClassifier", "DeepNetRegressor", "History", "LayerCache",
    "DivergenceError", "ModelFileError", "load", "gradient_check", "set_num_threads",
    "get_num_threads", "set_blas", "get_blas", "compiled", "reference", "schedules",
    "registry", "callbacks", "Callback", "EarlyStopping", "ModelCheckpoint",
    "ReduceLROnPlateau", "CSVLogger", "FitConfig",
]


def __getattr__(name):
    # The estimators import scikit-learn; load them only when asked for.
    if name in ("DeepNetClassifier", "DeepNetRegressor"):
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'deepnet_fast' has no attribute {name!r}")
