"""Training: one epoch's time, time per sample, a fit's peak memory, and cost
and error after a fixed number of epochs (so that a fast but wrong kernel
shows up). Every quantity is lower-is-better (see ``common``)."""

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
    CASES,
    TRACK_EPOCHS,
    TRAINING_BACKENDS,
    TRAINING_PARAM_NAMES,
    TRAINING_PARAMS,
    WORKLOAD_NAMES,
    WORKLOADS,
    Benchmark,
    check_backend,
    get_data,
    get_trainer,
    new_trainer,
    split_case,
)


class TrainingEpoch(Benchmark):
    """Seconds per training epoch, after a warm-up epoch done in ``setup``."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    # Each sample is one fit(epochs=1) call (asv re-runs setup between calls):
    # up to 25 samples within 10 s, so that the median of a 1-ms epoch is not
    # one or two calls on a shared machine (up to 10 one-second wide-large ones).
    repeat = (3, 25, 10.0)

    def setup(self, backend, case):
        self.trainer = get_trainer(*split_case(case), backend)

    def time_epoch(self, backend, case):
        """Seconds of one ``fit(epochs=1)`` call, its fixed cost included."""
        self.trainer.train(1)

    time_epoch.pretty_name = "Training: seconds per epoch (one fit call)"


class TrainingPerSample(Benchmark):
    """Training time per sample, each measurement padded to at least 0.2 s of
    epochs (as ``deepnet-fast bench``): ``TrainingEpoch`` times a single
    ``fit(epochs=1)`` call, whose fixed cost (argument checks, buffers, about
    0.3-0.5 ms) weighs on the 1-ms epochs of digits-small."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    unit = "seconds"

    def setup(self, backend, case):
        workload, dtype = split_case(case)
        self.trainer = get_trainer(workload, dtype, backend)
        self.n_samples = get_data(workload, dtype)[0].shape[0]

    def track_seconds_per_sample(self, backend, case):
        """Seconds per training sample (1 / samples per second), median of
        three padded measurements: the inverse of ``deepnet-fast bench``'s
        samples/s, so that a slower backend is a higher line."""
        return 1.0 / samples_per_second(self.trainer, self.n_samples)

    track_seconds_per_sample.pretty_name = "Training: time per sample, every backend"


class EpochVsMatmul(Benchmark):
    """The compiled epoch's time over the time a NumPy matmul of the workload
    (wide-large: 2048x2048 float32) needs for the same floating-point
    operations, both measured here, one after the other: 1.0 is matmul speed,
    lower is better (``deepnet-fast bench`` prints the inverse, the fraction of
    the matmul's GFLOP/s). Training FLOPs are counted as
    ``6 * sum(n[l] * n[l-1])`` per sample."""

    params = [[w for w in WORKLOAD_NAMES if WORKLOADS[w].matmul is not None]]
    param_names = ["workload"]
    unit = "x matmul time (1 = matmul speed)"

    def setup(self, workload):
        dtype = WORKLOADS[workload].dtypes[0]
        self.trainer = get_trainer(workload, dtype, "compiled")
        self.n_samples = get_data(workload, dtype)[0].shape[0]

    def track_epoch_time_over_matmul_time(self, workload):
        """Matmul GFLOP/s over the compiled epoch's GFLOP/s."""
        w = WORKLOADS[workload]
        rate = samples_per_second(self.trainer, self.n_samples)
        gflops = rate * training_flops_per_sample(w.layer_dims) / 1e9
        return matmul_gflops(*w.matmul) / gflops

    track_epoch_time_over_matmul_time.pretty_name = (
        "Compiled epoch time / matmul time for its FLOPs")


class FitMemory(Benchmark):
    """Peak resident memory of building a model and fitting one epoch, for the
    whole process: it includes each library's runtime (for the compiled
    backend Numba's compiled kernels and MKL, tens of MiB the reference never
    loads). :class:`FitPeak` measures the fit alone."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES

    def setup(self, backend, case):
        workload, dtype = split_case(case)
        check_backend(backend)
        self.workload, self.dtype = workload, dtype
        self.X, self.y = get_data(workload, dtype)

    def peakmem_fit(self, backend, case):
        """Bytes of the process's peak resident memory, runtime included."""
        new_trainer(self.workload, self.dtype, backend, self.X, self.y, warmup=True)

    peakmem_fit.pretty_name = "Fit: peak memory of the whole process"


