"""Per-epoch model averaging on two Dask workers against one.

``python -m deepnet_fast.bench_dask`` trains the ``mnist-medium`` workload of
:mod:`deepnet_fast.bench` (784-256-128-10 relu/softmax, float32, 10,000 random
samples with teacher labels, batch 128, plain gradient descent) on a loopback
``LocalCluster`` of two single-threaded worker processes, once on one worker
(``fit_dask(workers=[w])``: the whole data set in one shard) and once on both
(half each), and reports per epoch (``sync_every=1``, one round per epoch):

- wall time of a round, median over rounds and repeats;
- speed-up: the one-worker round time over the two-worker one;
- parallel efficiency: task compute time / (workers x round wall time),
  summed over rounds;
- round overhead: round wall time minus its slowest task's compute time
  (sending parameters, scheduling, gathering, averaging);
- set-up: the rest of the ``fit`` (persisting, shards, warm-up).

For reference it also times ``DeepNet.fit`` on the same data in this process,
on one thread like a worker, and compares training accuracies (two workers
with and without ``scale_learning_rate``). Timings follow whatever else runs on the machine: quote the load average
printed with them. Not a test; nothing is asserted.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from .bench import WORKLOADS, make_data
from .network import DeepNet
from .threads import set_num_threads

WORKLOAD = "mnist-medium"


def _network(seed):
    w = WORKLOADS[WORKLOAD]
    return DeepNet(list(w.layer_dims), hidden_activation=w.hidden_activation, output_activation=w.output_activation,
                   seed=seed, dtype=w.dtypes[0])


def _fit_kwargs(epochs):
    w = WORKLOADS[WORKLOAD]
    return dict(epochs=epochs, learning_rate=w.learning_rate, batch_size=w.batch_size,
                optimizer="gd", verbose=0)


def _summary(runs, n_workers):
    """Per-round figures of repeated ``fit_dask`` runs on ``n_workers`` shards."""
    rounds = [r for _, history in runs for r in history.rounds]
    wall = [r["wall"] for r in rounds]
    compute = [sum(r["compute"]) for r in rounds]
    overhead = [r["wall"] - max(r["compute"]) for r in rounds]
    setup = [total - sum(history.time) for total, history in runs]
    return {
        "workers": n_workers,
        "round_wall_s": statistics.median(wall),
        "round_compute_s": statistics.median(max(r["compute"]) for r in rounds),
        "round_overhead_s": statistics.median(overhead),
        "efficiency": sum(compute) / (n_workers * sum(wall)),
        "setup_s": statistics.median(setup),
        "shard_rows": [s["rows"] for s in runs[-1][1].shards],
    }


def run(n_samples=10_000, epochs=5, repeat=3, seed=0):
    """Run the benchmark; returns a dict of results (see the module docstring)."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from .distributed import fit_dask

    w = WORKLOADS[WORKLOAD]
    X, y = make_data(WORKLOAD, n_samples=n_samples, seed=seed)
    # Compile (or load) the float32 kernels here first so that the workers
    # load them from the shared cache instead of compiling side by side.
    warm = _network(seed)
    warm.fit(X[:256], y[:256], **_fit_kwargs(1))
    start = time.perf_counter()
    serial = []
    set_num_threads(1)
    try:
        for _ in range(repeat):
            net = _network(seed)
            serial.extend(net.fit(X, y, **_fit_kwargs(epochs)).time)
    finally:
        set_num_threads(None)
    accuracy_in_memory = net.score(X, y)
    results = {"workload": WORKLOAD, "layer_dims": list(w.layer_dims), "dtype": w.dtypes[0],
               "batch_size": w.batch_size, "n_samples": n_samples, "epochs": epochs,
               "repeat": repeat, "load_average": os.getloadavg(),
               "in_memory_epoch_s": statistics.median(serial)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        # Scattered rather than embedded in the graph: the chunks go straight
        # to the workers, round robin.
        bounds = np.linspace(0, n_samples, 9).astype(int)
        rows = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        fx = client.scatter([X[a:b] for a, b in rows])
        fy = client.scatter([y[a:b] for a, b in rows])
        Xd = da.concatenate([da.from_delayed(f, (b - a, X.shape[1]), X.dtype)
                             for f, (a, b) in zip(fx, rows)])
        yd = da.concatenate([da.from_delayed(f, (b - a,), y.dtype) for f, (a, b) in zip(fy, rows)])
        first = sorted(client.nthreads())[0]
        configs = {1: [first], 2: None}
        for workers in configs.values():  # warm-up: cache loads, first transfers
            fit_dask(_network(seed), Xd, yd, workers=workers, **_fit_kwargs(1))
        runs = {n: [] for n in configs}
        for _ in range(repeat):  # interleaved, so that outside load hits both alike
            for n, workers in configs.items():
                t0 = time.perf_counter()
                history = fit_dask(_network(seed), Xd, yd, workers=workers,
                                   **_fit_kwargs(epochs))
                runs[n].append((time.perf_counter() - t0, history))
        for n in configs:
            results[f"workers_{n}"] = _summary(runs[n], n)
        for scale in (False, True):
            net = _network(seed)
            fit_dask(net, Xd, yd, scale_learning_rate=scale, **_fit_kwargs(epochs))
            results[f"accuracy_2_workers{'_scaled_lr' if scale else ''}"] = net.score(X, y)
    results["accuracy_in_memory"] = accuracy_in_memory
    one, two = results["workers_1"], results["workers_2"]
    results["speedup"] = one["round_wall_s"] / two["round_wall_s"]
    results["total_s"] = time.perf_counter() - start
    return results


def format_results(r):
    one, two = r["workers_1"], r["workers_2"]
    dims = "-".join(map(str, r["layer_dims"]))
    lines = [
        f"{r['workload']}: {dims} {r['dtype']}, {r['n_samples']} samples, batch {r['batch_size']}, "
        f"{r['epochs']} epochs x {r['repeat']} repeats, load average at start "
        f"{r['load_average'][0]:.2f}",
        f"{'':<22}{'1 worker':>12}{'2 workers':>12}",
        f"{'round wall (ms)':<22}{one['round_wall_s'] * 1e3:>12.1f}{two['round_wall_s'] * 1e3:>12.1f}",
        f"{'slowest task (ms)':<22}{one['round_compute_s'] * 1e3:>12.1f}"
        f"{two['round_compute_s'] * 1e3:>12.1f}",
        f"{'round overhead (ms)':<22}{one['round_overhead_s'] * 1e3:>12.1f}"
        f"{two['round_overhead_s'] * 1e3:>12.1f}",
        f"{'parallel efficiency':<22}{one['efficiency']:>12.2f}{two['efficiency']:>12.2f}",
        f"{'set-up (s)':<22}{one['setup_s']:>12.2f}{two['setup_s']:>12.2f}",
        f"speed-up, 2 workers over 1: {r['speedup']:.2f}x "
        f"(in-memory DeepNet.fit, one thread: {r['in_memory_epoch_s'] * 1e3:.1f} ms/epoch)",
        f"training accuracy after {r['epochs']} epochs: in memory {r['accuracy_in_memory']:.3f}, "
        f"2 workers {r['accuracy_2_workers']:.3f}, with scale_learning_rate "
        f"{r['accuracy_2_workers_scaled_lr']:.3f}",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepnet_fast.bench_dask",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=5, help="epochs (rounds) per fit")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    args = parser.parse_args(argv)
    for flag, low in (("samples", 2), ("epochs", 1), ("repeat", 1), ("seed", 0)):
        if getattr(args, flag) < low:
            parser.error(f"--{flag}: expected an integer >= {low}; got {getattr(args, flag)}")
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        print('bench_dask needs dask and distributed: pip install "deepnet-fast[dask]"',
              file=sys.stderr)
        return 2
    results = run(args.samples, args.epochs, args.repeat, args.seed)
    print(format_results(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
