"""Prediction latency: ``predict_proba`` of one sample and of 32, against ONNX
Runtime running the exported model and PyTorch under ``inference_mode``.

A service predicts a few rows at a time, so what it waits for is a call's
fixed cost (validation, conversion, dispatch, allocation), not FLOPs. Every
implementation computes the same float32 probabilities of the same network
(the workloads of :mod:`deepnet_fast.bench`, as initialised from seed 0:
latency does not depend on the weights' values) on the same rows:

- ``compiled``: :meth:`DeepNet.predict_proba` on the compiled backend;
- ``onnxruntime``: an ``InferenceSession`` (CPU provider, default options:
  its threads on every core) of :meth:`DeepNet.to_onnx`'s graph pruned to
  its ``probabilities`` output, called as ``session.run([name], {input: X})[0]``;
  ``onnxruntime-1thread`` the same on one thread (``intra_op_num_threads=1``),
  as our small predictions run (the script's table only, not asv's);
- ``torch``: ``nn.Sequential`` of ``Linear`` + activation holding the same
  weights, called under ``torch.inference_mode()`` on ``torch.from_numpy(X)``,
  returning ``.numpy()``.

Every case runs at two paces: ``back-to-back`` calls (a batch job, a
benchmark loop), and calls ``GAP_SECONDS`` apart, as a service meets its
requests. The second is the one a user waits for: between its calls a thread
pool goes to sleep and the weights leave the caches, so it costs up to tens
of times more, and the ranking of implementations can change (a second
thread that pays in a stream of calls costs its wake-up after a pause).

Each implementation runs in a process of its own (``spawn``), on its
library's default threads; the parent asks them in turn for one measurement
of each case, round after round, with a pause before each measurement (thread
pools spin after their last task, see :mod:`deepnet_fast.bench`), so that the
load of other processes falls on every implementation alike. A measurement
is the median of a few timeit samples of back-to-back calls (garbage
collection off), or of ``PACED_CALLS`` single calls each ``GAP_SECONDS``
after the last; the report gives the median over rounds, and ratios as the
median over rounds of the two implementations' times in that round.

``overhead`` (back-to-back only) is the compiled ``predict_proba`` time minus that of the bare
prediction kernel (the compiled entry point of
:func:`deepnet_fast.kernels.training.predict_output`, past Numba's
dispatcher, and the transposed copy; it wakes the pair worker of one-row
predictions, :mod:`deepnet_fast.kernels.pair`, as ``predict_proba`` does) on
the same rows in the same round: the Python layer's validation, conversion,
thread decision and dispatch.

Run ``python -m deepnet_fast.bench_latency`` (or, in ``asv_benchmarks/``,
``python -m benchmarks.bench_predict``); asv tracks the same numbers in
``benchmarks/bench_predict.py``. Measure with ``env -u OPENBLAS_CORETYPE
-u OPENBLAS_L2_SIZE`` (see DESIGN.md §5). Not a test; nothing is asserted
beyond the implementations agreeing on the probabilities.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
import timeit

import numpy as np

from .bench import WorkerProcess

__all__ = ["NETWORKS", "SAMPLES", "GAPS", "GAP_SECONDS", "IMPLEMENTATIONS", "PEERS", "EXTRA", "implementation_unavailable",
           "make_predictor", "bare_kernel", "latency_rows", "seconds_per_call", "seconds_per_paced_call", "measure", "format_report",
           "main"]

NETWORKS = ("digits-small", "mnist-medium")
SAMPLES = (1, 32)
# Seconds between the calls of a paced measurement: a service's requests.
GAP_SECONDS = 0.01
PACED_CALLS = 11
# The paces: 0.0 back to back, GAP_SECONDS apart.
GAPS = (0.0, GAP_SECONDS)
IMPLEMENTATIONS = ("compiled", "onnxruntime", "torch")
PEERS = ("onnxruntime", "torch")
# Also in the script's table: where the time goes, not a user's default.
EXTRA = ("onnxruntime-1thread",)
_ORDER = ("compiled", "onnxruntime", "onnxruntime-1thread", "torch")
DTYPE = "float32"
# The optional peers and the modules whose absence skips them.
_MODULES = {"onnxruntime": ("onnx", "onnxruntime"), "onnxruntime-1thread": ("onnx", "onnxruntime"),
            "torch": ("torch",)}
_PAUSE_SECONDS = 0.2


def implementation_unavailable(name):
    """Why ``name`` cannot run here (a library is not installed), or None;
    looks for the modules without importing them."""
    for module in _MODULES.get(name, ()):
        if importlib.util.find_spec(module) is None:
            return f"{name} is not installed (No module named {module!r})"
    return None


def make_network(workload, backend="compiled"):
    """The workload's network, float32, as initialised from seed 0."""
    from .bench import WORKLOADS
    from .network import DeepNet
    w = WORKLOADS[workload]
    return DeepNet(list(w.layer_dims), w.hidden_activation, w.output_activation, seed=0,
                   dtype=DTYPE, backend=backend)


