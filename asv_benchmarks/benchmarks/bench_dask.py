"""Data-parallel training on a 2-worker loopback Dask cluster against 1 worker
(mnist-medium-sized data), via :func:`deepnet_fast.bench_dask.run`.

Skipped when dask/distributed are not installed (``pip install "deepnet-fast[dask]"``).
"""


class DaskScaling:
    """Speed-up, parallel efficiency and round overhead of model averaging."""

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

    def track_speedup_2_workers(self, results):
        return results["speedup"]

    track_speedup_2_workers.unit = "x"

    def track_parallel_efficiency_2_workers(self, results):
        return results["workers_2"]["efficiency"]

    track_parallel_efficiency_2_workers.unit = "fraction"

    def track_round_overhead_ms(self, results):
        return 1000 * results["workers_2"]["round_overhead_s"]

    track_round_overhead_ms.unit = "ms"
