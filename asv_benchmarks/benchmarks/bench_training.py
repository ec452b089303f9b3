"""Training: one epoch's time, a fit's peak memory, and cost and accuracy after
a fixed number of epochs (so that a fast but wrong kernel shows up)."""

import gc

from deepnet_fast.bench import (
    BackendUnavailable,
    make_data,
    make_trainer,
    matmul_gflops,
    samples_per_second,
    training_flops_per_sample,
)

from .common import (
    DTYPES,
    TRACK_EPOCHS,
    TRAINING_PARAM_NAMES,
    TRAINING_PARAMS,
    WORKLOAD_NAMES,
    WORKLOADS,
    Benchmark,
    check_backend,
    check_case,
    get_data,
    get_trainer,
    new_trainer,
)


class TrainingEpoch(Benchmark):
    """Seconds per training epoch, after a warm-up epoch done in ``setup``."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    # Each sample is one fit(epochs=1) call (asv re-runs setup between calls):
    # up to 25 samples within 10 s, so that the median of a 1-ms epoch is not
    # one or two calls on a shared machine (up to 10 one-second wide-large ones).
    repeat = (3, 25, 10.0)

    def setup(self, workload, dtype, backend):
        self.trainer = get_trainer(workload, dtype, backend)

    def time_epoch(self, workload, dtype, backend):
        self.trainer.train(1)


class TrainingThroughput(Benchmark):
    """Samples/s of training, each measurement padded to at least 0.2 s of
    epochs (as ``deepnet-fast bench``): ``TrainingEpoch`` times a single
    ``fit(epochs=1)`` call, whose fixed cost (argument checks, buffers, about
    0.3-0.5 ms) weighs on the 1-ms epochs of digits-small."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    unit = "samples/s"

    def setup(self, workload, dtype, backend):
        self.trainer = get_trainer(workload, dtype, backend)
        self.n_samples = get_data(workload, dtype)[0].shape[0]

    def track_samples_per_second(self, workload, dtype, backend):
        return round(samples_per_second(self.trainer, self.n_samples))


class MatmulFraction(Benchmark):
    """The compiled epoch's GFLOP/s over those of the workload's NumPy matmul
    (wide-large: 2048x2048 float32), both measured here, one after the other
    (``deepnet-fast bench`` prints the same): training FLOPs counted as
    ``6 * sum(n[l] * n[l-1])`` per sample."""

    params = [[w for w in WORKLOAD_NAMES if WORKLOADS[w].matmul is not None]]
    param_names = ["workload"]
    unit = "fraction of matmul"

    def setup(self, workload):
        dtype = WORKLOADS[workload].dtypes[0]
        self.trainer = get_trainer(workload, dtype, "compiled")
        self.n_samples = get_data(workload, dtype)[0].shape[0]

    def track_fraction_of_matmul(self, workload):
        w = WORKLOADS[workload]
        rate = samples_per_second(self.trainer, self.n_samples)
        gflops = rate * training_flops_per_sample(w.layer_dims) / 1e9
        return gflops / matmul_gflops(*w.matmul)


class FitMemory(Benchmark):
    """Peak resident memory of building a model and fitting one epoch, for the
    whole process: it includes each library's runtime (for the compiled
    backend Numba's compiled kernels and MKL, tens of MiB the reference never
    loads). :class:`FitPeak` measures the fit alone."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES

    def setup(self, workload, dtype, backend):
        check_backend(backend)
        self.X, self.y = get_data(workload, dtype)

    def peakmem_fit(self, workload, dtype, backend):
        new_trainer(workload, dtype, backend, self.X, self.y, warmup=True)


class FitPeak(Benchmark):
    """Peak resident memory that building a model and fitting one epoch adds
    above the resident size before it (MiB), with the backend's runtime
    already loaded by a warm-up on a few samples in ``setup``. Linux only: the
    kernel's peak-RSS mark (VmHWM) is reset through /proc/self/clear_refs."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    unit = "MiB"

    def setup(self, workload, dtype, backend):
        check_backend(backend)
        if not _can_reset_peak():
            raise NotImplementedError("needs Linux's /proc/self/clear_refs")
        self.X, self.y = get_data(workload, dtype)
        n = min(self.X.shape[0], 2 * (WORKLOADS[workload].batch_size or 16))
        new_trainer(workload, dtype, backend, self.X[:n], self.y[:n], warmup=True)

    def track_fit_peak_mib(self, workload, dtype, backend):
        gc.collect()
        _reset_peak()
        base = _status_kib("VmRSS")
        new_trainer(workload, dtype, backend, self.X, self.y, warmup=True)
        return round((_status_kib("VmHWM") - base) / 1024, 1)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak():
    # Writing 5 to clear_refs resets VmHWM to the current resident size.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _can_reset_peak():
    try:
        _reset_peak()
        _status_kib("VmHWM")
    except OSError:
        return False
    return True


class Convergence(Benchmark):
    """Training cost and accuracy after ``TRACK_EPOCHS[workload]`` epochs from
    the seeded initial weights (``setup_cache`` trains every case once)."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    timeout = 1800

    def setup_cache(self):
        results = {}
        for workload, w in WORKLOADS.items():
            for dtype in DTYPES:
                if dtype not in w.dtypes:
                    continue
                X, y = make_data(workload, dtype)
                for backend in TRAINING_PARAMS[2]:
                    try:
                        trainer = make_trainer(backend, workload, X, y, dtype, warmup=False)
                    except BackendUnavailable:
                        continue
                    trainer.train(TRACK_EPOCHS[workload])
                    results[workload, dtype, backend] = (trainer.cost(), trainer.accuracy())
        return results

    def setup(self, results, workload, dtype, backend):
        check_case(workload, dtype)
        if (workload, dtype, backend) not in results:
            raise NotImplementedError(f"{backend} is not available")

    def track_final_cost(self, results, workload, dtype, backend):
        return results[workload, dtype, backend][0]

    track_final_cost.unit = "cross-entropy"

    def track_accuracy(self, results, workload, dtype, backend):
        return results[workload, dtype, backend][1]

    track_accuracy.unit = "fraction"


class TrainingEpochBLAS(Benchmark):
    """Seconds per compiled epoch with the kernels' products on each BLAS
    library: SciPy's (OpenBLAS) and MKL (skipped where the mkl package is not
    installed)."""

    params = [list(WORKLOADS), ["scipy", "mkl"]]
    param_names = ["workload", "blas"]

    def setup(self, workload, blas):
        import deepnet_fast as dn
        from deepnet_fast.kernels.blas import mkl_path
        if blas == "mkl" and mkl_path() is None:
            raise NotImplementedError("the mkl package is not installed")
        self.previous = dn.get_blas()["library"]
        dn.set_blas(blas)
        self.trainer = get_trainer(workload, WORKLOADS[workload].dtypes[0], "compiled")

    def teardown(self, workload, blas):
        import deepnet_fast as dn
        dn.set_blas(self.previous)

    def time_epoch(self, workload, blas):
        self.trainer.train(1)
