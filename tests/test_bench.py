"""The benchmark machinery: the workload table, the trainers of every backend,
``deepnet-fast bench`` and the asv suite's skipping rules.

Nothing here asserts a speed: these tests fail when the benchmarks would
break, not when the code is slow.
"""

import json
import os
import re
import sys
import time

import numpy as np
import pytest

from deepnet_fast import bench, bench_kernels, cli

ASV_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "asv_benchmarks")

EXPECTED = {
    # name: (layer_dims, hidden, output, samples, batch, dtypes)
    "course-cat": ((12288, 20, 7, 5, 1), "relu", "sigmoid", 209, None, ("float64",)),
    "digits-small": ((64, 32, 10), "relu", "softmax", 1797, 32, ("float32", "float64")),
    "mnist-medium": ((784, 256, 128, 10), "relu", "softmax", 10_000, 128, ("float32",)),
    "wide-large": ((1024, 2048, 2048, 10), "relu", "softmax", 8192, 512, ("float32",)),
    "tanh-medium": ((784, 256, 128, 10), "tanh", "softmax", 10_000, 128, ("float32",)),
}


def _no_torch(monkeypatch):
    # A None entry in sys.modules makes ``import torch`` raise ImportError.
    monkeypatch.setitem(sys.modules, "torch", None)


# ---------------------------------------------------------------- the table


def test_workload_table_has_the_five_workloads_of_issue_3():
    assert list(bench.WORKLOADS) == list(EXPECTED)
    for name, (dims, hidden, output, n, batch, dtypes) in EXPECTED.items():
        w = bench.WORKLOADS[name]
        assert (w.layer_dims, w.hidden_activation, w.output_activation) == (dims, hidden, output)
        assert (w.n_samples, w.batch_size, w.dtypes) == (n, batch, dtypes)
        assert w.learning_rate == (0.0075 if name == "course-cat" else 0.05)


def test_cases_expand_dtypes_and_filter_them():
    assert ("digits-small", "float32") in bench.cases()
    assert ("digits-small", "float64") in bench.cases()
    assert len(bench.cases()) == 6
    assert bench.cases(["digits-small"], ["float64"]) == [("digits-small", "float64")]


def test_training_flops_are_six_per_weight_per_sample():
    assert bench.training_flops_per_sample((64, 32, 10)) == 6 * (64 * 32 + 32 * 10)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_quick_sample_count_holds_at_least_two_batches(name):
    w = bench.WORKLOADS[name]
    n = bench.quick_samples(name)
    assert n <= w.n_samples
    assert n == w.n_samples or n >= 2 * (w.batch_size or w.n_samples)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_make_data_has_the_workload_shape_dtype_and_labels(name):
    w = bench.WORKLOADS[name]
    for dtype in w.dtypes:
        X, y = bench.make_data(name, dtype, n_samples=40)
        assert X.shape == (40, w.layer_dims[0]) and X.dtype == np.dtype(dtype)
        assert X.flags.c_contiguous
        assert y.shape == (40,) and y.dtype == np.int64
        assert 0 <= y.min() and y.max() < max(2, w.layer_dims[-1])
        X2, y2 = bench.make_data(name, dtype, n_samples=40)
        np.testing.assert_array_equal(X, X2)   # seeded
        np.testing.assert_array_equal(y, y2)


def test_digits_small_uses_the_real_digits_scaled_to_unit_interval():
    from sklearn.datasets import load_digits
    X, y = bench.make_data("digits-small", "float64")
    X_ref, y_ref = load_digits(return_X_y=True)
    np.testing.assert_allclose(X, X_ref / 16)
    np.testing.assert_array_equal(y, y_ref)


# ---------------------------------------------------------------- trainers


