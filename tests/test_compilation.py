"""Compiling the kernels: caches that go stale when any kernel source changes,
the notice before a fit compiles, and compiling ahead of time (issue 17).

The cache tests run in subprocesses on a copy of the kernel package with a
private ``NUMBA_CACHE_DIR``, as a fresh install would.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from deepnet_fast import compilation, threads
from deepnet_fast.kernels import _cache

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(code, env, cwd, timeout=600, args=None):
    full_env = dict(os.environ)
    full_env.update(env)
    command = [sys.executable, *(args or ["-c", textwrap.dedent(code)])]
    return subprocess.run(command, env=full_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------- stale caches

SCALE_BY_RELU_DERIVATIVE = """
    import numpy as np
    from kernels_copy import activations as act
    dA, A = np.ones((2, 3)), np.full((2, 3), 0.5)
    act.scale_by_derivative(dA, A, act.RELU, 0.01, 1.0)
    f = act.scale_by_derivative
    print(dA[0, 0], sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()))
"""

TANH_OF_ONE = """
    import numpy as np
    from kernels_copy import activations as act
    Z, A = np.ones((2, 3)), np.empty((2, 3))
    act.activation_forward(Z, act.TANH, 0.01, A)
    f = act.activation_forward
    print(round(A[0, 0], 6), sum(f.stats.cache_hits.values()),
          sum(f.stats.cache_misses.values()))
