"""Prediction: one forward pass over a workload's samples, nothing kept for
backprop; and the latency of small predictions, against ONNX Runtime and
PyTorch (issue 19 item 3).

Run alone (``cd asv_benchmarks && python -m benchmarks.bench_predict``) it
prints the latency table with the CPU's name, each library measured in a
process of its own (:mod:`deepnet_fast.bench_latency`).
"""

import statistics

from deepnet_fast.bench_latency import (
    GAPS,
    IMPLEMENTATIONS,
    NETWORKS,
    PEERS,
    SAMPLES,
    bare_kernel,
    implementation_unavailable,
    latency_rows,
    make_predictor,
    measure,
    median_ratio,
    seconds_per_paced_call,
)

from .common import (
    TRAINING_PARAM_NAMES,
    TRAINING_PARAMS,
    WORKLOADS,
    Benchmark,
    get_data,
    memoized,
    new_trainer,
    seconds_per_call,
    split_case,
)


def _predictor(workload, dtype, backend):
    X, y = get_data(workload, dtype)
    # Predictions cost the same trained or not: fit a single batch (scikit-
    # learn needs a fitted model), then predict once to compile.
    batch = WORKLOADS[workload].batch_size or X.shape[0]
    trainer = new_trainer(workload, dtype, backend, X[:batch], y[:batch])
    trainer.predict(X)
    return trainer


class Predict(Benchmark):
    """Seconds to predict the classes of all of a workload's samples."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES

    def setup(self, backend, case):
        workload, dtype = split_case(case)
        self.X, _ = get_data(workload, dtype)
        self.trainer = memoized("predict", (workload, dtype, backend),
                                lambda: _predictor(workload, dtype, backend))

    def time_predict(self, backend, case):
        """Seconds of one ``predict`` over all of the workload's samples."""
        self.trainer.predict(self.X)

    time_predict.pretty_name = "Predict: seconds for all of a workload's samples"


# ---------------------------------------------------------------- latency

LATENCY_IMPLEMENTATIONS = [i for i in IMPLEMENTATIONS if implementation_unavailable(i) is None]
LATENCY_PEERS = [p for p in PEERS if p in LATENCY_IMPLEMENTATIONS]
# Milliseconds between calls: 0 back to back, else a service's paced calls.
LATENCY_GAPS_MS = [g * 1e3 for g in GAPS]


def _skip_unavailable(implementation):
    reason = implementation_unavailable(implementation)
    if reason:
        raise NotImplementedError(reason)


class PredictLatency(Benchmark):
    """Seconds per ``predict_proba`` call on 1 or 32 rows, float32: our
    compiled backend, ONNX Runtime on the exported model and PyTorch under
    ``inference_mode`` (see :mod:`deepnet_fast.bench_latency`; peers listed
    only where installed). asv runs every combination in a process of its
    own. Back to back (``gap_ms`` 0) timed as :func:`common.seconds_per_call`
    times the kernels (21 samples of back-to-back calls filling 10 ms, the
    median); paced, the median of single calls ``gap_ms`` apart."""

    params = [LATENCY_IMPLEMENTATIONS, list(NETWORKS), list(SAMPLES), LATENCY_GAPS_MS]
    param_names = ["implementation", "network", "samples", "gap_ms"]
    unit = "seconds"

    def setup(self, implementation, network, samples, gap_ms):
        _skip_unavailable(implementation)
        self.X = latency_rows(network, samples)
        self.predict = memoized("latency", (implementation, network),
                                lambda: make_predictor(implementation, network))
        self.predict(self.X)

    def track_latency(self, implementation, network, samples, gap_ms):
        """Seconds per ``predict_proba`` (or the peer's equivalent) call."""
        if gap_ms:
            return seconds_per_paced_call(lambda: self.predict(self.X), gap_ms / 1e3, calls=21)
        return seconds_per_call(lambda: self.predict(self.X))

    track_latency.pretty_name = "Prediction latency: seconds per predict_proba call"


class PredictOverhead(Benchmark):
    """Seconds that ``DeepNet.predict_proba`` adds to its prediction kernel
    (validation, conversion, thread decision, finiteness check) for a
    float32 C-contiguous input: the median over 15 alternating rounds of the
    two times' difference, in this process. Target: under 10 us."""

    params = [list(NETWORKS), list(SAMPLES)]
    param_names = ["network", "samples"]
    unit = "seconds"

    def setup(self, network, samples):
        self.X = latency_rows(network, samples)
        self.proba = make_predictor("compiled", network)
        self.kernel = bare_kernel(network, self.X)
        self.proba(self.X), self.kernel()

    def track_overhead(self, network, samples):
        """Median over rounds of predict_proba's time minus the kernel's."""
        differences = []
        for _ in range(15):
            proba = seconds_per_call(lambda: self.proba(self.X), samples=5)
            kernel = seconds_per_call(lambda: self.kernel(), samples=5)
            differences.append(proba - kernel)
        return statistics.median(differences)

    track_overhead.pretty_name = "Prediction latency: Python overhead, seconds per call"


class PredictLatencyRatio(Benchmark):
    """Our ``predict_proba`` time over a peer's (ONNX Runtime on the exported
    model, PyTorch under ``inference_mode``) on the same rows: each library
    in a process of its own, asked in turn for 11 rounds
    (:func:`deepnet_fast.bench_latency.measure`); the median over rounds of
    the two times of a round. Below 1: deepnet_fast is faster; the target at
    one row is at most 1 against ONNX Runtime."""

    params = [LATENCY_PEERS, list(NETWORKS), list(SAMPLES), LATENCY_GAPS_MS]
    param_names = ["peer", "network", "samples", "gap_ms"]
    unit = "x the peer's time (below 1: deepnet_fast faster)"

    def setup(self, peer, network, samples, gap_ms):
        _skip_unavailable(peer)

    def track_time_over_peer(self, peer, network, samples, gap_ms):
        """Median over rounds of our seconds per call over the peer's."""
        gap = gap_ms / 1e3
        result = measure(["compiled", peer], [network], [samples], rounds=11, gaps=(gap,))
        if result["errors"]:
            raise RuntimeError("; ".join(f"{k}: {v}" for k, v in result["errors"].items()))
        return median_ratio(result, "compiled", peer, network, samples, gap)

    track_time_over_peer.pretty_name = "Prediction latency: our time / the peer's time"


def main():
    """``python -m benchmarks.bench_predict``: the latency table with the CPU
    (see :func:`deepnet_fast.bench_latency.main` for the options)."""
    from deepnet_fast.bench_latency import main as latency_main
    return latency_main()


if __name__ == "__main__":
    import sys
    sys.exit(main())