@pytest.mark.parametrize("backend", ["reference", "sklearn", "torch", "jax"])
@pytest.mark.parametrize("name", ["digits-small", "course-cat"])
def test_trainer_trains_and_scores_on_a_small_slice(backend, name):
    if backend in ("torch", "jax"):
        pytest.importorskip(backend)
    X, y = bench.make_data(name, n_samples=64)
    trainer = bench.make_trainer(backend, name, X, y, X.dtype, warmup=True)
    trainer.train(1)
    assert trainer.predict(X).shape == (64,)
    assert np.isfinite(trainer.cost()) and trainer.cost() > 0
    assert 0.0 <= trainer.accuracy() <= 1.0


def test_make_trainer_threads_sets_the_process_thread_count():
    from deepnet_fast import get_num_threads, set_num_threads
    X, y = bench.make_data("digits-small", n_samples=64)
    try:
        bench.make_trainer("reference", "digits-small", X, y, X.dtype, warmup=False, threads=1)
        assert get_num_threads() == 1
    finally:
        set_num_threads(None)
    assert get_num_threads() is None
    with pytest.raises(ValueError, match=r"n must be an integer >= 1; got 0"):
        bench.make_trainer("reference", "digits-small", X, y, X.dtype, warmup=False, threads=0)


def test_missing_torch_raises_backend_unavailable(monkeypatch):
    _no_torch(monkeypatch)
    X, y = bench.make_data("digits-small", n_samples=64)
    with pytest.raises(bench.BackendUnavailable, match="PyTorch is not installed"):
        bench.make_trainer("torch", "digits-small", X, y, "float32")


# ---------------------------------------------------------------- deepnet-fast bench


def test_quick_bench_reports_compiled_and_reference_with_their_ratio(tmp_path, capsys):
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "compiled,reference", "--repeat", "1", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    payload = json.loads(path.read_text())
    (result,) = payload["results"]
    assert (result["workload"], result["dtype"]) == ("digits-small", "float64")
    assert result["n_samples"] == bench.quick_samples("digits-small")
    rates = result["samples_per_s"]
    assert set(rates) == {"compiled", "reference"}
    assert rates["compiled"] > 0 and rates["reference"] > 0
    ratio = result["ratios"]["compiled/reference"]
    assert ratio == pytest.approx(rates["compiled"] / rates["reference"])
    table = [line for line in out.splitlines() if line.startswith("digits-small")]
    assert len(table) == 1
    assert "compiled" in out and "reference" in out and "comp/reference" in out
    assert f"{ratio:.2f}" in table[0].split()
    assert f"{rates['compiled']:,.0f}" in table[0].split()
    # the kernels against NumPy's ufuncs, both dtypes, in the table and the JSON
    kernels = payload["kernels"]
    assert set(kernels) == {"float32", "float64"}
    for dt, res in kernels.items():
        assert set(res) == set(bench_kernels.ACTIVATIONS)
        row = [line for line in out.splitlines() if line.split()[:1] == [dt]]
        assert len(row) == 1
        assert row[0].split()[1:] == [f"{res[a]['ratio']:.2f}" for a in res]


def test_bench_no_kernels_skips_them(tmp_path, capsys):
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "compiled", "--repeat", "1", "--no-kernels",
                       "--json", str(path)])
    assert status == 0
    assert "Activation kernels" not in capsys.readouterr().out
    assert json.loads(path.read_text())["kernels"] is None


# ---------------------------------------------------------------- kernels against NumPy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_speedups_time_the_same_function_on_both_sides(dtype):
    res = bench_kernels.kernel_speedups(shape=(7, 33), dtype=dtype, rounds=2)
    assert list(res) == list(bench_kernels.ACTIVATIONS)
    tol = 1e-6 if dtype == "float32" else 1e-14
    for a, r in res.items():
        assert r["kernel_us"] > 0 and r["numpy_us"] > 0 and np.isfinite(r["ratio"])
        assert r["ratio"] > 0
        # a wrong kernel (or a wrong NumPy chain) shows as a difference
        assert r["max_abs_diff"] <= tol, (a, r["max_abs_diff"])


