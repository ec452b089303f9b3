"""deepnet_fast: fully connected deep networks on the CPU, compiled with Numba.

- :mod:`deepnet_fast.reference`: every step in plain NumPy (the oracle);
- :mod:`deepnet_fast.compiled`: the same steps on Numba kernels;
- :class:`DeepNet`: the training API (rows are samples);
- :class:`DeepNetClassifier`, :class:`DeepNetRegressor`: scikit-learn estimators.

``import deepnet_fast`` needs only NumPy, Numba and SciPy; scikit-learn, tqdm
and matplotlib are imported when first used.
"""

from . import compiled, reference, schedules
from .blas import get_blas, set_blas
from .exceptions import DivergenceError, ModelFileError
from .gradcheck import gradient_check
from .history import History
from .layer_cache import LayerCache
from .network import DeepNet
from .serialization import load_model as load
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "DeepNet", "DeepNetClassifier", "DeepNetRegressor", "History", "LayerCache",
    "DivergenceError", "ModelFileError", "load", "gradient_check", "set_num_threads",
    "get_num_threads", "set_blas", "get_blas", "compiled", "reference", "schedules",
]


def __getattr__(name):
    # The estimators import scikit-learn; load them only when asked for.
    if name in ("DeepNetClassifier", "DeepNetRegressor"):
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'deepnet_fast' has no attribute {name!r}")
