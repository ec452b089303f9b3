"""Data-parallel training on a 2-worker loopback Dask cluster against 1 worker
(mnist-medium-sized data), via :func:`deepnet_fast.bench_dask.run`.

Skipped when dask/distributed are not installed (``pip install "deepnet-fast[dask]"``).
"""


class DaskScaling:
    """Scaling of model averaging, each figure lower-is-better: round time on
    two workers over one, worker time per compute time, round overhead."""

    timeout = 1800
    number = 1
    repeat = 1

    def setup_cache(self):
        try:
            import distributed  # noqa: F401
        except ImportError:
            return None
        from deepnet_fast.bench_dask import run

        return run(epochs=3, repeat=2)

    def setup(self, results):
        if results is None:
            raise NotImplementedError("dask/distributed not installed")

    def track_time_2_workers_over_1(self, results):
        """Round time on two workers over the round time on one (the inverse
        of ``bench_dask``'s speed-up): 0.5 is perfect scaling, 1.0 none."""
        return 1.0 / results["speedup"]

    track_time_2_workers_over_1.unit = "x one worker's time"
    track_time_2_workers_over_1.pretty_name = "Dask: round time, 2 workers / 1 worker"

    def track_worker_seconds_per_compute_second(self, results):
        """Worker seconds (2 x round wall time) per second of task compute
        (the inverse of ``bench_dask``'s parallel efficiency): 1.0 is no
        overhead."""
        return 1.0 / results["workers_2"]["efficiency"]

    track_worker_seconds_per_compute_second.unit = "x compute time (1 = no overhead)"
    track_worker_seconds_per_compute_second.pretty_name = (
        "Dask: worker time per compute time, 2 workers")

    def track_round_overhead(self, results):
        """Seconds of a round beyond its slowest task (sending parameters,
        scheduling, gathering, averaging), 2 workers."""
        return results["workers_2"]["round_overhead_s"]

    track_round_overhead.unit = "seconds"
    track_round_overhead.pretty_name = "Dask: round overhead, 2 workers"