@pytest.mark.parametrize("activation", bench_kernels.ACTIVATIONS)
def test_numpy_chains_equal_the_reference(activation, rng):
    from deepnet_fast import reference
    Z = rng.standard_normal((5, 9)) * 4
    out = np.empty_like(Z)
    bench_kernels.numpy_chain(activation, Z)(out)
    np.testing.assert_allclose(out, reference.activation_forward(Z, activation), rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"activations": ["gelu"]}, "activation: expected one of"),
    ({"dtype": "int32"}, "dtype: expected float32 or float64"),
    ({"shape": (0, 4)}, "shape: expected two positive sizes"),
    ({"shape": (4,)}, "shape: expected two positive sizes"),
    ({"rounds": 0}, "rounds: expected a positive integer"),
])
def test_kernel_speedups_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bench_kernels.kernel_speedups(**kwargs)


def test_bench_without_torch_skips_it_with_a_note(monkeypatch, tmp_path, capsys):
    _no_torch(monkeypatch)
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "reference,torch", "--repeat", "1", "--no-kernels",
                       "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "note: torch: skipped" in out
    result = json.loads(path.read_text())["results"][0]
    assert set(result["samples_per_s"]) == {"reference"}
    assert not result["errors"]


def test_bench_rejects_an_unknown_workload(capsys):
    status = cli.main(["bench", "--workloads", "imagenet", "--quick"])
    err = capsys.readouterr().err
    assert status == 2
    assert "imagenet" in err and "digits-small" in err


def test_bench_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--workloads", "--backends", "--repeat", "--epochs", "--threads",
                   "--quick", "--no-kernels", "--json"):
        assert option in out


# ---------------------------------------------------------------- asv suite


@pytest.fixture
def asv_suite(monkeypatch):
    import importlib
    monkeypatch.syspath_prepend(ASV_DIR)
    for mod in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, mod)
    return {name: importlib.import_module(f"benchmarks.{name}")
            for name in ("common", "bench_training", "bench_predict", "bench_kernels",
                         "bench_compile")}


def test_asv_config_points_at_the_repository_and_benchmarks():
    import re
    with open(os.path.join(ASV_DIR, "asv.conf.json"), encoding="utf-8") as fh:
        text = re.sub(r"^\s*//.*$", "", fh.read(), flags=re.M)   # asv allows // comments
    conf = json.loads(text)
    assert conf["repo"] == ".."
    assert conf["environment_type"] == "virtualenv"
    assert conf["benchmark_dir"] == "benchmarks"
    assert "pip wheel --no-deps" in " ".join(conf["build_command"])


def test_asv_suite_uses_the_one_workload_table(asv_suite):
    assert asv_suite["common"].WORKLOADS is bench.WORKLOADS
    for module in asv_suite.values():
        for obj in vars(module).values():
            if isinstance(obj, type) and getattr(obj, "params", None):
                params = obj.params if isinstance(obj.params[0], list) else [obj.params]
                assert len(params) == len(obj.param_names), obj


def test_asv_setup_skips_undefined_cases_and_missing_torch(asv_suite, monkeypatch):
    training = asv_suite["bench_training"]
    with pytest.raises(NotImplementedError):
        training.TrainingEpoch().setup("compiled", "wide-large float64")
    _no_torch(monkeypatch)
    with pytest.raises(NotImplementedError):
        training.TrainingEpoch().setup("torch", "digits-small float64")
    with pytest.raises(NotImplementedError):
        training.FitMemory().setup("torch", "digits-small float64")
    with pytest.raises(NotImplementedError):
        training.Convergence().setup({}, "torch", "digits-small float64")


