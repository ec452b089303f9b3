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


def _free_elsewhere():
    """Whether another thread could take the workqueue lock now."""
    import threading

    from deepnet_fast import threads
    result = []

    def probe():
        got = threads._workqueue_lock.acquire(blocking=False)
        if got:
            threads._workqueue_lock.release()
        result.append(got)

    worker = threading.Thread(target=probe)
    worker.start()
    worker.join()
    return result[0]


def test_workqueue_lock_is_held_by_nested_and_shared_contexts(monkeypatch):
    from deepnet_fast import threads
    monkeypatch.setattr(threads, "_layer_may_be_workqueue", lambda: True)
    big = [1000, 1000, 1]
    fit = threads.fit_threads(big, 1000, available=2)
    predict = threads.fit_threads(big, 1000, available=2)
    single = threads.fit_threads(big, 1000, available=1)
    assert fit.kernel_threads == 2 and single.kernel_threads == 1
    with fit:
        with predict, single:        # fit's validation predictions, same thread
            assert not _free_elsewhere()
        assert not _free_elsewhere()
    assert _free_elsewhere()
    with single:                     # one kernel thread: nothing to serialise
        assert _free_elsewhere()
    # One context entered by two threads in turn (a dask worker's shard).
    import threading
    done = []

    def fit_and_validate():
        with fit:
            with threads.fit_threads(big, 1000, available=2):
                done.append(not _free_elsewhere())

    workers = [threading.Thread(target=fit_and_validate) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert done == [True, True] and _free_elsewhere()


def _read_only_install(tmp_path):
    """The wheel's layout (kernels inside the package) where nothing can be
    written beside the package. Tests run as root, whom permissions do not
    stop, so every ``__pycache__`` is also taken by a regular file."""
    site = tmp_path / "site"
    package = site / "deepnet_fast"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "deepnet_fast", package, ignore=ignore)
    shutil.copytree(ROOT / "kernels", package / "kernels", ignore=ignore)
    for folder in [site, *(p for p in site.rglob("*") if p.is_dir())]:
        if folder != site:
            (folder / "__pycache__").touch()
    for folder in [site, *(p for p in site.rglob("*") if p.is_dir())]:
        folder.chmod(0o555)
    return site


def _homeless(site, tmp):
    # No home (a path under a regular file cannot be created), no XDG cache.
    return {"HOME": "/dev/null/home", "XDG_CACHE_HOME": None, "NUMBA_CACHE_DIR": None,
            "TMPDIR": str(tmp), "PYTHONPATH": str(site)}


TINY_FIT = """
    import numba
    import numpy as np
    import deepnet_fast as dn
    from numba.core.registry import CPUDispatcher

    assert dn.kernels.__file__.startswith({site!r}), dn.kernels.__file__
    X = np.random.default_rng(0).standard_normal((40, 3))
    net = dn.DeepNet([3, 4, 1], seed=0).fit(X, X[:, 0] > 0, epochs=3, verbose=0)
    kernels = [f for m in list(__import__("sys").modules.values())
               if m.__name__.startswith("deepnet_fast.kernels")
               for f in vars(m).values() if isinstance(f, CPUDispatcher)]
    print(sum(sum(k.stats.cache_hits.values()) for k in kernels),
          sum(sum(k.stats.cache_misses.values()) for k in kernels))
"""


@pytest.mark.timeout(400)
def test_import_and_fit_without_a_writable_package_or_home_cache_in_temp(tmp_path):
    site = _read_only_install(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = _homeless(site, tmp)
    code = TINY_FIT.format(site=str(site))
    first = _run(code, env=env, cwd=tmp)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Warning" not in first.stderr, first.stderr
    hits, misses = map(int, first.stdout.split())
    assert misses > 0
    cache = next(tmp.glob("deepnet_fast-numba*"))
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert any(cache.rglob("*.nbi"))
    # The next process loads every kernel from there.
    second = _run(code, env=env, cwd=tmp)
    assert second.returncode == 0, second.stderr[-3000:]
    hits, misses = map(int, second.stdout.split())
    assert hits > 0 and misses == 0


@pytest.mark.timeout(300)
def test_import_without_any_writable_cache_directory_warns_once(tmp_path):
    site = _read_only_install(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # A temp cache directory that is not ours to use.
    (tmp / (f"deepnet_fast-numba-{os.getuid()}" if hasattr(os, "getuid")
            else "deepnet_fast-numba")).touch()
    code = """
        import numpy as np
        import deepnet_fast as dn
        from deepnet_fast import compiled as dnc
        A = np.ones((3, 2))
        Z = dnc.linear_forward(A, np.ones((2, 3)), np.zeros((2, 1)))
        np.testing.assert_array_equal(Z, np.full((2, 2), 3.0))
        print(dn.kernels._config.JIT["cache"])
    """
    out = _run(code, env=_homeless(site, tmp), cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["False"]
    assert out.stderr.count("Warning") == 1, out.stderr
    assert "no writable Numba cache directory" in out.stderr