"""


@pytest.mark.timeout(600)
@pytest.mark.parametrize("edited, old, new, code, before, after", [
    # One's constant, inlined by the derivative's loop (activations.py).
    ("_scalars.py", "return lambda x: ft(1)", "return lambda x: ft(2)",
     SCALE_BY_RELU_DERIVATIVE, "1.0", "2.0"),
    # tanh's clamp, in simd_math's kernel linked into activation_forward.
    ("simd_math.py", "tanh_hi=20.0", "tanh_hi=0.5", TANH_OF_ONE, "0.761594", "0.462117"),
], ids=["scalars", "simd_math"])
def test_edit_to_an_inlined_kernel_module_recompiles_its_callers(tmp_path, edited, old, new,
                                                                   code, before, after):
    package = tmp_path / "root" / "kernels_copy"
    shutil.copytree(ROOT / "kernels", package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path / "root")}

    def run():
        out = _run(code, env, tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        value, hits, misses = out.stdout.split()
        return value, int(hits), int(misses)

    assert run() == (before, 0, 1)          # compiled and cached
    assert run() == (before, 1, 0)          # an unchanged tree loads from the cache
    source = package / edited
    text = source.read_text()
    assert text.count(old) == 1
    source.write_text(text.replace(old, new))
    assert run() == (after, 0, 1)           # the edit is compiled, not served stale
    assert run() == (after, 1, 0)


def test_kernel_caches_use_the_package_locators():
    from deepnet_fast.kernels import training
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    assert list(impl._locator_classes[:3]) == list(_cache.LOCATORS)
    locator = training.train_epoch._cache._impl.locator
    assert isinstance(locator, _cache.LOCATORS)
    assert locator.get_source_stamp() == ("deepnet_fast.kernels", _cache.sources_fingerprint())
    # Any other file keeps Numba's own locators.
    for cls in _cache.LOCATORS:
        assert cls.from_function(test_kernel_caches_use_the_package_locators, __file__) is None


def test_data_files_are_named_by_their_key_so_racing_writers_never_swap_code(tmp_path):
    from numba.core import caching

    stamp = (_cache.STAMP, "fingerprint")
    first = caching.IndexDataCacheFile(str(tmp_path), "kernel-123", stamp)
    assert isinstance(first, _cache.KeyedDataFiles)
    # Two processes that read the index before either wrote it: Numba would
    # number both signatures' data file 1.
    second = caching.IndexDataCacheFile(str(tmp_path), "kernel-123", stamp)
    stale = second._load_index()
    first.save(("sig1", "cpu", "code"), "machine code 1")
    second._load_index = lambda: dict(stale)
    second.save(("sig2", "cpu", "code"), "machine code 2")
    reader = caching.IndexDataCacheFile(str(tmp_path), "kernel-123", stamp)
    # The index lost the first entry (a later miss), never paired it with the
    # other signature's code.
    assert reader.load(("sig2", "cpu", "code")) == "machine code 2"
    assert reader.load(("sig1", "cpu", "code")) in (None, "machine code 1")
    assert len(list(tmp_path.glob("kernel-123.*.nbc"))) == 2
    # The same key keeps its file; another library's files keep Numba's names.
    first.save(("sig2", "cpu", "code"), "machine code 2")
    assert len(list(tmp_path.glob("kernel-123.*.nbc"))) == 2
    other = caching.IndexDataCacheFile(str(tmp_path), "other", ("x", 1))
    other.save(("sig",), "code")
    assert (tmp_path / "other.1.nbc").exists()


# ---------------------------------------------------------------- the notice

def _session(dtype, verbose, layer_dims=(4, 3, 1), batch=16, validation=None, epochs=1):
    from deepnet_fast.architecture import Architecture
    acts = ("relu",) * (len(layer_dims) - 2) + ("sigmoid",)
    arch = Architecture(list(layer_dims), acts, 0.01, np.dtype(dtype))
    X = np.zeros((batch, layer_dims[0]), dtype)
    return types.SimpleNamespace(arch=arch, config=types.SimpleNamespace(verbose=verbose,
                                                                         epochs=epochs),
                                 runner=types.SimpleNamespace(backend="compiled", batch=batch, X=X),
                                 validation=validation)


def test_notice_says_what_compiles_once_and_how_long():
    line = compilation.notice(["training", "prediction"], "float32")
    assert line.startswith("deepnet_fast: compiling the float32 training and prediction kernels")
    seconds = (compilation.ESTIMATE_SECONDS["training"]
               + compilation.ESTIMATE_SECONDS["prediction"])
    assert "once" in line and f"about {seconds} s" in line
    assert "\n" not in line
    line = compilation.notice(["training"], "float64", beside=["prediction"])
    assert line.endswith("s; the prediction kernel in a helper process beside it)...")


def test_announce_speaks_only_when_a_kernel_will_compile(monkeypatch, capsys):
    ready = {}
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: ready.get((kind, dtype)))
    ready[("training", "float64")] = False
    compilation.announce(_session("float64", verbose=1))
    err = capsys.readouterr().err
    assert err.startswith("deepnet_fast: compiling the float64 training kernel ")
    compilation.announce(_session("float64", verbose=0))
    assert capsys.readouterr().err == ""
    with compilation.announcing():          # the command line: whatever verbose says
        compilation.announce(_session("float64", verbose=0))
    assert "float64 training kernel" in capsys.readouterr().err
    ready[("training", "float64")] = True
    compilation.announce(_session("float64", verbose=2))
    # Unknown (an unreadable cache): say nothing rather than something wrong.
    compilation.announce(_session("float32", verbose=1))
    assert capsys.readouterr().err == ""
    # The reference backend and the dask runner compile nothing here.
    session = _session("float64", verbose=1)
    session.runner.backend = "reference"
    ready[("training", "float64")] = False
    compilation.announce(session)
    session.runner = types.SimpleNamespace(epochs_per_step=1)
    compilation.announce(session)
    assert capsys.readouterr().err == ""


def test_fit_kernels_follow_the_thread_rule():
    small = types.SimpleNamespace(layer_dims=[4, 3, 1])
    assert compilation.fit_kernels(small, 16) == ["training"]
    assert compilation.fit_kernels(small, 16, n_validation=10) == ["training", "prediction"]


LARGE = (784, 1024, 1024, 10)


@pytest.fixture
def two_free_cores(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda: 2)
    monkeypatch.setattr(threads, "_available", lambda: 2)
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "1")
    monkeypatch.setattr(compilation, "_one_thread_seconds", {})
    monkeypatch.setattr(compilation, "MISSING_TTL", 0.0)     # every call reads is_ready


def _large(dtype="float32"):
    from deepnet_fast.architecture import Architecture
    return Architecture(LARGE, ("relu", "relu", "softmax"), 0.01, np.dtype(dtype))


def _one_thread_epochs(dtype, seconds):
    """Epochs over 2048 samples of LARGE that the rule prices at ``seconds``."""
    per_epoch = 6 * _large(dtype).multiply_adds(2048) / compilation.ONE_THREAD_FLOPS[dtype]
    return max(1, int(seconds / per_epoch))


def test_short_fit_runs_on_one_thread_while_the_threaded_kernel_is_not_compiled(
        two_free_cores, monkeypatch):
    ready = {"threaded training": False}
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: ready.get(kind, True))
    arch, budget = _large(), compilation.ESTIMATE_SECONDS["threaded training"]
    assert not threads.fit_threads(LARGE, 256).single           # the size rule alone: threads
    assert compilation.training_threads(arch, 256, 2048, 1).single
    assert compilation.fit_kernels(arch, 256, 0, 2048, 1) == ["training"]
    # A fit longer on one thread than the compile: compile it.
    long_fit = _one_thread_epochs("float32", 2 * budget)
    assert not compilation.training_threads(arch, 256, 2048, long_fit).single
    assert compilation.fit_kernels(arch, 256, 0, 2048, long_fit) == ["threaded training"]
    # Unknown length, a kernel that is ready or unknown: the size rule.
    assert not compilation.training_threads(arch, 256).single
    for state in (True, None):
        ready["threaded training"] = state
        assert not compilation.training_threads(arch, 256, 2048, 1).single
    ready["threaded training"] = False
    # A thread count the user set, or helpers switched off: the size rule.
    monkeypatch.setattr(threads, "_requested", 2)
    assert not compilation.training_threads(arch, 256, 2048, 1).single
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "0")
    assert not compilation.training_threads(arch, 256, 2048, 1).single
    # The reference backend has no kernel to compile.
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "1")
    assert compilation.training_threads(arch, 256, 2048, 1, backend="reference").kernel_threads == 1


def test_one_thread_fits_add_up_until_the_compile_pays(two_free_cores, monkeypatch):
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: not kind.startswith("threaded"))
    arch, budget = _large(), compilation.ESTIMATE_SECONDS["threaded training"]
    epochs = _one_thread_epochs("float32", budget / 3.5)
    singles = 0
    while compilation.training_threads(arch, 256, 2048, epochs, record=True).single:
        singles += 1
        assert singles < 10
    assert singles == 3                 # the fourth would pass the compile's estimate
    spent = compilation._one_thread_seconds[("threaded training", "float32")]
    assert budget * 3 / 3.5 * 0.9 <= spent < budget
    # Without record=True (the notice's question) nothing adds up.
    compilation._one_thread_seconds.clear()
    for _ in range(5):
        assert compilation.training_threads(arch, 256, 2048, epochs).single
    assert compilation._one_thread_seconds == {}
    # Each dtype has its own kernel, and its own count.
    compilation._one_thread_seconds[("threaded training", "float32")] = budget
    assert not compilation.training_threads(arch, 256, 2048, 1).single
    assert compilation.training_threads(_large("float64"), 256, 2048, 1).single


def test_a_missing_kernel_is_looked_up_again_after_a_while(two_free_cores, monkeypatch):
    asked, ready = [], {"threaded prediction": False}
    monkeypatch.setattr(compilation, "is_ready",
                        lambda kind, dtype: asked.append(kind) or ready[kind])
    monkeypatch.setattr(compilation, "MISSING_TTL", 60.0)
    monkeypatch.setattr(compilation, "_missing_seen", {})
    arch = _large()
    for _ in range(5):
        assert compilation.prediction_threads(arch, 64).single
    assert asked == ["threaded prediction"]                # one read for five calls
    ready["threaded prediction"] = True                    # a helper compiled it
    compilation._missing_seen[("threaded prediction", "float32")] -= 61
    assert not compilation.prediction_threads(arch, 64).single
    assert not compilation.prediction_threads(arch, 64).single
    assert asked == ["threaded prediction"] * 3            # ready: read on every call


def test_large_predictions_run_on_one_thread_until_the_threaded_kernel_pays(two_free_cores,
                                                                            monkeypatch):
    ready = {}
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: ready.get(kind, False))
    arch, budget = _large(), compilation.ESTIMATE_SECONDS["threaded prediction"]
    assert not threads.fit_threads(LARGE, 2048).single           # the size rule alone: threads
    assert compilation.prediction_threads(arch, 2048).single
    assert compilation.fit_kernels(arch, 256, 2048, 2048, 1) == ["training", "prediction"]
    # Predictions longer than the compile in all: threads.
    rows = int(budget * compilation.ONE_THREAD_FLOPS["float32"] / (2 * arch.multiply_adds(1)))
    assert not compilation.prediction_threads(arch, rows + 1).single
    singles = 0
    while compilation.prediction_threads(arch, rows // 3, record=True).single:
        singles += 1
    assert singles == 3
    # The training kernel's count is another.
    assert compilation.training_threads(arch, 256, 2048, 1).single
    ready["threaded prediction"] = True
    compilation._one_thread_seconds.clear()
    assert not compilation.prediction_threads(arch, 2048).single


def test_a_large_prediction_takes_the_one_thread_kernel_while_renting(two_free_cores, monkeypatch):
    import deepnet_fast as dn
    from deepnet_fast.kernels import training_threaded
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: kind != "threaded prediction")
    monkeypatch.setattr(threads, "SINGLE_THREAD_BELOW", 0)      # a small network takes threads
    calls = []
    monkeypatch.setattr(training_threaded, "predict_output_threaded",
                        lambda *a: calls.append(a) or 1 / 0)
    X = np.random.default_rng(0).standard_normal((30, 6))
    net = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3)
    ref = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3, backend="reference")
    np.testing.assert_allclose(net.predict_proba(X), ref.predict_proba(X), rtol=1e-10)
    assert calls == [] and compilation._one_thread_seconds[("threaded prediction", "float64")] > 0


def test_first_short_fit_of_a_large_network_trains_on_the_one_thread_kernel(
        two_free_cores, monkeypatch):
    import deepnet_fast as dn
    from deepnet_fast import engines
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: kind != "threaded training")
    monkeypatch.setattr(threads, "SINGLE_THREAD_BELOW", 0)      # a small network takes threads
    used = []
    real = engines.CompiledEngine.__init__

    def spy(self, *args, **kwargs):
        used.append(kwargs.get("threads"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(engines.CompiledEngine, "__init__", spy)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    kw = dict(epochs=2, learning_rate=0.1, batch_size=8, verbose=0)
    net = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3)
    net.fit(X, y, **kw)
    ref = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3, backend="reference")
    ref.fit(X, y, **kw)
    assert used == [1] and compilation._one_thread_seconds[("threaded training", "float64")] > 0
    for k, v in ref.parameters.items():
        np.testing.assert_allclose(net.parameters[k], v, rtol=1e-10, atol=1e-12)
    # Once the threaded kernel is ready, the same fit splits its batches.
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: True)
    net.fit(X, y, **kw)
    assert used == [1, 2]


def test_cli_train_announces_the_compile_even_when_quiet(monkeypatch, capsys):
    from deepnet_fast.cli import main
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: False)
    assert main(["train", "--data", "iris", "--epochs", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("deepnet_fast: compiling the float64 training kernel") == 1
    assert "compiling" not in captured.out


def test_compile_command_rejects_unknown_dtypes(capsys):
    from deepnet_fast.cli import main
    assert main(["compile", "--dtype", "float16"]) == 2
    assert "float64 or float32" in capsys.readouterr().err


# ---------------------------------------------------------------- beside

class _FakeHelper:
    """Stands for the helper process: records how it was started and stopped."""
    started = []

    def __init__(self, args, env=None, **kwargs):
        self.args, self.env, self.kwargs = args, env, kwargs
        self.returncode, self.waited, self.killed = None, [], False
        _FakeHelper.started.append(self)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self.waited.append(timeout)
        if self.returncode is None and getattr(self, "hangs", False) and not self.killed:
            raise subprocess.TimeoutExpired(self.args, timeout)
        self.returncode = -9 if self.killed else 0
        return self.returncode

    def kill(self):
        self.killed = True


@pytest.fixture
def beside(monkeypatch):
    """compile_beside with every kernel missing, two cores, a fake helper."""
    _FakeHelper.started = []
    ready = {}
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "1")
    monkeypatch.setattr(compilation, "is_ready", lambda kind, dtype: ready.get((kind, dtype), False))
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(compilation.subprocess, "Popen", _FakeHelper)
    monkeypatch.setattr(compilation, "_reference_seconds", {})
    monkeypatch.setattr(compilation, "_beside", {})
    yield ready


def _fit_session(dtype="float32", rows=100, epochs=1):
    session = _session(dtype, verbose=0, epochs=epochs)
    session.runner.X = np.zeros((rows, 4), dtype=dtype)
    return session


def _long_epochs(dtype="float32", rows=100):
    """Epochs of _fit_session that the reference would take longer for than the
    training kernel's compile."""
    one = compilation._reference_fit_seconds(_fit_session(dtype, rows).arch, 16, rows, 1)
    return int(compilation.ESTIMATE_SECONDS["training"] / one) + 1


