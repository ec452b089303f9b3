"""Compiling every kernel ahead of time: ``deepnet-fast compile``.

For Docker images and cluster workers: tiny fits and predictions take every
kernel a user's fit or prediction can reach (both dtypes, one-thread and
threaded, the gradient check's) through the public API, so that each is
compiled into Numba's cache, or loaded from it, with the types a real fit
gives it. This module sits above :mod:`deepnet_fast.network`, which the
fits need; :mod:`deepnet_fast.compilation`, below it, keeps the decisions a
fit makes about compiling (see there).
"""

import concurrent.futures
import concurrent.futures.process
import io
import multiprocessing
import os
import sys
import time

import numba
import numpy as np

from . import compilation, threads
from ._validation import check_choice, check_dtype
from .gradcheck import gradient_check
from .network import DeepNet


def _steps(dtype, threaded):
    """Tiny fits and predictions that take each kernel a user's fit can reach:
    (kind, threads, function) triples, to run in order."""
    X = np.random.default_rng(0).standard_normal((64, 4)).astype(dtype)
    y = X[:, 0] > 0
    net = DeepNet([4, 3, 1], seed=0, dtype=dtype)
    steps = [("training leaves", 1, lambda: compilation.compile_training_leaves(dtype))]
    for n in ((1, 2) if threaded and numba.config.NUMBA_NUM_THREADS > 1 else (1,)):
        prefix = "threaded " if n > 1 else ""
        steps.append((prefix + "training", n,
                      lambda: net.fit(X, y, epochs=1, batch_size=16, verbose=0)))
        steps.append((prefix + "prediction", n, lambda: net.predict_proba(X)))
    if dtype == "float64":     # gradient_check runs in float64 only
        steps.append(("gradient", 1, lambda: gradient_check(net, X[:8], y[:8])))
    return steps


def compile_ahead(dtypes=compilation.DTYPES, threaded=True, out=None, kinds=None):
    """Compile every kernel of the compiled backend into Numba's cache.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}
    threaded : bool
        Also the threaded kernels (what large networks use on several cores;
        skipped where Numba has a single thread).
    out : file, default sys.stdout
        Receives one line per kernel: compiled, or loaded from the cache.
    kinds : sequence of str, optional
        Only these kernels (keys of
        :data:`~deepnet_fast.compilation.ESTIMATE_SECONDS`, or ``"gradient"``);
        default all.

    With two dtypes or more, the last ones compile in a helper process on
    another core meanwhile (where helpers pay:
    :func:`~deepnet_fast.compilation.helpers_pay`), and their lines follow the
    first one's.

    Returns
    -------
    list of (dtype, kind, seconds, compiled)
    """
    out = sys.stdout if out is None else out
    dtypes, kinds = _selection(dtypes, threaded, kinds)
    where = compilation.cache_directory()
    if where and os.path.basename(where).startswith("kernels_"):
        where = os.path.dirname(where)     # Numba's per-folder subdirectory
    target = (f"the Numba cache in {where}" if where and compilation.cache_writable()
              else "this process only (no writable cache)")
    print(f"Compiling deepnet_fast's kernels into {target}:", file=out, flush=True)
    if threaded and numba.config.NUMBA_NUM_THREADS < 2:
        print("  threaded kernels skipped: Numba has one thread here "
              "(NUMBA_NUM_THREADS=2 compiles them anyway)", file=out, flush=True)
    start = time.perf_counter()
    helper = None
    if len(dtypes) > 1 and compilation.helpers_pay():
        # The dtypes share no compiled function: the last ones compile in a
        # helper process, on the other core, meanwhile.
        helper = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"))
        rest = helper.submit(_compile_quietly, dtypes[1:], threaded, kinds)
        dtypes, later = dtypes[:1], dtypes[1:]
    try:
        with compilation.ahead_of_time():
            done = _compile_dtypes(dtypes, threaded, kinds, out)
        if helper is not None:
            try:
                more, lines = rest.result()
            except concurrent.futures.process.BrokenProcessPool:
                # The helper could not start: a script that calls this without
                # an `if __name__ == "__main__":` guard re-runs itself in the
                # spawned process. Compile the rest here instead.
                print("  (the helper process could not start, see its error above: "
                      "the rest compiles here)", file=out, flush=True)
                with compilation.ahead_of_time():
                    more, lines = _compile_dtypes(later, threaded, kinds, out), ""
            print(lines, end="", file=out, flush=True)
            done += more
    finally:
        if helper is not None:
            helper.shutdown(cancel_futures=True)
    n = sum(1 for d in done if d[3])
    print(f"Done in {time.perf_counter() - start:.0f} s: {n} kernel{'s' if n != 1 else ''} "
          f"compiled, {len(done) - n} already cached.", file=out, flush=True)
    return done


def _selection(dtypes, threaded, kinds):
    """``(dtype names, kinds or None)`` checked: known names, and at least one
    kernel to compile (a kind that no dtype has, such as ``"gradient"`` in
    float32 only, or a threaded one with ``threaded=False``, compiles nothing)."""
    if isinstance(dtypes, (str, np.dtype, type)) or not hasattr(dtypes, "__iter__"):
        raise TypeError(f"dtypes must be a list of dtype names, such as ['float64']; got "
                        f"{dtypes!r}")
    dtypes = [check_dtype(dtype, "dtypes").name for dtype in dtypes]
    if not dtypes:
        raise ValueError("dtypes must name at least one dtype")
    if kinds is not None:
        if isinstance(kinds, str) or not hasattr(kinds, "__iter__"):
            raise TypeError(f"kinds must be a list of kernel kinds from "
                            f"{list(compilation.KINDS)}; got {kinds!r}")
        kinds = list(kinds)
        for kind in kinds:
            check_choice(kind, "kinds", compilation.KINDS)
        reachable = {kind for dtype in dtypes for kind, _, _ in _steps(dtype, threaded)}
        if not reachable.intersection(kinds):
            raise ValueError(f"kinds {kinds} select no kernel of dtypes {dtypes} (threaded="
                             f"{threaded}; gradient is float64 only; threaded kernels need "
                             "Numba threads)")
    return dtypes, kinds


def _compile_dtypes(dtypes, threaded, kinds, out):
    """The kernels of ``dtypes`` (:func:`compile_ahead`'s loop): one line each
    on ``out``, and the list it returns."""
    done = []
    previous = threads.get_num_threads()
    try:
        for dtype in dtypes:
            with compilation.helper_lock(dtype):
                for kind, n, run in _steps(dtype, threaded):
                    if kinds is not None and kind not in kinds:
                        continue
                    threads.set_num_threads(n)
                    before = compilation.compile_count(kind)
                    t0 = time.perf_counter()
                    run()
                    seconds = time.perf_counter() - t0
                    compiled = compilation.compile_count(kind) > before
                    done.append((dtype, kind, seconds, compiled))
                    state = "compiled" if compiled else "loaded from the cache"
                    print(f"  {dtype}  {kind:<20} {state} in {seconds:.1f} s", file=out,
                          flush=True)
    finally:
        threads.set_num_threads(previous)
    return done


def _compile_quietly(dtypes, threaded, kinds):
    """:func:`_compile_dtypes` in a helper process: its list and its lines."""
    out = io.StringIO()
    with compilation.ahead_of_time():
        return _compile_dtypes(dtypes, threaded, kinds, out), out.getvalue()