def test_bench_threads_option_goes_to_the_workers(monkeypatch, capsys):
    import deepnet_fast
    seen = []
    monkeypatch.setattr(bench, "_measure_case",
                        lambda *a, **k: seen.append((a[5], k["blas"])) or _fake_result(*a))
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "compiled,reference", "--threads", "1", "--no-kernels",
                       "--blas", "scipy"])
    assert status == 0
    assert seen == [(1, ["scipy"])]
    assert deepnet_fast.get_num_threads() is None      # the parent's threads are untouched
    assert "1 thread(s)" in capsys.readouterr().out


def _fake_result(name, dtype, backends, *args):
    rates = {"compiled": 4.0, "reference": 2.0}
    return {"workload": name, "dtype": dtype, "n_samples": 10, "batch_size": 32,
            "samples_per_s": rates, "ratios": {"compiled/reference": 2.0},
            "gflops": {b: 1.0 for b in rates}, "errors": {}}


def test_bench_compares_blas_libraries_in_one_run(monkeypatch, capsys):
    seen = []

    def fake(name, dtype, backends, *args, blas=None):
        seen.append(blas)
        rates = {"compiled[mkl]": 3.0, "compiled[scipy]": 4.0, "reference": 2.0}
        return {"workload": name, "dtype": dtype, "n_samples": 10, "batch_size": 32,
                "samples_per_s": rates, "ratios": {"compiled/reference": 1.5},
                "blas_ratios": {"mkl/best": 0.75, "scipy/best": 1.0},
                "gflops": {b: 1.0 for b in rates}, "errors": {}}

    monkeypatch.setattr(bench, "_measure_case", fake)
    monkeypatch.setattr(bench, "_labels", lambda backends, blas: [
        ("compiled[mkl]", "compiled", "mkl"), ("compiled[scipy]", "compiled", "scipy"),
        ("reference", "reference", None)])
    import deepnet_fast.blas as dblas
    monkeypatch.setattr(dblas, "set_blas", lambda lib="auto": "scipy" if lib == "auto" else lib)
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "compiled,reference", "--no-kernels", "--blas", "mkl,auto"])
    out = capsys.readouterr().out
    assert status == 0
    assert seen == [["mkl", "scipy"]]              # auto resolved once, in the parent
    (row,) = [line for line in out.splitlines() if line.startswith("digits-small")]
    assert row.split()[-2:] == ["0.75", "1.00"]
    assert "mkl/best" in out and "set_blas('auto') chooses scipy" in out


def test_bench_puts_the_first_named_blas_first_even_when_it_is_auto(monkeypatch):
    seen = []

    def fake(name, dtype, backends, *args, blas=None):
        seen.append(blas)
        rates = {"compiled[scipy]": 4.0, "compiled[mkl]": 3.0}
        return {"workload": name, "dtype": dtype, "n_samples": 10, "batch_size": 32,
                "samples_per_s": rates, "ratios": {}, "gflops": {b: 1.0 for b in rates},
                "blas_ratios": {"scipy/best": 1.0, "mkl/best": 0.75}, "errors": {}}

    monkeypatch.setattr(bench, "_measure_case", fake)
    import deepnet_fast.blas as dblas
    monkeypatch.setattr(dblas, "set_blas", lambda lib="auto": "scipy" if lib == "auto" else lib)
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "compiled", "--no-kernels", "--blas", "auto,mkl,scipy"])
    assert status == 0
    # auto's choice (scipy) keeps auto's place: the peers' ratios are computed on it.
    assert seen == [["scipy", "mkl"]]


def test_labels_give_one_compiled_column_per_blas_library():
    assert bench._labels(["compiled", "jax"], ["scipy"]) == [
        ("compiled", "compiled", "scipy"), ("jax", "jax", None)]
    assert bench._labels(["compiled", "jax"], ["mkl", "scipy"]) == [
        ("compiled[mkl]", "compiled", "mkl"), ("compiled[scipy]", "compiled", "scipy"),
        ("jax", "jax", None)]


# ---------------------------------------------------------------- the header