def _finish(helper):
    helper.returncode = 0


def test_a_short_first_fit_gets_a_helper_for_both_kernels(beside):
    helper = compilation.compile_beside(_fit_session("float32"))
    assert _FakeHelper.started == [helper]
    # The fit runs on the reference: the helper compiles its kernels.
    assert helper.args == [sys.executable, "-m", "deepnet_fast", "compile", "--dtype", "float32",
                           "--kind", "training", "--kind", "prediction"]
    assert helper.env[compilation.BESIDE_VARIABLE] == "0"      # helpers start no helpers
    assert helper.kwargs["stdout"] == subprocess.DEVNULL
    # One at a time.
    assert compilation.compile_beside(_fit_session("float64")) is None
    # A prediction that does not run on the reference waits for it; then the
    # next first fit may start another.
    compilation.settle()
    assert helper.waited == [compilation.SETTLE_TIMEOUT] and not helper.killed
    second = compilation.compile_beside(_fit_session("float64"))
    assert second.args[-5:] == ["float64", "--kind", "training", "--kind", "prediction"]


def test_a_long_first_fit_compiles_its_kernel_and_the_helper_the_prediction(beside):
    helper = compilation.compile_beside(_fit_session("float32", epochs=_long_epochs()))
    # The last leaves of the training kernel this process compiles first,
    # then the prediction kernel.
    assert helper.args[-5:] == ["float32", "--kind", "training leaves", "--kind", "prediction"]
    _finish(helper)
    # The threaded training kernel's leaves are not the list's.
    compilation._beside.clear()
    helper = compilation.start_helper(["threaded prediction"], "float32")
    assert helper.args[-3:] == ["float32", "--kind", "threaded prediction"]
    _finish(helper)
    # Nor when the one-thread training kernel is ready (a prediction only).
    beside[("training", "float64")] = True
    helper = compilation.start_helper(["prediction"], "float64", leaves=True)
    assert helper.args[-3:] == ["float64", "--kind", "prediction"]


