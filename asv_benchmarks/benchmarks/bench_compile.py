"""Start-up cost: a fresh process that imports deepnet_fast and trains a tiny
network, with an empty Numba cache (everything compiles) and again with the
cache that run filled (kernels load from disk). ``threads=2`` makes the fit
split its batches between two threads, which compiles (or loads) the threaded
epoch kernel as well."""

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
deepnet_fast.set_num_threads({threads})
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 8))
y = (X[:, 0] > 0).astype(np.int64)
net = deepnet_fast.DeepNet([8, 4, 1], seed=0, backend="compiled")
net.fit(X, y, epochs=2, batch_size=16, learning_rate=0.1, verbose=0)
net.predict(X)
done = time.perf_counter()
print(json.dumps({"import": imported - start, "total": done - start}))
"""


def _start(cache_dir, threads):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    child = _CHILD.replace("{threads}", str(threads))
    out = subprocess.run([sys.executable, "-c", child], env=env, check=True,
                         capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


class StartUp(Benchmark):
    """Seconds from ``import deepnet_fast`` to a fitted, predicting tiny network."""

    timeout = 1800
    params = [1, 2]
    param_names = ["threads"]

    def setup_cache(self):
        times = {}
        for threads in self.params:
            with tempfile.TemporaryDirectory(prefix="deepnet_fast_numba_cache_") as cache_dir:
                cold = _start(cache_dir, threads)
                warm = _start(cache_dir, threads)
            times[threads] = {"cold": cold, "warm": warm}
        return times

    def track_cold_cache_start(self, times, threads):
        """Seconds from the interpreter's start to a fitted, predicting tiny
        network, everything compiled."""
        return times[threads]["cold"]["total"]

    track_cold_cache_start.unit = "seconds"
    track_cold_cache_start.pretty_name = "Start-up: seconds to a fitted network, empty cache"

    def track_warm_cache_start(self, times, threads):
        """The same with the kernels loaded from the cache the cold run filled."""
        return times[threads]["warm"]["total"]

    track_warm_cache_start.unit = "seconds"
    track_warm_cache_start.pretty_name = "Start-up: seconds to a fitted network, warm cache"

    def track_import(self, times, threads):
        """Seconds of ``import deepnet_fast`` (warm cache)."""
        return times[threads]["warm"]["import"]

    track_import.unit = "seconds"
    track_import.pretty_name = "Start-up: seconds of import deepnet_fast"