def latency_rows(workload, n_samples):
    """The first ``n_samples`` rows of the workload's data, C-contiguous float32."""
    from .bench import make_data
    X, _ = make_data(workload, DTYPE, n_samples=max(max(SAMPLES), n_samples))
    return np.ascontiguousarray(X[:n_samples])


def _probabilities_only(model):
    """``model`` without the outputs other than the probabilities (the
    ``label`` an exported classifier adds) and the nodes only they need."""
    import onnx
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    keep = [o for o in graph.output if o.name in ("probabilities", "predictions")]
    needed = {o.name for o in keep}
    nodes = []
    for node in reversed(list(graph.node)):
        if needed.intersection(node.output):
            nodes.append(node)
            needed.update(node.input)
    del graph.output[:]
    graph.output.extend(keep)
    del graph.node[:]
    graph.node.extend(reversed(nodes))
    return model


def _torch_model(net):
    import torch
    from torch import nn

    from .bench import TORCH_ACTIVATIONS
    layers = []
    params = net.parameters
    for l in range(1, net.n_layers + 1):
        linear = nn.Linear(net.layer_dims[l - 1], net.layer_dims[l])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(params[f"W{l}"]))
            linear.bias.copy_(torch.from_numpy(params[f"b{l}"][:, 0]))
        layers.append(linear)
        activation = net.activations[l - 1]
        if activation == "softmax":
            layers.append(nn.Softmax(dim=1))
        elif activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif activation != "identity":
            layers.append(getattr(nn, TORCH_ACTIVATIONS[activation])())
    return nn.Sequential(*layers).to(torch.float32).eval()


def bare_kernel(workload, X):
    """``call() -> probabilities (n_samples, nL)`` of ``X``: the compiled code
    under ``predict_proba``, past Numba's dispatcher, for the overhead (the
    same result, transposed into rows).

    ``X`` is checked here, once, and kept as a view of its own: the entry
    point checks nothing, and a check in ``call`` would be timed as the
    kernel's.

    Parameters
    ----------
    workload : str
        One of :data:`NETWORKS` (or another workload of :mod:`deepnet_fast.bench`).
    X : ndarray of shape (n_samples, n0)
        C-contiguous, writable, aligned float32 rows, such as :func:`latency_rows` gives.

    Returns
    -------
    callable
    """
    from numba import typeof

    from .engines import PREDICT_CHUNK
    from .kernels import pair
    from .kernels.training import predict_output
    from .threads import pairs_one_row
    net = make_network(workload)
    n0 = net.layer_dims[0]
    if not (isinstance(X, np.ndarray) and X.dtype == DTYPE and X.ndim == 2
            and X.shape[0] > 0 and X.shape[1] == n0 and X.flags.c_contiguous
            and X.flags.writeable and X.flags.aligned):
        raise ValueError(f"X must hold C-contiguous, writable {DTYPE} rows of {n0} features "
                         f"(as latency_rows gives); got {type(X).__name__} "
                         f"{getattr(X, 'dtype', '')} {getattr(X, 'shape', '')}")
    X = X.view(np.ndarray)      # ours: the caller cannot reshape it in place
    theta, kernel_net = net.training_state.theta, net.architecture.kernel_network
    args = (X, theta, kernel_net, PREDICT_CHUNK)
    predict_output(*args)
    entry = predict_output.get_overload(tuple(typeof(a) for a in args))
    # predict_proba wakes the pair worker for a stream of one-row calls
    # (kernels.pair): so does the bare kernel, to time the same work.
    wakes = X.shape[0] == 1 and pairs_one_row(n0 * net.layer_dims[1])

    def call():
        if wakes:
            pair.wake()
        return np.ascontiguousarray(entry(X, theta, kernel_net, PREDICT_CHUNK).T)
    return call