def test_compile_beside_stops_a_helper_that_outlasts_the_wait(beside):
    helper = compilation.compile_beside(_fit_session())
    helper.hangs = True
    compilation.settle(timeout=0.01)
    assert helper.killed and helper.waited == [0.01, None]


def test_compile_beside_only_when_it_saves_a_compile(beside, monkeypatch):
    def starts(session):
        helper = compilation.compile_beside(session)
        if helper is not None:
            _finish(helper)
        return helper is not None

    assert starts(_fit_session())
    beside[("training", "float32")] = True          # nothing to compile beside
    assert not starts(_fit_session())
    beside[("training", "float32")] = False
    beside[("prediction", "float32")] = True        # only the training kernel
    assert starts(_fit_session())
    assert _FakeHelper.started[-1].args[-2:] == ["--kind", "training"]
    beside[("prediction", "float32")] = None        # cache unreadable
    assert not starts(_fit_session(epochs=_long_epochs()))
    del beside[("prediction", "float32")]
    session = _fit_session()
    session.runner.backend = "reference"
    assert not starts(session)
    session.runner = types.SimpleNamespace(epochs_per_step=1)     # the dask runner
    assert not starts(session)
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    assert not starts(_fit_session())
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "0")
    assert not starts(_fit_session())
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "1")
    monkeypatch.setattr(compilation, "cache_writable", lambda: False)   # nothing to share
    assert not starts(_fit_session())
    assert len(_FakeHelper.started) == 2


