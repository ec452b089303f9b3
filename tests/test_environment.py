"""Hostile environments: a thread-unsafe Numba threading layer, nowhere to
write the kernel cache. Each case runs in a subprocess with the environment
set before Numba starts."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(code, env=None, cwd=None, timeout=240):
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


CONCURRENT = """
    import threading
    import numpy as np
    import numba
    import deepnet_fast as dn

    dn.set_num_threads(2)    # every fit and predict takes the threaded kernels
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)

    def fit_and_predict():
        net = dn.DeepNet([20, 16, 8, 1], seed=3)
        net.fit(X, y, epochs=3, batch_size=64, learning_rate=0.05, shuffle=False, verbose=0)
        return net.parameters["W1"].copy(), net.predict_proba(X)

    expected = fit_and_predict()
    layer = numba.threading_layer()
    results, errors = [], []

    def work():
        try:
            for _ in range(25):
                results.append(fit_and_predict())
        except BaseException as exc:
            errors.append(repr(exc))

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    assert len(results) == 50
    for W1, proba in results:
        np.testing.assert_array_equal(W1, expected[0])
        np.testing.assert_array_equal(proba, expected[1])
    print(layer, "ok")
"""


@pytest.mark.timeout(300)
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="threaded kernels need two cores")
def test_two_threads_fit_and_predict_under_the_workqueue_layer():
    # workqueue aborts the whole process ("Concurrent access has been
    # detected") when two threads enter parallel kernels at once.
    out = _run(CONCURRENT, env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["workqueue", "ok"]