class FitPeak(Benchmark):
    """Peak resident memory that building a model and fitting one epoch adds
    above the resident size before it (MiB), with the backend's runtime
    already loaded by a warm-up on a few samples in ``setup``. Linux only: the
    kernel's peak-RSS mark (VmHWM) is reset through /proc/self/clear_refs."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    unit = "MiB"

    def setup(self, backend, case):
        workload, dtype = split_case(case)
        check_backend(backend)
        if not _can_reset_peak():
            raise NotImplementedError("needs Linux's /proc/self/clear_refs")
        self.workload, self.dtype = workload, dtype
        self.X, self.y = get_data(workload, dtype)
        n = min(self.X.shape[0], 2 * (WORKLOADS[workload].batch_size or 16))
        new_trainer(workload, dtype, backend, self.X[:n], self.y[:n], warmup=True)

    def track_fit_peak_mib(self, backend, case):
        """MiB that model and fit add to the resident size (runtime loaded)."""
        gc.collect()
        _reset_peak()
        base = _status_kib("VmRSS")
        new_trainer(self.workload, self.dtype, backend, self.X, self.y, warmup=True)
        return round((_status_kib("VmHWM") - base) / 1024, 1)

    track_fit_peak_mib.pretty_name = "Fit: peak memory above the runtime (MiB)"


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
    """Training cost and error rate after ``TRACK_EPOCHS[workload]`` epochs
    from the seeded initial weights (``setup_cache`` trains every case once)."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES
    timeout = 1800

    def setup_cache(self):
        results = {}
        for case in CASES:
            workload, dtype = split_case(case)
            X, y = make_data(workload, dtype)
            for backend in TRAINING_BACKENDS:
                try:
                    trainer = make_trainer(backend, workload, X, y, dtype, warmup=False)
                except BackendUnavailable:
                    continue
                trainer.train(TRACK_EPOCHS[workload])
                results[backend, case] = (trainer.cost(), 1.0 - trainer.accuracy())
        return results

    def setup(self, results, backend, case):
        split_case(case)
        if (backend, case) not in results:
            raise NotImplementedError(f"{backend} is not available")

    def track_final_cost(self, results, backend, case):
        """Training cost (the output's cross-entropy) after the fixed epochs."""
        return results[backend, case][0]

    track_final_cost.unit = "cross-entropy"
    track_final_cost.pretty_name = "Convergence: training cost after fixed epochs"

    def track_error_rate(self, results, backend, case):
        """Fraction of training samples misclassified after the fixed epochs
        (1 - accuracy)."""
        return results[backend, case][1]

    track_error_rate.unit = "fraction misclassified"
    track_error_rate.pretty_name = "Convergence: training error after fixed epochs"


def _blas_libraries():
    from deepnet_fast.kernels.blas import mkl_path
    return ["scipy"] + (["mkl"] if mkl_path() is not None else [])


BLAS_LIBRARIES = _blas_libraries()


class TrainingEpochBLAS(Benchmark):
    """Seconds per compiled epoch with the kernels' products on each BLAS
    library: SciPy's (OpenBLAS) and MKL (listed only where the mkl package is
    installed)."""

    params = [BLAS_LIBRARIES, WORKLOAD_NAMES]
    param_names = ["blas", "workload"]

    def setup(self, blas, workload):
        import deepnet_fast as dn
        from deepnet_fast.kernels.blas import mkl_path
        if blas == "mkl" and mkl_path() is None:
            raise NotImplementedError("the mkl package is not installed")
        self.previous = dn.get_blas()["library"]
        dn.set_blas(blas)
        self.trainer = get_trainer(workload, WORKLOADS[workload].dtypes[0], "compiled")

    def teardown(self, blas, workload):
        import deepnet_fast as dn
        dn.set_blas(self.previous)

    def time_epoch(self, blas, workload):
        """Seconds of one compiled ``fit(epochs=1)`` call on this BLAS."""
        self.trainer.train(1)

    time_epoch.pretty_name = "Training: seconds per compiled epoch, by BLAS library"
