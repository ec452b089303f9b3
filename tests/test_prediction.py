"""Prediction's fast path: rows that are already a C-contiguous array of the
network's dtype skip the general checks and Numba's dispatcher; every other
input takes the general path. Both must give the same probabilities and
refuse the same bad input."""

import time

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import engines, threads
from deepnet_fast.inputs import check_rows
from deepnet_fast.kernels import training as ktrain

from .helpers import DTYPES


def _net(dtype, backend="compiled", dims=(6, 5, 3)):
    return dn.DeepNet(list(dims), "tanh", "softmax", seed=0, dtype=dtype, backend=backend)


def _rows(dtype, n=7, n0=6, seed=0):
    # float32 values: the same rows in either dtype.
    rows = np.random.default_rng(seed).standard_normal((n, n0), dtype=np.float32)
    return rows.astype(dtype)


def _variants(X):
    """The same values as inputs that take the general path."""
    readonly = X.copy()
    readonly.flags.writeable = False
    other = np.float32 if X.dtype == np.float64 else np.float64
    return {"fortran": np.asfortranarray(X), "strided": np.repeat(X, 2, axis=0)[::2],
            "list": X.tolist(), "readonly": readonly, "other dtype": X.astype(other)}


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ready_rows_predict_as_every_other_form_of_the_same_rows(dtype, backend):
    net = _net(dtype, backend)
    X = _rows(dtype)
    fast = net.predict_proba(X)
    assert fast.dtype == np.dtype(dtype) and fast.flags.c_contiguous
    for name, other in _variants(X).items():
        np.testing.assert_array_equal(net.predict_proba(other), fast, err_msg=name)
    np.testing.assert_array_equal(net.predict(X), np.argmax(fast, axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row_and_many_rows_agree_with_the_reference(dtype):
    from .helpers import assert_close
    X = _rows(dtype, n=33)
    compiled, reference = _net(dtype), _net(dtype, "reference")
    for rows in (X[:1], X[:32], X):
        assert_close(compiled.predict_proba(rows), reference.predict_proba(rows), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ready_rows_are_returned_as_they_are(dtype):
    X = _rows(dtype)
    assert check_rows(X, 6, np.dtype(dtype)) is X


def test_only_rows_that_are_not_ready_take_the_general_checks(monkeypatch):
    from deepnet_fast import inputs

    def general(*args, **kwargs):
        raise AssertionError("the general path")

    monkeypatch.setattr(inputs, "as_float_array", general)
    net = _net(np.float32)
    X = _rows(np.float32)
    net.predict_proba(X)
    net.predict_proba(X[:1])
    for other in _variants(X).values():
        with pytest.raises(AssertionError, match="the general path"):
            net.predict_proba(other)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (3, 2), (6, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_path_refuses_nan_and_infinity_anywhere(dtype, where, value):
    net = _net(dtype)
    X = _rows(dtype)
    X[where] = value
    for method in (net.predict_proba, net.predict, lambda a: check_rows(a, 6, np.dtype(dtype))):
        with pytest.raises(ValueError, match="X must not contain NaN or infinity"):
            method(X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_path_takes_values_near_the_largest_finite(dtype):
    # Finite values whose sum or square would overflow are still finite.
    big = np.finfo(dtype).max
    X = np.full((2, 6), big, dtype=dtype)
    X[1] = -big
    assert check_rows(X, 6, np.dtype(dtype)) is X


@pytest.mark.parametrize("X,exc,message", [
    (np.zeros((3, 5), np.float32), ValueError, r"X must have 6 features \(columns\)"),
    (np.zeros((0, 6), np.float32), ValueError, "X must contain at least one sample"),
    (np.zeros(6, np.float32), ValueError, "X must be a 2-D array"),
    (np.zeros((2, 6), np.complex64), TypeError, "X must be real-valued"),
    (np.ma.masked_array(np.zeros((2, 6), np.float32)), TypeError, "not a masked array"),
])
def test_rows_that_are_almost_ready_get_the_general_errors(X, exc, message):
    with pytest.raises(exc, match=message):
        _net(np.float32).predict_proba(X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_kernel_entry_equals_the_dispatcher(dtype):
    net = _net(dtype, dims=(6, 9, 4, 3))
    arch, theta = net.architecture, net.training_state.theta
    kernel = engines._DenseKernel(ktrain.predict_output)
    unaligned = np.frombuffer(b"\0" + _rows(dtype).tobytes(), dtype=dtype, offset=1)
    unaligned = unaligned.reshape(7, 6)
    assert not unaligned.flags.aligned
    readonly = _rows(dtype, seed=2)
    readonly.flags.writeable = False
    for X in (_rows(dtype, n=1), _rows(dtype, n=32, seed=1), readonly, unaligned):
        for _ in range(2):    # the first call records the entry, the second uses it
            got = kernel(X, theta, arch.kernel_network, engines.PREDICT_CHUNK)
            want = ktrain.predict_output(X, theta, arch.kernel_network, engines.PREDICT_CHUNK)
            np.testing.assert_array_equal(got, want)
    assert len(kernel._entries) == 4        # each a Numba type of its own
    assert all(entry is not ktrain.predict_output for entry in kernel._entries.values())


@pytest.mark.parametrize("macs", [1, threads.SINGLE_THREAD_BELOW - 1, threads.SINGLE_THREAD_BELOW,
                                  10 * threads.SINGLE_THREAD_BELOW])
@pytest.mark.parametrize("requested", [None, 1, 2])
def test_runs_single_is_fit_threads_single(macs, requested, monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda: None)    # the machine's load aside
    previous = dn.get_num_threads()
    try:
        dn.set_num_threads(requested)
        assert threads.runs_single(macs) == threads.fit_threads([macs, 1], 1).single
    finally:
        dn.set_num_threads(previous)


def test_latency_benchmark_predictors_agree():
    from deepnet_fast import bench_latency as bl
    X = bl.latency_rows("digits-small", 3)
    assert X.shape == (3, 64) and X.dtype == np.float32 and X.flags.c_contiguous
    want = bl.make_network("digits-small", backend="reference").predict_proba(X)
    for name in ["compiled", *bl.PEERS, *bl.EXTRA]:
        if bl.implementation_unavailable(name):
            continue
        got = bl.make_predictor(name, "digits-small")(X)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=name)
    call = bl.bare_kernel("digits-small", X)
    np.testing.assert_allclose(call(), want, rtol=1e-4, atol=1e-6)
    X[...] = 0          # the kernel reads the rows as they are at the call
    np.testing.assert_allclose(call(), bl.make_predictor("compiled", "digits-small")(X),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad", [
    np.zeros((2, 64), np.float64),                              # another dtype
    np.zeros((2, 63), np.float32),                              # other features
    np.zeros(64, np.float32),                                   # one dimension
    np.zeros((2, 2, 64), np.float32),
    np.zeros((64, 2), np.float32).T,                            # not C-contiguous
    np.zeros((0, 64), np.float32),
    [[0.0] * 64],
])
def test_the_bare_latency_kernel_refuses_rows_it_was_not_compiled_for(bad):
    from deepnet_fast import bench_latency as bl
    with pytest.raises(ValueError, match="X must hold C-contiguous, writable float32 rows "
                                         "of 64 features"):
        bl.bare_kernel("digits-small", bad)


def test_the_bare_latency_kernel_keeps_the_rows_it_checked():
    from deepnet_fast import bench_latency as bl
    X = bl.latency_rows("digits-small", 2)
    call = bl.bare_kernel("digits-small", X)
    want = call()
    X.shape = (4, 32)            # reshaped in place: the kernel keeps its own view
    np.testing.assert_array_equal(call(), want)
    with pytest.raises(ValueError, match="implementation must be one of"):
        bl.make_predictor("kernel", "digits-small")


@pytest.mark.parametrize("argv,flag", [(["--rounds", "0"], "--rounds"),
                                       (["--samples", "1", "-1"], "--samples")])
def test_the_latency_script_refuses_counts_below_one(argv, flag, capsys):
    from deepnet_fast import bench_latency as bl
    with pytest.raises(SystemExit) as exit_:
        bl.main(argv)
    assert exit_.value.code == 2
    assert f"{flag}: expected" in capsys.readouterr().err


def test_latency_report_from_a_measurement():
    from deepnet_fast import bench_latency as bl
    implementations = ["compiled"] + (["onnxruntime"]
                                      if not bl.implementation_unavailable("onnxruntime") else [])
    result = bl.measure(implementations, ["digits-small"], [1], rounds=2, pause=0,
                        gaps=(0.0, 0.001))
    assert not result["errors"], result["errors"]
    for name in implementations:
        for gap in (0.0, 0.001):
            assert len(result["seconds"][(name, "digits-small", 1, gap)]) == 2
    assert len(result["seconds"][("kernel", "digits-small", 1, 0.0)]) == 2
    assert ("kernel", "digits-small", 1, 0.001) not in result["seconds"]    # back to back only
    lines = bl.format_report(result).splitlines()
    assert lines[2].split()[:3] == ["digits-small", "1", "back-to-back"]
    assert lines[3].split()[:5] == ["digits-small", "1", "1", "ms", "apart"]
    assert lines[3].split()[-2 if "onnxruntime" in implementations else -1] == "-"   # no overhead
    if "onnxruntime" in implementations:
        assert bl.median_ratio(result, "compiled", "onnxruntime", "digits-small", 1) > 0
        assert bl.median_ratio(result, "compiled", "onnxruntime", "digits-small", 1, 0.001) > 0


def test_paced_calls_wait_between_calls():
    from deepnet_fast import bench_latency as bl
    stamps = []
    seconds = bl.seconds_per_paced_call(lambda: stamps.append(time.perf_counter()), gap=0.002,
                                        calls=4)
    assert len(stamps) == 4 and 0 <= seconds < 0.002
    assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 0.002