def test_header_names_the_cpu_the_blas_and_its_kernel(capsys):
    import deepnet_fast as dn
    from deepnet_fast.blas import cpu_name
    lines = bench.header_lines(2, warning=False)
    assert lines[0] == f"  CPU: {cpu_name()}, 2 core(s)"
    info = dn.get_blas()
    assert lines[1].startswith(f"  compiled BLAS: {info['library']} ({info['version']}")
    assert "kernel: " in lines[1] and info["how"] in lines[1]


def test_openblas_coretype_warning_names_both_kernels(monkeypatch):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert bench.openblas_warning({"a.so": "Haswell"}, {"a.so": "SkylakeX"}) is None
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    text = bench.openblas_warning({"a.so": "Haswell", "b.so": "Haswell"},
                                  {"a.so": "SkylakeX", "b.so": "SkylakeX"})
    assert text.startswith("warning: OPENBLAS_CORETYPE=Haswell")
    assert "Haswell instead of SkylakeX" in text
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE deepnet-fast bench" in text
    # The variable names the kernel OpenBLAS would pick anyway: nothing to say.
    assert bench.openblas_warning({"a.so": "Haswell"}, {"a.so": "Haswell"}) is None
    # The probe failed: warn without the names.
    assert "kernels not verified" in bench.openblas_warning({"a.so": "Haswell"}, {})


def test_openblas_kernels_of_a_process_without_the_variables():
    here = bench.openblas_kernels()
    natural = bench.openblas_kernels(unset=True)
    assert set(natural) == set(here)
    if "OPENBLAS_CORETYPE" not in os.environ:
        assert natural == here


# ---------------------------------------------------------------- JAX, the peer

TINY = {
    # Three batches of 16 and a remainder of 2; every hidden activation.
    "softmax-tanh": bench.Workload((6, 9, 5, 3), "tanh", "softmax", 50, 16,
                                   ("float32", "float64"), 0.1),
    "softmax-relu": bench.Workload((6, 7, 3), "relu", "softmax", 50, 16,
                                   ("float32", "float64"), 0.1),
    "sigmoid-leaky-full-batch": bench.Workload((6, 8, 1), "leaky_relu", "sigmoid", 50, None,
                                               ("float32", "float64"), 0.5),
}


def _tiny_data(w, dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((w.n_samples, w.layer_dims[0])).astype(dtype)
    y = rng.integers(0, max(2, w.layer_dims[-1]), w.n_samples)
    return X, y


@pytest.mark.parametrize("dtype,rtol", [("float32", 2e-5), ("float64", 1e-11)])
@pytest.mark.parametrize("name", list(TINY))
def test_jax_trainer_follows_the_reference_cost_trajectory(name, dtype, rtol):
    # A wrong peer makes wrong ratios: the same samples, updates and initial
    # parameters must give the reference's costs to rounding.
    pytest.importorskip("jax")
    w = TINY[name]
    X, y = _tiny_data(w, dtype)
    ref = bench.make_trainer("reference", w, X, y, dtype, warmup=False, shuffle=False)
    jx = bench.make_trainer("jax", w, X, y, dtype, warmup=False, shuffle=False)
    costs = {"ref": [ref.cost()], "jax": [jx.cost()]}
    for _ in range(4):
        ref.train(1)
        jx.train(1)
        costs["ref"].append(ref.cost())
        costs["jax"].append(jx.cost())
    assert costs["ref"][-1] < costs["ref"][0]
    np.testing.assert_allclose(costs["jax"], costs["ref"], rtol=rtol)
    P_ref = ref.predict_proba(X)
    np.testing.assert_allclose(jx.predict_proba(X).reshape(P_ref.shape), P_ref,
                               rtol=rtol * 10, atol=rtol)
    assert jx.predict_proba(X).dtype == np.dtype(dtype)


def test_jax_trainer_shuffles_and_learns_a_workload():
    pytest.importorskip("jax")
    X, y = bench.make_data("digits-small", "float32", n_samples=300)
    trainer = bench.make_trainer("jax", "digits-small", X, y, "float32")
    before = trainer.cost()
    trainer.train(3)
    assert trainer.cost() < before
    assert trainer.predict(X).shape == (300,) and trainer.accuracy() > 0.5


def test_missing_jax_is_skipped_with_a_note(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "jax", None)
    assert "JAX is not installed" in bench.backend_unavailable("jax")
    assert bench.backend_unavailable("compiled") is None
    X, y = bench.make_data("digits-small", n_samples=64)
    with pytest.raises(bench.BackendUnavailable, match="JAX is not installed"):
        bench.make_trainer("jax", "digits-small", X, y, "float32")
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--workloads", "digits-small", "--dtypes", "float64",
                       "--backends", "reference,jax", "--repeat", "1", "--no-kernels",
                       "--json", str(path)])
    assert status == 0
    assert "note: jax: skipped: JAX is not installed" in capsys.readouterr().out
    assert set(json.loads(path.read_text())["results"][0]["samples_per_s"]) == {"reference"}


