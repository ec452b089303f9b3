"""Sparse input: a wide, sparse data set trained as SciPy CSR rows against the
same data densified.

The workload is text-like: 5,000 samples of 100,000 features at 0.1% density
(100 nonzeros per sample, 4 MB of float32 values and int32 indices; 2 GB
dense), a 100,000-64-1 network trained by Adam on mini-batches of 200. With
CSR rows the first layer's products run over the nonzeros
(``kernels/sparse.py``); densified, they are BLAS products over every
feature. Both are tracked lower-is-better: seconds per epoch and per
prediction, and the peak memory of holding the data and fitting an epoch.

Run alone (``cd asv_benchmarks && python -m benchmarks.bench_sparse``) it
prints the numbers with the CPU's name.
"""

import gc

import numpy as np

from .bench_training import _can_reset_peak, _reset_peak, _status_kib
from .common import Benchmark, memoized

N_SAMPLES, N_FEATURES, DENSITY = 5_000, 100_000, 0.001
HIDDEN, BATCH, DTYPE = 64, 200, "float32"
INPUTS = ["sparse", "dense"]


def make_data(kind, n_samples=N_SAMPLES):
    """``(X, y)``: CSR rows, or the same rows as a dense array; ``y`` is 0/1
    from a sparse linear rule, so that the network has something to learn."""
    import scipy.sparse as sp
    rng = np.random.default_rng(0)
    X = sp.random(n_samples, N_FEATURES, density=DENSITY, format="csr", dtype=DTYPE,
                  random_state=rng, data_rvs=rng.random)
    w = rng.standard_normal(N_FEATURES).astype(DTYPE)
    score = X @ w
    y = (score > np.median(score)).astype(np.int64)
    return (X if kind == "sparse" else X.toarray()), y


def make_net(seed=0):
    import deepnet_fast as dn
    return dn.DeepNet([N_FEATURES, HIDDEN, 1], "relu", "sigmoid", seed=seed, dtype=DTYPE)


def fit(net, X, y, epochs=1):
    return net.fit(X, y, epochs=epochs, batch_size=BATCH, optimizer="adam", learning_rate=1e-3,
                   verbose=0, warm_start=True)


def warm_up(kind):
    """Compile (or load) the kernels of ``kind``'s fit and prediction on a few
    samples, so that neither timing nor memory includes them."""
    def build():
        X, y = make_data(kind, 2 * BATCH)
        net = make_net()
        fit(net, X, y)
        net.predict_proba(X)
        return True
    return memoized("sparse-warm-up", kind, build)


def _prepared(kind):
    """Data and a network whose kernels are loaded (memoised per process)."""
    def build():
        warm_up(kind)
        X, y = make_data(kind)
        return X, y, make_net()
    return memoized("sparse-input", kind, build)


class SparseEpoch(Benchmark):
    """Seconds of one training epoch on the wide sparse set, CSR rows against
    the same rows dense."""

    params = [INPUTS]
    param_names = ["input"]
    repeat = (1, 5, 60.0)

    def setup(self, kind):
        self.X, self.y, self.net = _prepared(kind)

    def time_epoch(self, kind):
        """Seconds of one ``fit(epochs=1)`` (25 Adam steps of 200 samples)."""
        fit(self.net, self.X, self.y)

    time_epoch.pretty_name = "Sparse input: seconds per epoch, CSR vs densified"

    def time_predict(self, kind):
        """Seconds of ``predict_proba`` over the 5,000 samples."""
        self.net.predict_proba(self.X)

    time_predict.pretty_name = "Sparse input: seconds to predict, CSR vs densified"


class SparsePeak(Benchmark):
    """Peak resident memory (MiB) that making the data set and fitting one
    epoch add, with the kernels already loaded: bounded by the nonzeros and
    W1 for CSR rows, by samples x features densified. Linux only (VmHWM
    reset through /proc/self/clear_refs)."""

    params = [INPUTS]
    param_names = ["input"]
    unit = "MiB"
    repeat = (1, 1, 60.0)

    def setup(self, kind):
        if not _can_reset_peak():
            raise NotImplementedError("needs Linux's /proc/self/clear_refs")
        warm_up(kind)

    def track_data_and_fit_peak_mib(self, kind):
        """MiB of data plus model plus one epoch's fit, above the runtime."""
        return measure_peak_mib(kind)

    track_data_and_fit_peak_mib.pretty_name = "Sparse input: peak MiB of data + fit"


def measure_peak_mib(kind):
    """MiB above the resident size that making the data and fitting a fresh
    network for one epoch reach."""
    gc.collect()
    _reset_peak()
    base = _status_kib("VmRSS")
    X, y = make_data(kind)
    fit(make_net(seed=1), X, y)
    peak = _status_kib("VmHWM")
    del X
    gc.collect()
    return round((peak - base) / 1024, 1)


def main():
    import time

    from deepnet_fast.blas import cpu_name
    print(f"{N_SAMPLES} samples x {N_FEATURES} features at {DENSITY:.1%}, "
          f"{N_FEATURES}-{HIDDEN}-1 {DTYPE}, Adam, batch {BATCH}; CPU: {cpu_name()}")
    for kind in INPUTS:
        warm_up(kind)
        peak = measure_peak_mib(kind)
        X, y, net = _prepared(kind)
        epochs = []
        for _ in range(3):
            start = time.perf_counter()
            fit(net, X, y)
            epochs.append(time.perf_counter() - start)
        start = time.perf_counter()
        net.predict_proba(X)
        predict = time.perf_counter() - start
        data = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes if kind == "sparse"
                else X.nbytes) / 2**20
        print(f"{kind:>6}: epoch {min(epochs):.3f} s (best of 3), predict {predict:.3f} s, "
              f"data {data:.1f} MiB, peak of data + fit {peak:.1f} MiB")
        del X, y, net
        memoized("sparse-input", None, lambda: None)       # drop the data before the next


if __name__ == "__main__":
    main()
