"""Start-up cost: a fresh process that imports deepnet_fast and trains a tiny
network, with an empty Numba cache (everything compiles) and again with the
cache that run filled (kernels load from disk)."""

import json
import os
import subprocess
import sys
import tempfile

from .common import Benchmark

_CHILD = r"""
import json, time
start = time.perf_counter()
import numpy as np
import deepnet_fast
imported = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 8))
y = (X[:, 0] > 0).astype(np.int64)
net = deepnet_fast.DeepNet([8, 4, 1], seed=0, backend="compiled")
net.fit(X, y, epochs=2, batch_size=16, learning_rate=0.1, verbose=0)
net.predict(X)
done = time.perf_counter()
print(json.dumps({"import": imported - start, "total": done - start}))
"""


def _start(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True,
                         capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


class StartUp(Benchmark):
    """Seconds from ``import deepnet_fast`` to a fitted, predicting tiny network."""

    timeout = 1800

    def setup_cache(self):
        with tempfile.TemporaryDirectory(prefix="deepnet_fast_numba_cache_") as cache_dir:
            cold = _start(cache_dir)
            warm = _start(cache_dir)
        return {"cold": cold, "warm": warm}

    def track_cold_cache_start(self, times):
        return times["cold"]["total"]

    track_cold_cache_start.unit = "seconds"

    def track_warm_cache_start(self, times):
        return times["warm"]["total"]

    track_warm_cache_start.unit = "seconds"

    def track_import(self, times):
        return times["warm"]["import"]

    track_import.unit = "seconds"