def test_short_epochs_are_timed_in_runs_of_at_least_the_minimum_duration():
    class Trainer:
        calls = []

        def train(self, epochs):
            self.calls.append(epochs)
            time.sleep(0.01 * epochs)

    trainer = Trainer()
    k = bench._epochs_for(trainer, 1)
    assert trainer.calls == [1]                     # one calibration epoch
    assert k >= bench.MIN_MEASUREMENT_SECONDS / 0.01 * 0.5
    assert k <= bench.MIN_MEASUREMENT_SECONDS / 0.01 + 1
    assert bench._epochs_for(trainer, 1000) == 1000  # never fewer than asked for


def test_asv_kernel_vs_numpy_tracks_the_inverse_ratio_of_bench_kernels(asv_suite):
    bench = asv_suite["bench_kernels"].KernelVsNumpy()
    assert bench.unit.startswith("x NumPy's time")
    bench.setup("float32", "tanh", "128x256")
    ratio = bench.track_kernel_time_over_numpy("float32", "tanh", "128x256")
    assert isinstance(ratio, float) and 0 < ratio < 100


def test_asv_epoch_vs_matmul_covers_the_workloads_with_a_matmul_baseline(asv_suite):
    cls = asv_suite["bench_training"].EpochVsMatmul
    assert cls.params == [[w for w, v in bench.WORKLOADS.items() if v.matmul is not None]]
    assert "wide-large" in cls.params[0]


@pytest.mark.parametrize("argv,message", [
    (["--workloads", ""], "--workloads: give at least one name"),
    (["--backends", ","], "--backends: give at least one name"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2**32); got -1"),
    (["--json", "/nonexistent-folder/r.json"], "--json /nonexistent-folder/r.json: not a file"),
])
def test_bench_arguments_are_refused_before_the_run(argv, message):
    args = cli.build_parser().parse_args(["bench", *argv])
    with pytest.raises(ValueError, match=re.escape(message)):
        bench._check_args(args)


def test_a_workload_or_backend_named_twice_runs_once():
    args = cli.build_parser().parse_args(["bench", "--workloads", "digits-small,digits-small",
                                          "--backends", "compiled,compiled,reference"])
    selected, backends, *_ = bench._check_args(args)
    assert selected == [("digits-small", "float32"), ("digits-small", "float64")]
    assert backends == ["compiled", "reference"]


@pytest.mark.parametrize("flag,value", [("--samples", "1"), ("--epochs", "0"),
                                        ("--repeat", "0"), ("--seed", "-2")])
def test_the_dask_benchmark_refuses_counts_out_of_range(flag, value, capsys):
    from deepnet_fast import bench_dask
    with pytest.raises(SystemExit) as exit_:
        bench_dask.main([flag, value])
    assert exit_.value.code == 2 and f"{flag}: expected an integer" in capsys.readouterr().err
