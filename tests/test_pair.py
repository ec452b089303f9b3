"""The pair worker of one-row predictions (kernels.pair): the same results with
and without its help, whoever claims the blocks, from one Python thread or
several, and no worker where it must not run."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import threads
from deepnet_fast.kernels import pair

pytestmark = pytest.mark.skipif(not pair.X86, reason="the pair worker runs on x86 only")

DIMS = [300, 256, 16, 4]         # 76,800 multiply-adds in the first layer: shared


def _net(dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, DIMS[0])).astype(dtype)
    y = rng.integers(0, DIMS[-1], 64)
    net = dn.DeepNet(DIMS, "relu", "softmax", seed=seed, dtype=dtype)
    net.fit(X, y, epochs=2, batch_size=16, learning_rate=0.05, verbose=0)
    return net, X


def _spinning(timeout=30.0):
    """Wakes the worker until it spins (its first run compiles its loop)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pair.wake()
        pair.wake()                 # a second call in a row: a stream
        for _ in range(200):
            if pair.BOX[pair.STATE] == pair.SPINNING:
                return True
            time.sleep(0)
    return False


@pytest.fixture
def no_worker():
    pair.stop()
    yield
    pair.stop()


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_shared_products_match_the_calling_threads_own(dtype, rtol, no_worker):
    net, X = _net(dtype)
    pair.X86 = False                 # wake() does nothing: the caller alone
    try:
        alone = [net.predict_proba(X[i:i + 1]) for i in range(20)]
    finally:
        pair.X86 = True
    assert pair._worker["thread"] is None
    assert _spinning()
    before = pair.BOX[pair.WORD] >> 32
    shared = [net.predict_proba(X[i:i + 1]) for i in range(20)]
    assert (pair.BOX[pair.WORD] >> 32) > before          # jobs were published
    for a, s in zip(alone, shared):
        np.testing.assert_allclose(s, a, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(np.vstack(shared), net.predict_proba(X[:20]), rtol=rtol * 10,
                               atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_claim_order_gives_the_product(dtype, no_worker):
    # The kernel-level product: the caller alone (the worker asleep), and with
    # the worker claiming what it can, on a matrix with an odd number of rows.
    rng = np.random.default_rng(1)
    W = rng.standard_normal((257, 301)).astype(dtype)
    x = rng.standard_normal((301, 1)).astype(dtype)
    expect = W @ x
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    atol = rtol * np.abs(expect).max()
    y = np.full((257, 1), np.nan, dtype)
    pair.product(W, x, y)
    np.testing.assert_allclose(y, expect, rtol=rtol, atol=atol)
    alone = y.copy()
    assert _spinning()
    helped = pair.BOX[pair.HELPED]
    for k in range(5000):
        y[:] = np.nan
        pair.wake()
        pair.product(W, x, y)
        np.testing.assert_allclose(y, alone, rtol=rtol, atol=atol)
        if k >= 200 and pair.BOX[pair.HELPED] > helped:
            break
    assert pair.BOX[pair.HELPED] > helped          # the worker computed blocks
    assert pair.BOX[pair.OWNER] == 0


def test_small_or_strided_products_stay_on_the_caller(no_worker):
    assert _spinning()
    rng = np.random.default_rng(2)
    for W, x in [(rng.standard_normal((8, 16)), rng.standard_normal((16, 1))),      # small
                 (rng.standard_normal((600, 300)).T, rng.standard_normal((600, 1))),
                 (rng.standard_normal((300, 300)), rng.standard_normal((300, 2))[:, :1])]:
        before = pair.BOX[pair.WORD] >> 32
        y = np.empty((W.shape[0], 1))
        pair.wake()
        pair.product(W, x, y)
        assert (pair.BOX[pair.WORD] >> 32) == before
        np.testing.assert_allclose(y, W @ x, rtol=1e-12)


def test_operands_that_do_not_match_are_refused_not_shared(no_worker):
    assert _spinning()
    rng = np.random.default_rng(5)
    W = rng.standard_normal((300, 400))
    for x, y in [(np.ones((399, 1)), np.empty((300, 1))), (np.ones((400, 1)), np.empty((299, 1))),
                 (np.ones((400, 2)), np.empty((300, 1)))]:
        before = pair.BOX[pair.WORD] >> 32
        pair.wake()
        with pytest.raises(ValueError, match="shapes"):
            pair.product(W, x, y)
        assert (pair.BOX[pair.WORD] >> 32) == before
    assert pair.BOX[pair.OWNER] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_empty_operands_are_handled_without_reading_them(dtype, no_worker):
    # No element of an empty W is read (it once took 1 from W[0, 0]): no rows
    # is an empty product, no columns gemm's clear error.
    y = np.empty((0, 1), dtype)
    pair.product(np.empty((0, 5), dtype), np.ones((5, 1), dtype), y)
    assert y.shape == (0, 1)
    with pytest.raises(ValueError, match="gemm"):
        pair.product(np.empty((3, 0), dtype), np.empty((0, 1), dtype), np.empty((3, 1), dtype))


def test_predictions_from_several_python_threads_at_once(no_worker):
    net, X = _net(np.float64, seed=3)
    expect = net.predict_proba(X)
    assert _spinning()
    errors = []

    def work(k):
        try:
            for r in range(200):
                i = (k * 7 + r) % X.shape[0]
                np.testing.assert_allclose(net.predict_proba(X[i:i + 1])[0], expect[i],
                                           rtol=1e-12, atol=1e-15)
        except Exception as exc:      # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert pair.BOX[pair.OWNER] == 0


def test_no_worker_for_one_thread_small_layers_or_many_rows(monkeypatch, no_worker):
    assert threads.pairs_one_row(784 * 256) == (threads.usable_cores() > 1)
    assert not threads.pairs_one_row(64 * 64)
    monkeypatch.setattr(threads, "_requested", 1)
    assert not threads.pairs_one_row(784 * 256)
    net, X = _net(np.float32)
    net.predict_proba(X[:1])
    assert pair.BOX[pair.STATE] == pair.ASLEEP and pair._worker["thread"] is None
    monkeypatch.setattr(threads, "_requested", None)
    net.predict_proba(X[:2])                            # two rows: no worker either
    assert pair._worker["thread"] is None


def _child_predicts(net, X, queue):
    queue.put(net.predict_proba(X[:1]))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs fork")
def test_a_forked_child_predicts_without_the_parents_worker(no_worker):
    net, X = _net(np.float64, seed=4)
    assert _spinning()
    expect = net.predict_proba(X[:1])
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_predicts, args=(net, X, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_stop_ends_the_worker_and_wake_starts_another(no_worker):
    assert _spinning()
    thread = pair._worker["thread"]
    pair.stop()
    assert not thread.is_alive() and pair.BOX[pair.STATE] == pair.ASLEEP
    assert _spinning()
    assert pair._worker["thread"] is not thread