def test_fits_run_on_the_reference_only_while_the_helper_compiles(beside):
    session = _fit_session("float64")
    arch, n = session.arch, session.runner.X.shape[0]
    # No helper: the fit compiles.
    assert compilation.training_backend(arch, 16, n, 1) == "compiled"
    helper = compilation.compile_beside(session)
    assert compilation.training_backend(arch, 16, n, 1) == "reference"
    # The other dtype's kernel is not the helper's; the reference backend and
    # a fit of unknown length stay as they are.
    assert compilation.training_backend(_fit_session("float32").arch, 16, n, 1) == "compiled"
    assert compilation.training_backend(arch, 16, n, 1, backend="reference") == "reference"
    assert compilation.training_backend(arch, 16) == "compiled"
    # Fits add up (record=True) until the reference has taken the compile's time.
    epochs = max(1, _long_epochs("float64") // 4)
    rented = 0
    while compilation.training_backend(arch, 16, n, epochs, record=True) == "reference":
        rented += 1
        assert rented < 10
    assert rented in (3, 4)
    spent = compilation._reference_seconds[("training", "float64")]
    assert spent < compilation.ESTIMATE_SECONDS["training"]
    compilation._reference_seconds.clear()
    # Once the helper is done, the kernel is in the cache: compiled again.
    _finish(helper)
    assert compilation.training_backend(arch, 16, n, 1) == "compiled"


def test_a_fit_too_long_for_the_reference_waits_for_the_helper_compiling_its_kernel(beside):
    import deepnet_fast as dn
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 2, 64)
    beside[("prediction", "float64")] = True
    helper = compilation.start_helper(["training"], "float64")
    net = dn.DeepNet([4, 3, 1], seed=0)
    # The whole rent spent already: this fit compiles, after the helper.
    compilation._reference_seconds[("training", "float64")] = compilation.ESTIMATE_SECONDS[
        "training"]
    history = net.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert history.backend == "compiled"
    assert helper.waited == [compilation.SETTLE_TIMEOUT] and not helper.killed
    # A helper compiling only the prediction kernel is not waited for by a fit.
    compilation._beside.clear()
    other = compilation.start_helper(["prediction"], "float32")
    net32 = dn.DeepNet([4, 3, 1], seed=0, dtype="float32")
    net32.fit(X.astype(np.float32), y, epochs=1, batch_size=16, verbose=0)
    assert other.waited == []


