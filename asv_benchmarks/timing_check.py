"""Do the kernel benchmarks report what timeit reports?

    python timing_check.py [--rounds 5]

For a few kernels (float32, 128x256) it runs, alternating in this process so
that the machine's drift hits every column alike:

- ``asv``: the benchmark as asv's runner runs it (``asv_runner``'s discovery,
  setup, run: the number asv stores);
- ``timeit``: ``timeit.Timer(call).autorange()`` calls per sample, median of
  21 samples, per call;
- ``old``, ``old --quick``: the definition before issue 20 (a ``time_*``
  method, ``number = 0`` meant as "as many calls as fill 10 ms", a ``setup``)
  run by asv-runner's own ``TimeBenchmark``, normally and with the settings
  ``asv run --quick`` passes (one sample of one call): asv-runner 0.3 takes
  one call per sample whenever a class has ``setup``.

and prints the medians over ``--rounds`` rounds in microseconds. Needs asv
(``pip install ".[bench]"``).
"""

import argparse
import os
import statistics
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [("kernel", "tanh"), ("compiled", "tanh"), ("kernel", "relu"), ("compiled", "sigmoid")]
SHAPE = "128x256"


def _asv_benchmark(benchmarks, implementation, activation):
    bench = benchmarks["bench_kernels.ActivationKernels.track_forward"]
    bench.set_param_idx(_index(bench._params, (implementation, activation, SHAPE)))
    return bench


def _asv_value(bench):
    bench.do_setup()
    try:
        return bench.do_run()
    finally:
        bench.do_teardown()


def _timeit_value(call):
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return statistics.median(timer.repeat(repeat=21, number=number)) / number


class _QuickAttrs:
    # What ``asv run --quick`` sets on every benchmark (asv/runner.py).
    number = 1
    repeat = 1
    warmup_time = 0
    rounds = 1


def _old_definition():
    from benchmarks.bench_kernels import ActivationKernels

    class OldActivationKernels(ActivationKernels):
        number = 0
        sample_time = 0.01
        repeat = (10, 50, 2.0)
        warmup_time = 0.05

        def time_forward(self, implementation, activation, shape):
            self.forward()

    return OldActivationKernels


def _old_value(old_class, params, quick):
    from asv_runner.benchmarks.time import TimeBenchmark

    instance = old_class()
    func = instance.time_forward
    sources = [func, instance, sys.modules[__name__]]
    if quick:
        sources.insert(0, _QuickAttrs)
    bench = TimeBenchmark("old.time_forward", func, sources)
    bench.set_param_idx(_index(bench._params, params))
    bench.do_setup()
    try:
        return statistics.median(bench.do_run()["samples"])
    finally:
        bench.do_teardown()


def _index(param_lists, params):
    combos = [(i, a, s) for i in param_lists[0] for a in param_lists[1] for s in param_lists[2]]
    return combos.index(tuple(params))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, HERE)
    from asv_runner.discovery import disc_benchmarks

    benchmarks = {b.name: b for b in disc_benchmarks(os.path.join(HERE, "benchmarks"))
                  if "ActivationKernels" in b.name}
    from benchmarks.bench_kernels import ActivationKernels

    old_class = _old_definition()
    names = ["asv", "timeit", "old", "old --quick"]
    print(f"{'implementation':<15}{'activation':<12}" + "".join(f"{n:>13}" for n in names)
          + "   (us per call, median of rounds)")
    for implementation, activation in CASES:
        bench = _asv_benchmark(benchmarks, implementation, activation)
        plain = ActivationKernels()
        params = (implementation, activation, SHAPE)
        plain.setup(*params)
        columns = {name: [] for name in names}
        for _ in range(args.rounds):
            columns["asv"].append(_asv_value(bench))
            columns["timeit"].append(_timeit_value(plain.forward))
            columns["old"].append(_old_value(old_class, params, quick=False))
            columns["old --quick"].append(_old_value(old_class, params, quick=True))
        print(f"{implementation:<15}{activation:<12}"
              + "".join(f"{statistics.median(columns[n]) * 1e6:>13.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
