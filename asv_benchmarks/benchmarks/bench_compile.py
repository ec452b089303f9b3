"""Start-up cost, as a new user meets it: a fresh process, wall time from the
interpreter's start, with an empty Numba cache (every kernel compiles) and
again with the cache that run filled (kernels load from disk).

The three starts of issue 17:

- ``train-digits``: the README's first command, ``deepnet-fast train --data
  digits`` (100 epochs of a 64-64-32-10 float64 network on one thread, and its
  predictions);
- ``large-float32``: one epoch of a 784-1024-1024-10 float32 network and a
  prediction, as a user writes it (no thread count): on two cores its size
  calls for the threaded kernels, but a fit and a prediction this short run
  on one thread rather than wait for their compile
  (``deepnet_fast.compilation.training_threads``, ``prediction_threads``);
- ``tiny``: ``import deepnet_fast`` and a two-epoch fit of a tiny network,
  to the first prediction.

Each cold start runs twice: as a user meets it (a first fit starts a helper
process that compiles kernels on the other core, and runs on the NumPy
reference meanwhile when that is quicker, see
``deepnet_fast.compilation.compile_beside`` and ``training_backend``; the
helper may finish after the process, and ``track_cold_cache_kernels_ready``
is when the cache holds both kernels), and in one process on the
kernels the sizes call for (``DEEPNET_FAST_COMPILE_BESIDE=0``: no helper, and
``large-float32`` compiles the threaded kernel), which also records how many functions
Numba compiled (the count a restructuring of the kernels moves first, and
noise-free: with the helper, what each process compiles depends on timing).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from .common import Benchmark

_FIT = r"""
import json, time
import numpy as np
from numba.core import event
with event.install_recorder("numba:compile") as rec:
    import deepnet_fast
    {body}
from deepnet_fast import compilation
print(json.dumps({{"compiles": sum(1 for _, ev in rec.buffer if ev.is_end),
                  "helpers": [h.pid for h in compilation.helpers()]}}))
"""

_BODIES = {
    "tiny": """
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8))
    y = (X[:, 0] > 0).astype(np.int64)
    net = deepnet_fast.DeepNet([8, 4, 1], seed=0)
    net.fit(X, y, epochs=2, batch_size=16, learning_rate=0.1, verbose=0)
    net.predict(X)""",
    "large-float32": """
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048, 784)).astype(np.float32)
    y = rng.integers(0, 10, 2048)
    net = deepnet_fast.DeepNet([784, 1024, 1024, 10], output_activation="softmax", seed=0,
                               dtype="float32")
    net.fit(X, y, epochs=1, batch_size=256, learning_rate=0.01, verbose=0)
    net.predict(X)""",
}

# The README's command, through the package's own entry point, counting compiles.
_CLI = r"""
import json, sys
from numba.core import event
from deepnet_fast.cli import main
with event.install_recorder("numba:compile") as rec:
    main(["train", "--data", "digits"])
from deepnet_fast import compilation
print(json.dumps({"compiles": sum(1 for _, ev in rec.buffer if ev.is_end),
                  "helpers": [h.pid for h in compilation.helpers()]}))
"""


def _child(start):
    if start == "train-digits":
        return _CLI
    return _FIT.replace("{body}", _BODIES[start]).replace("{{", "{").replace("}}", "}")


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # a reused pid of another user's
        return False
    return True


def run_start(start, cache_dir, beside=True):
    """Wall seconds of one fresh process running ``start`` with ``cache_dir`` as
    Numba's cache (``beside``: with the compile helper), the number of
    functions it compiled, and (``ready``) the seconds until the cache held
    the kernels it started compiling, the helper's work included when it
    outlives the process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, DEEPNET_FAST_COMPILE_BESIDE=str(int(beside)))
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _child(start)], env=env, check=True,
                         capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - began
    result = json.loads(out.stdout.strip().splitlines()[-1])
    while any(_running(pid) for pid in result["helpers"]) and time.perf_counter() - began < 900:
        time.sleep(0.05)
    return dict(result, seconds=seconds, ready=time.perf_counter() - began)


class StartUp(Benchmark):
    """Seconds from a fresh interpreter to a trained, predicting network."""

    timeout = 1800
    params = ["train-digits", "large-float32", "tiny"]
    param_names = ["start"]

    def setup_cache(self):
        times = {}
        for start in self.params:
            with tempfile.TemporaryDirectory(prefix="deepnet_fast_numba_cache_") as cache_dir:
                times[start] = {"cold": run_start(start, cache_dir),
                                "warm": run_start(start, cache_dir)}
            with tempfile.TemporaryDirectory(prefix="deepnet_fast_numba_cache_") as cache_dir:
                times[start]["alone"] = run_start(start, cache_dir, beside=False)
        return times

    def track_cold_cache(self, times, start):
        """Seconds with an empty Numba cache: every kernel the run needs compiles
        (issue 17's targets: train-digits 10 s, large-float32 15 s)."""
        return times[start]["cold"]["seconds"]

    track_cold_cache.unit = "seconds"
    track_cold_cache.pretty_name = "Start-up: seconds to a trained network, empty cache"

    def track_cold_cache_kernels_ready(self, times, start):
        """Seconds until the kernels that run started compiling were in the
        cache (its helper done): whether the run waited for them or trained
        on the NumPy reference meanwhile."""
        return times[start]["cold"]["ready"]

    track_cold_cache_kernels_ready.unit = "seconds"
    track_cold_cache_kernels_ready.pretty_name = ("Start-up: seconds until the kernels are "
                                                  "cached, empty cache")

    def track_cold_cache_one_process(self, times, start):
        """The same with every kernel compiled in the one process (no helper)."""
        return times[start]["alone"]["seconds"]

    track_cold_cache_one_process.unit = "seconds"
    track_cold_cache_one_process.pretty_name = ("Start-up: seconds to a trained network, empty "
                                                "cache, one process")

    def track_warm_cache(self, times, start):
        """The same with the kernels loaded from the cache the cold run filled
        (target: the fit itself adds at most 0.5 s to the interpreter's start)."""
        return times[start]["warm"]["seconds"]

    track_warm_cache.unit = "seconds"
    track_warm_cache.pretty_name = "Start-up: seconds to a trained network, warm cache"

    def track_compiled_functions(self, times, start):
        """Functions Numba compiled in the cold run in one process (Numba's own
        overloads included): fewer, larger compilation units compile faster."""
        return times[start]["alone"]["compiles"]

    track_compiled_functions.unit = "functions"
    track_compiled_functions.pretty_name = "Start-up: functions compiled, empty cache"


if __name__ == "__main__":
    from deepnet_fast.blas import cpu_name
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores")
    for start in StartUp.params:
        with tempfile.TemporaryDirectory(prefix="deepnet_fast_numba_cache_") as cache_dir:
            alone = run_start(start, cache_dir, beside=False)
        with tempfile.TemporaryDirectory(prefix="deepnet_fast_numba_cache_") as cache_dir:
            cold, warm = run_start(start, cache_dir), run_start(start, cache_dir)
        print(f"{start:14s} cold {cold['seconds']:6.1f} s (kernels cached at {cold['ready']:.1f} s),"
              f" in one process {alone['seconds']:6.1f} s ({alone['compiles']} compiled)  "
              f"warm {warm['seconds']:5.2f} s", flush=True)