def test_a_prediction_runs_on_the_reference_while_the_helper_compiles_its_kernel(beside,
                                                                                monkeypatch):
    import deepnet_fast as dn
    from deepnet_fast.kernels import training
    X = np.random.default_rng(0).standard_normal((30, 6))
    net = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3)
    ref = dn.DeepNet([6, 8, 3], "tanh", "softmax", seed=3, backend="reference")
    expected = ref.predict_proba(X)
    helper = compilation.start_helper(["training", "prediction"], "float64")
    calls = []
    monkeypatch.setattr(training, "predict_output", lambda *a: calls.append(a) or 1 / 0)
    np.testing.assert_array_equal(net.predict_proba(X), expected)
    assert calls == [] and helper.waited == []        # neither compiled nor waited
    assert compilation._reference_seconds[("prediction", "float64")] > 0
    _finish(helper)
    compilation.settle()
    monkeypatch.undo()
    np.testing.assert_allclose(net.predict_proba(X), expected, rtol=1e-10)


def test_a_fit_on_the_reference_gives_the_compiled_fit(beside, monkeypatch):
    import deepnet_fast as dn
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 6)), rng.integers(0, 3, 80)
    kw = dict(epochs=3, learning_rate=0.1, batch_size=16, verbose=0, keep_prob=0.8,
              optimizer="adam", validation_split=0.25)
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "0")        # no helper: compiled
    compiled = dn.DeepNet([6, 8, 3], "relu", "softmax", seed=3)
    history = compiled.fit(X, y, **kw)
    assert history.backend == "compiled" and _FakeHelper.started == []
    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "1")
    beside[("prediction", "float64")] = True
    helper = compilation.start_helper(["training"], "float64")
    rented = dn.DeepNet([6, 8, 3], "relu", "softmax", seed=3)
    history = rented.fit(X, y, **kw)
    assert history.backend == "reference" and not helper.waited
    for k, v in compiled.parameters.items():
        np.testing.assert_allclose(rented.parameters[k], v, rtol=1e-10, atol=1e-12)
    assert compilation._reference_seconds[("training", "float64")] > 0


def test_a_helper_of_another_process_is_waited_for_not_doubled(beside, monkeypatch, tmp_path):
    monkeypatch.setattr(compilation, "_lock_path", lambda dtype: str(tmp_path / f"{dtype}.lock"))
    monkeypatch.setattr(compilation, "MISSING_TTL", 0.0)
    session = _fit_session("float64")
    arch, n = session.arch, session.runner.X.shape[0]
    with compilation.helper_lock("float64"):    # as the helper of another process holds it
        assert compilation.compile_beside(session) is None
        assert _FakeHelper.started == []
        [other] = compilation.helpers()
        assert other.pid == os.getpid()
        assert compilation.training_backend(arch, 16, n, 1) == "reference"
        assert compilation.prediction_backend(arch, n) == "reference"
        # The other dtype's kernels are nobody's: a helper of this process.
        assert compilation.compile_beside(_fit_session("float32")) is None   # one at a time
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(0.05)
    # Released (the other helper is done): compiled, and nothing to wait for.
    assert compilation.training_backend(arch, 16, n, 1) == "compiled"
    assert compilation.prediction_backend(arch, n) == "compiled"
    assert compilation.helpers() == []
    compilation.settle()
    assert compilation._beside == {}
    # With the lock free, this process starts a helper of its own.
    assert compilation._OtherHelper.find("float64") is None
    helper = compilation.compile_beside(session)
    assert helper is _FakeHelper.started[0]


def test_the_compile_command_holds_the_lock_while_it_compiles(monkeypatch, tmp_path):
    import io

    from deepnet_fast import ahead
    monkeypatch.setattr(compilation, "_lock_path", lambda dtype: str(tmp_path / f"{dtype}.lock"))
    seen = []

    def steps(dtype, threaded):
        return [("prediction", 1, lambda: seen.append(compilation._OtherHelper.find(dtype)))]

    monkeypatch.setattr(ahead, "_steps", steps)
    monkeypatch.setattr(compilation, "compile_count", lambda kind: 0)
    ahead.compile_ahead(["float32"], threaded=False, out=io.StringIO())
    [other] = seen
    assert other is not None and other.pid == os.getpid()
    assert compilation._OtherHelper.find("float32") is None      # released after


def test_cli_train_runs_a_short_first_fit_on_the_reference(beside, capsys):
    from deepnet_fast.cli import main
    assert main(["train", "--data", "iris", "--epochs", "1", "--quiet", "--dtype", "float32"]) == 0
    [helper] = _FakeHelper.started
    assert helper.args[-5:] == ["float32", "--kind", "training", "--kind", "prediction"]
    assert not helper.waited                         # the score did not wait for it
    captured = capsys.readouterr()
    assert "this fit runs on the NumPy reference meanwhile" in captured.err
    assert "samples/s, on the NumPy reference while the kernels compiled)" in captured.out
    _FakeHelper.started = []
    compilation._beside.clear()
    assert main(["train", "--data", "iris", "--epochs", "1", "--quiet",
                 "--backend", "reference"]) == 0
    assert _FakeHelper.started == []
    assert "compile included" in capsys.readouterr().out