def make_predictor(implementation, workload):
    """``predict(X) -> probabilities (n_samples, nL)`` of ``implementation``
    for the workload's network (see the module docstring)."""
    net = make_network(workload)
    if implementation == "compiled":
        return net.predict_proba
    if implementation in ("onnxruntime", "onnxruntime-1thread"):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if implementation == "onnxruntime-1thread":
            options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(_probabilities_only(net.to_onnx()).SerializeToString(),
                                       options, providers=["CPUExecutionProvider"])
        names = [session.get_outputs()[0].name]
        feed = session.get_inputs()[0].name
        return lambda X: session.run(names, {feed: X})[0]
    if implementation == "torch":
        import torch
        model = _torch_model(net)

        def predict(X):
            with torch.inference_mode():
                return model(torch.from_numpy(X)).numpy()
        return predict
    raise ValueError(f"implementation must be one of {_ORDER}; got {implementation!r}")


def seconds_per_call(fn, sample_time=0.002, samples=7, number=None):
    """``(seconds per call, number)``: the median of ``samples`` timeit
    samples of ``number`` back-to-back calls (calibrated to last about
    ``sample_time`` when not given), each divided by ``number``."""
    timer = timeit.Timer(fn)
    if number is None:
        number = 1
        while True:
            elapsed = timer.timeit(number)
            if elapsed >= sample_time:
                break
            number = max(number + 1, int(number * min(10.0, 1.2 * sample_time / max(elapsed,
                                                                                     1e-9))))
    return statistics.median(timer.repeat(repeat=samples, number=number)) / number, number


def seconds_per_paced_call(fn, gap=GAP_SECONDS, calls=PACED_CALLS):
    """The median of ``calls`` single calls of ``fn``, each ``gap`` seconds
    after the previous one ended."""
    times = []
    for _ in range(calls):
        time.sleep(gap)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cases(networks, samples, gaps=GAPS):
    return [(w, n, g) for w in networks for n in samples for g in gaps]


def _on(predict, X):
    return lambda: predict(X)


def _no_arguments(call):
    return lambda: call()


def _worker(conn, implementation, networks, samples):
    """One implementation's predictors in a process of their own: check them
    against the reference backend, calibrate, report ``("ready",)``, then
    answer every case ``(network, n, gap)`` with ``("seconds", {label: s})``
    until None (the compiled implementation also times the bare kernel,
    back to back)."""
    try:
        labels = [implementation] + (["kernel"] if implementation == "compiled" else [])
        timed = {}
        for workload, n, _ in _cases(networks, samples, (0.0,)):
            X = latency_rows(workload, n)
            expected = make_network(workload, backend="reference").predict_proba(X)
            for label in labels:
                # Each timed through one lambda, as before bare_kernel existed.
                fn = (_no_arguments(bare_kernel(workload, X)) if label == "kernel"
                      else _on(make_predictor(label, workload), X))
                got = fn()
                if not np.allclose(got, expected, rtol=1e-4, atol=1e-6):
                    raise AssertionError(f"{label} on {workload} gives other probabilities "
                                         f"(largest difference {np.abs(got - expected).max():g})")
                _, number = seconds_per_call(fn)
                timed[(workload, n, label)] = (fn, number)
        conn.send(("ready",))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while (case := conn.recv()) is not None:
        workload, n, gap = case
        out = {}
        for label in labels if gap == 0 else labels[:1]:
            fn, number = timed[(workload, n, label)]
            out[label] = (seconds_per_call(fn, number=number)[0] if gap == 0
                          else seconds_per_paced_call(fn, gap))
        conn.send(("seconds", out))


def measure(implementations=IMPLEMENTATIONS, networks=NETWORKS, samples=SAMPLES, rounds=21,
            pause=_PAUSE_SECONDS, progress=None, gaps=GAPS):
    """Latency of every case, each implementation in its own process.

    Returns
    -------
    dict
        ``seconds[(implementation, network, n, gap)]``: seconds per call of
        every round, ``gap`` 0.0 for back-to-back calls (``"kernel"`` too,
        back to back: the compiled implementation's bare kernel);
        ``skipped``: ``{implementation: reason}``; ``errors`` likewise.
    """
    result = {"seconds": {}, "skipped": {}, "errors": {}, "rounds": rounds}
    workers = {}
    try:
        for name in implementations:
            reason = implementation_unavailable(name)
            if reason:
                result["skipped"][name] = reason
                continue
            worker = WorkerProcess(_worker, name, tuple(networks), tuple(samples))   # one at a time
            reply = worker.ask(None)
            if reply[0] == "ready":
                workers[name] = worker
            else:
                result["errors"][name] = reply[1]
                worker.close()
        cases = _cases(networks, samples, gaps)
        for r in range(rounds):
            order = list(workers.items())
            if r % 2:
                order.reverse()
            for case in cases:
                for name, worker in order:
                    if name in result["errors"]:
                        continue
                    time.sleep(pause)
                    reply = worker.ask(case)
                    if reply[0] != "seconds":
                        result["errors"][name] = reply[1]
                        continue
                    for label, seconds in reply[1].items():
                        result["seconds"].setdefault((label, *case), []).append(seconds)
            if progress:
                progress(r + 1, rounds)
    finally:
        for worker in workers.values():
            worker.close()
    return result