def test_compile_command_compiles_only_the_kinds_asked(capsys):
    from deepnet_fast.cli import main
    assert main(["compile", "--dtype", "float64", "--kind", "prediction"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kernels = [line.split()[:2] for line in lines[1:-1]]
    assert kernels == [["float64", "prediction"]]
    assert main(["compile", "--kind", "nothing"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.timeout(900)
@pytest.mark.skipif(threads.usable_cores() < 2, reason="the helper needs a second core")
def test_compile_command_compiles_the_second_dtype_in_a_helper(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           compilation.BESIDE_VARIABLE: "1"}
    out = _run(None, env, ROOT, args=["-m", "deepnet_fast", "compile", "--no-threaded",
                                      "--kind", "prediction", "--dtype", "float64,float32"])
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert [line.split()[:3] for line in lines[1:-1]] == [
        ["float64", "prediction", "compiled"], ["float32", "prediction", "compiled"]]
    later = _run("""
        from deepnet_fast import compilation
        print(compilation.is_ready("prediction", "float64"),
              compilation.is_ready("prediction", "float32"))
    """, env, ROOT)
    assert later.stdout.split() == ["True", "True"], later.stderr[-3000:]


FIRST_FIT = """
    import sys, time
    import numpy as np
    import deepnet_fast as dn
    from deepnet_fast import compilation
    from deepnet_fast.kernels import training

    if sys.argv[1] == "later":
        # The first process has exited: its helper finishes on its own.
        deadline = time.monotonic() + 600
        while not (compilation.is_ready("training", "float64")
                   and compilation.is_ready("prediction", "float64")):
            assert time.monotonic() < deadline, "the helper never filled the cache"
            time.sleep(0.5)
    X = np.random.default_rng(1).standard_normal((60, 5))
    net = dn.DeepNet([5, 4, 3], "relu", "softmax", seed=0)
    history = net.fit(X, np.argmax(X[:, :3], axis=1), epochs=3, batch_size=20, verbose=0)
    P = net.predict_proba(X)
    np.save(sys.argv[2], np.concatenate([*(v.ravel() for v in net.parameters.values()),
                                         P.ravel()]))
    print(history.backend, len(compilation._beside),
          sum(training.train_epoch.stats.cache_misses.values()),
          sum(training.predict_output.stats.cache_misses.values()),
          sum(training.train_epoch.stats.cache_hits.values()),
          sum(training.predict_output.stats.cache_hits.values()))
"""


@pytest.mark.timeout(900)
@pytest.mark.skipif(threads.usable_cores() < 2, reason="the helper needs a second core")
def test_first_fit_runs_on_the_reference_and_the_next_process_on_the_kernels(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           compilation.BESIDE_VARIABLE: "1"}
    first = _run(FIRST_FIT, env, ROOT, args=["-c", textwrap.dedent(FIRST_FIT), "first",
                                             str(tmp_path / "first.npy")])
    assert first.returncode == 0, first.stderr[-3000:]
    # The fit and its prediction ran on the reference: nothing compiled here,
    # one helper compiling both kernels.
    assert first.stdout.split() == ["reference", "2", "0", "0", "0", "0"]
    later = _run(FIRST_FIT, env, ROOT, args=["-c", textwrap.dedent(FIRST_FIT), "later",
                                             str(tmp_path / "later.npy")])
    assert later.returncode == 0, later.stderr[-3000:]
    # The next process loads what the helper compiled after the first exited.
    assert later.stdout.split() == ["compiled", "0", "0", "0", "1", "1"]
    np.testing.assert_allclose(np.load(tmp_path / "later.npy"), np.load(tmp_path / "first.npy"),
                               rtol=1e-10, atol=1e-12)


LEAVES_THEN_FIT = """
    import numpy as np
    import deepnet_fast as dn
    from deepnet_fast import compilation
    from deepnet_fast.kernels import training

    X = np.random.default_rng(1).standard_normal((60, 5)).astype(np.float32)
    net = dn.DeepNet([5, 4, 3], "relu", "softmax", seed=0, dtype="float32")
    net.fit(X, np.argmax(X[:, :3], axis=1), epochs=2, batch_size=20, verbose=0, keep_prob=0.9)
    print(sum(training.train_epoch.stats.cache_misses.values()))
    for dispatcher, _ in compilation.training_leaves("float32"):
        print(dispatcher.__name__, sum(dispatcher.stats.cache_hits.values()),
              sum(dispatcher.stats.cache_misses.values()))
"""


@pytest.mark.timeout(900)
def test_training_leaves_are_the_ones_the_training_kernel_compiles(tmp_path):
    # The helper's list names each leaf with the types train_epoch gives it:
    # a fit after it compiles train_epoch and loads every leaf from the cache.
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = _run(None, env, ROOT, args=["-m", "deepnet_fast", "compile", "--dtype", "float32",
                                      "--no-threaded", "--kind", "training leaves"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[1].split()[:4] == ["float32", "training", "leaves", "compiled"]
    fit = _run(LEAVES_THEN_FIT, env, ROOT)
    assert fit.returncode == 0, fit.stderr[-3000:]
    lines = fit.stdout.splitlines()
    assert lines[0] == "1"                               # the kernel itself compiled
    counts = {name: (int(hits), int(misses)) for name, hits, misses in map(str.split, lines[1:])}
    assert len(counts) == len(compilation.training_leaves("float32"))
    assert all(hits >= 1 and misses == 0 for hits, misses in counts.values()), counts


# ---------------------------------------------------------------- ahead of time

AFTER_COMPILE = """
    import io, contextlib
    import numpy as np
    import deepnet_fast as dn
    from deepnet_fast import compilation
    from deepnet_fast.kernels import training

    print(compilation.is_ready("training", "float32"), compilation.is_ready("prediction", "float32"),
          compilation.is_ready("training", "float64"))
    X = np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        net = dn.DeepNet([6, 5, 1], dtype="float32", seed=0)
        net.fit(X, X[:, 0] > 0, epochs=2, batch_size=10, verbose=1, validation_split=0.2)
        net.predict(X)
    print("notice" if "compiling" in err.getvalue() else "silent")
    print(sum(training.train_epoch.stats.cache_hits.values()),
          sum(training.train_epoch.stats.cache_misses.values()),
          sum(training.predict_output.stats.cache_misses.values()))
"""


@pytest.mark.timeout(900)
def test_compile_command_fills_the_cache_for_later_processes(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = _run(None, env, ROOT, args=["-m", "deepnet_fast", "compile", "--dtype", "float32",
                                      "--no-threaded"])
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert str(tmp_path / "cache") in lines[0]
    assert any(line.split()[:3] == ["float32", "training", "compiled"] for line in lines)
    assert any(line.split()[:3] == ["float32", "prediction", "compiled"] for line in lines)
    assert not any("float64" in line for line in lines)
    assert lines[-1].startswith("Done in")

    later = _run(AFTER_COMPILE, env, ROOT)
    assert later.returncode == 0, later.stderr[-3000:]
    lines = later.stdout.splitlines()     # the fit's cost lines in between
    ready, notice, counts = lines[0], lines[-2], lines[-1]
    assert ready.split() == ["True", "True", "False"]
    assert notice == "silent"
    assert counts.split() == ["1", "0", "0"]    # loaded, nothing compiled


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(dtypes="float64"), TypeError, "dtypes must be a list of dtype names"),
    (dict(dtypes=["float16"]), ValueError, "dtypes must be 'float32' or 'float64'"),
    (dict(dtypes=[]), ValueError, "dtypes must name at least one dtype"),
    (dict(dtypes=["float64"], kinds="prediction"), TypeError, "kinds must be a list"),
    (dict(dtypes=["float64"], kinds=["trainig"]), ValueError, "kinds must be one of"),
    (dict(dtypes=["float32"], kinds=["gradient"]), ValueError,
     r"kinds \['gradient'\] select no kernel of dtypes \['float32'\]"),
    (dict(dtypes=["float64"], threaded=False, kinds=["threaded training"]), ValueError,
     "select no kernel"),
])
def test_compile_ahead_refuses_a_selection_it_cannot_compile(kwargs, error, match):
    import io

    from deepnet_fast import ahead
    out = io.StringIO()
    with pytest.raises(error, match=match):
        ahead.compile_ahead(out=out, **kwargs)
    assert out.getvalue() == ""          # before anything is compiled or printed


def test_compile_ahead_in_a_script_without_a_main_guard_still_compiles_every_dtype(tmp_path):
    script = tmp_path / "warm.py"
    script.write_text("from deepnet_fast.ahead import compile_ahead\n"
                      "compile_ahead(kinds=['prediction'], threaded=False)\n")
    # With a helper allowed (the suite turns them off): the second dtype's
    # helper re-runs the script, fails, and the parent compiles it instead.
    env = dict(os.environ, DEEPNET_FAST_COMPILE_BESIDE="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:2] == ["float64", "prediction"] for line in lines)
    assert any(line.split()[:2] == ["float32", "prediction"] for line in lines)
    assert lines[-1].startswith("Done in")