def median_seconds(result, implementation, network, n, gap=0.0):
    """Median over rounds of one implementation's seconds per call, or None."""
    secs = result["seconds"].get((implementation, network, n, gap))
    return statistics.median(secs) if secs else None


def median_ratio(result, implementation, other, network, n, gap=0.0):
    """Median over rounds of ``implementation``'s time over ``other``'s in
    the same round, or None."""
    a = result["seconds"].get((implementation, network, n, gap))
    b = result["seconds"].get((other, network, n, gap))
    if not a or not b:
        return None
    return statistics.median(x / y for x, y in zip(a, b))


def format_report(result):
    """The table: microseconds per call, overhead, and our time over each peer's."""
    present = [i for i in _ORDER if any(k[0] == i for k in result["seconds"])]
    peers = [p for p in present if p != "compiled"]
    head = ["network", "rows", "pace", *[f"{i} us" for i in present], "overhead us",
            *[f"compiled/{p}" for p in peers]]
    rows = []
    cases = sorted({k[1:] for k in result["seconds"]},
                   key=lambda c: (NETWORKS.index(c[0]) if c[0] in NETWORKS else 99, c[1], c[2]))
    for network, n, gap in cases:
        row = [network, str(n), "back-to-back" if gap == 0 else f"{gap * 1e3:g} ms apart"]
        for i in present:
            s = median_seconds(result, i, network, n, gap)
            row.append("-" if s is None else f"{s * 1e6:.2f}")
        ours, kernel = (result["seconds"].get((k, network, n, gap)) for k in ("compiled", "kernel"))
        row.append(f"{statistics.median(a - b for a, b in zip(ours, kernel)) * 1e6:.2f}"
                   if ours and kernel else "-")
        for p in peers:
            ratio = median_ratio(result, "compiled", p, network, n, gap)
            row.append("-" if ratio is None else f"{ratio:.2f}")
        rows.append(row)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                       for i, (x, w) in enumerate(zip(line, widths))) for line in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    for name, reason in result["skipped"].items():
        lines.append(f"{name}: skipped: {reason}")
    for name, text in result["errors"].items():
        lines.append(f"{name}: failed: {text}")
    return "\n".join(lines)


def _versions():
    from importlib import metadata
    out = []
    for name in ("numpy", "numba", "onnxruntime", "torch"):
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m deepnet_fast.bench_latency",
        description="predict_proba latency of 1 and 32 samples: deepnet_fast's compiled "
                    "backend against ONNX Runtime (exported model) and PyTorch "
                    "(inference_mode), each in its own process.")
    parser.add_argument("--rounds", type=int, default=21,
                        help="measurements of every case per implementation (median reported)")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--samples", nargs="+", type=int, default=list(SAMPLES))
    parser.add_argument("--implementations", nargs="+", default=list(_ORDER), choices=_ORDER)
    parser.add_argument("--gaps-ms", nargs="+", type=float, default=[g * 1e3 for g in GAPS],
                        help="milliseconds between calls: 0 back to back, else single calls "
                             "that far apart (default: %(default)s)")
    args = parser.parse_args(argv)
    if any(g < 0 for g in args.gaps_ms):
        parser.error("--gaps-ms: expected milliseconds >= 0")
    if args.rounds < 1:
        parser.error(f"--rounds: expected an integer >= 1; got {args.rounds}")
    if any(n < 1 for n in args.samples):
        parser.error(f"--samples: expected row counts >= 1; got {args.samples}")

    from .bench import header_lines
    print(f"predict_proba latency, {DTYPE}, median of {args.rounds} rounds "
          "(microseconds per call; ratios below 1: deepnet_fast faster)")
    for line in header_lines(os.cpu_count() or 1):
        print(line)
    print(f"  {_versions()}; load average {os.getloadavg()[0]:.1f} before", flush=True)
    result = measure(args.implementations, args.networks, args.samples, rounds=args.rounds,
                     gaps=tuple(g / 1e3 for g in args.gaps_ms), progress=lambda r, n: print(f"  round {r}/{n}", end="\r", file=sys.stderr,
                                                 flush=True))
    print(f"  load average {os.getloadavg()[0]:.1f} after" + " " * 20)
    print(format_report(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
