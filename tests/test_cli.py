"""The deepnet-fast command line, end to end on bundled data."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast import registry
from deepnet_fast.cli import main
from deepnet_fast.engines import ENGINES
from deepnet_fast.schedules import SCHEDULES


def test_train_on_digits_prints_cost_accuracy_and_time(capsys, tmp_path):
    model = tmp_path / "m.npz"
    rc = main(["train", "--data", "digits", "--layers", "32", "--epochs", "15", "--lr", "0.1",
               "--save", str(model)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Cost after epoch 0:" in out and "Cost after epoch 14:" in out
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert acc > 0.9
    assert re.search(r"wall time: [0-9.]+ s for 15 epochs", out)
    net = dn.load(model)
    assert net.layer_dims == [64, 32, 10] and net.output_activation == "softmax"


def _test_split(name, seed=0):
    from sklearn.model_selection import train_test_split

    from deepnet_fast.datasets import load_dataset
    X, y, task = load_dataset(name)
    _, Xte, _, yte = train_test_split(X, y, test_size=0.25, random_state=seed,
                                      stratify=y if task == "classification" else None)
    return Xte, yte


@pytest.mark.parametrize("data, output, metric", [
    ("wine", "softmax", "accuracy"), ("breast_cancer", "sigmoid", "accuracy"),
    ("diabetes", "identity", "R\\^2"), ("diabetes", "relu", "R\\^2")])
def test_saved_model_takes_the_data_as_it_is(tmp_path, capsys, data, output, metric):
    # The run standardises features (and regression targets); the saved model
    # must score the raw test split as the run scored its standardised one.
    model = tmp_path / "m.npz"
    assert main(["train", "--data", data, "--output", output, "--layers", "8", "--epochs", "20",
                 "--lr", "0.01", "--quiet", "--backend", "reference", "--save", str(model)]) == 0
    out = capsys.readouterr().out
    printed = float(re.search(rf"test {metric}: ([-0-9.]+)", out).group(1))
    Xte, yte = _test_split(data)
    net = dn.load(model, backend="reference")
    # These datasets' labels are already the class indices 0..k-1.
    assert ("class indices" in out) == (metric == "accuracy")
    assert net.score(Xte, yte) == pytest.approx(printed, abs=6e-5)


@pytest.mark.filterwarnings("error")
def test_saving_a_model_whose_folded_scales_overflow_float32_fails_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 2))
    X[:, 0] *= 1e-42          # standardised to O(1), but 1/scale overflows float32
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 1] > 0).astype(int))
    model = tmp_path / "m.npz"
    fails_in_one_line(capsys, ["--data", str(tmp_path / "d.npz"), "--dtype", "float32",
                               "--backend", "reference", "--epochs", "2", "--quiet",
                               "--save", str(model)], "--save", "float32", "--dtype float64")
    assert not model.exists()


def test_train_binary_and_regression_datasets(capsys):
    assert main(["train", "--data", "breast_cancer", "--epochs", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[30, 64, 32, 1]" in out and "sigmoid" in out
    assert float(re.search(r"test accuracy: ([0-9.]+)", out).group(1)) > 0.85
    assert main(["train", "--data", "diabetes", "--epochs", "5", "--lr", "0.01", "--quiet",
                 "--backend", "reference", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "identity" in out and "test R^2:" in out


def test_train_on_user_csv_and_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = (X[:, 0] > 0).astype(int)
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,label",
               comments="")
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for name in ("d.csv", "d.npz"):
        assert main(["train", "--data", str(tmp_path / name), "--epochs", "30", "--quiet",
                     "--layers", "8"]) == 0
        out = capsys.readouterr().out
        assert "[3, 8, 1]" in out
        assert float(re.search(r"test accuracy: ([0-9.]+)", out).group(1)) > 0.8


def test_console_script_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "deepnet_fast", "train", "--epochs", "2",
                           "--quiet", "--layers", "8"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout


def test_plot_option_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    assert main(["train", "--epochs", "3", "--quiet", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- failures: one line, status 2


def fails_in_one_line(capsys, argv, *fragments):
    """Run ``deepnet-fast train argv``; check exit status 2 and one line on
    stderr holding every fragment; return (stdout, stderr)."""
    rc = main(["train", *argv])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith("deepnet-fast")
    for fragment in fragments:
        assert fragment in err, err
    return out, err


def assert_not_trained(out):
    assert "network:" not in out and "Cost after" not in out


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    return X, (X[:, 0] > 0).astype(int)


@pytest.fixture
def good_npz(tmp_path, binary_data):
    path = tmp_path / "good.npz"
    np.savez(path, X=binary_data[0], y=binary_data[1])
    return path


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1; got '0'"),
    (["--lr", "-1"], "argument --learning-rate/--lr: must be a finite number > 0"),
    (["--lr", "nan"], "must be a finite number > 0; got 'nan'"),
    (["--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
    (["--layers", "0"], "hidden layer sizes must be positive integers"),
    (["--keep-prob", "0"], "argument --keep-prob: must be a finite number > 0 and <= 1"),
    (["--validation-split", "1"], "argument --validation-split: must be a finite number >= 0 and < 1"),
    (["--patience", "0"], "argument --patience: must be an integer >= 1"),
    (["--lr-schedule", "cosine"], "argument --lr-schedule: invalid choice: 'cosine'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--data", "no_such_file.csv"], "--data must be one of"),
])
def test_bad_arguments_give_one_line_error_and_exit_2(argv, message, capsys):
    out, _ = fails_in_one_line(capsys, argv, message)
    assert_not_trained(out)


def test_missing_command_is_one_line(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required" in err


def test_save_onto_an_existing_directory_fails_before_training(tmp_path, good_npz, capsys):
    out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), "--save", str(tmp_path)],
                               "--save", "is a directory")
    assert_not_trained(out)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_save_onto_a_fifo_fails_before_training(tmp_path, good_npz, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), "--save", str(fifo)],
                               "--save", "is not a regular file")
    assert_not_trained(out)


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_output_under_a_regular_file_fails_before_training(option, tmp_path, good_npz, capsys):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    target = tmp_path / "good.npz" / ("out.png" if option == "--plot" else "m.npz")
    out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), option, str(target)],
                               option, "Not a directory")
    assert_not_trained(out)


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_output_into_a_missing_directory_fails_before_training(option, tmp_path, good_npz, capsys):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    target = tmp_path / "no_such_dir" / ("out.png" if option == "--plot" else "m.npz")
    out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), option, str(target)], option)
    assert_not_trained(out)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write into a read-only directory")
@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_output_into_an_unwritable_directory_fails_before_training(option, tmp_path, good_npz,
                                                                   capsys):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), option,
                                            str(folder / "out.png")], option, "ermission denied")
    finally:
        folder.chmod(0o700)
    assert_not_trained(out)


def test_output_check_reports_permission_denied(monkeypatch, tmp_path, good_npz, capsys):
    # The same failure as above for root, who may write anywhere.
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("deepnet_fast.cli.tempfile.mkstemp", denied)
    out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), "--save",
                                        str(tmp_path / "m.npz")], "--save", "Permission denied")
    assert_not_trained(out)


def test_plot_with_an_unknown_file_type_fails_before_training(tmp_path, good_npz, capsys):
    pytest.importorskip("matplotlib")
    out, _ = fails_in_one_line(capsys, ["--data", str(good_npz), "--plot",
                                        str(tmp_path / "curves.xyz")], "--plot", ".png")
    assert_not_trained(out)


def test_target_column_out_of_range(tmp_path, binary_data, capsys):
    X, y = binary_data
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",")
    fails_in_one_line(capsys, ["--data", str(path), "--target-column", "99"],
                      "--target-column 99", "4 columns")


def test_truncated_npz(tmp_path, good_npz, capsys):
    path = tmp_path / "truncated.npz"
    path.write_bytes(good_npz.read_bytes()[:300])
    fails_in_one_line(capsys, ["--data", str(path)], "truncated.npz")


def test_npz_of_python_objects(tmp_path, capsys):
    path = tmp_path / "objects.npz"
    np.savez(path, X=np.array([[1, 2], [3, 4]], dtype=object), y=np.array([0, 1]))
    fails_in_one_line(capsys, ["--data", str(path)], "objects.npz: its array 'X' holds Python "
                      "objects", "X=X.astype(float)")


def test_npz_of_python_object_labels_names_the_array_and_the_fix(tmp_path, capsys):
    path = tmp_path / "labels.npz"
    np.savez(path, X=np.zeros((4, 2)), y=np.array(["a", "b", "a", "b"], dtype=object))
    fails_in_one_line(capsys, ["--data", str(path)], "labels.npz: its array 'y' holds Python "
                      "objects (dtype object)", "np.savez(path, ..., y=y.astype(str))")


def test_npz_without_X_and_y(tmp_path, capsys):
    path = tmp_path / "other.npz"
    np.savez(path, features=np.zeros((4, 2)))
    fails_in_one_line(capsys, ["--data", str(path)], "must contain arrays 'X' and 'y'")


def test_data_naming_a_directory(tmp_path, capsys):
    fails_in_one_line(capsys, ["--data", str(tmp_path)], "is a directory")


def test_complex_features_are_refused(tmp_path, binary_data, capsys):
    X, y = binary_data
    path = tmp_path / "complex.npz"
    np.savez(path, X=X + 1j * X, y=y)
    out, _ = fails_in_one_line(capsys, ["--data", str(path)], "complex")
    assert_not_trained(out)


def test_one_dimensional_features_are_refused(tmp_path, binary_data, capsys):
    X, y = binary_data
    path = tmp_path / "flat.npz"
    np.savez(path, X=X[:, 0], y=y)
    fails_in_one_line(capsys, ["--data", str(path)], "2-D", "reshape(-1, 1)")


def test_mismatched_sample_counts(tmp_path, binary_data, capsys):
    X, y = binary_data
    path = tmp_path / "short.npz"
    np.savez(path, X=X, y=y[:-1])
    fails_in_one_line(capsys, ["--data", str(path)], "120 samples", "119 targets")


def test_nan_features_are_refused(tmp_path, binary_data, capsys):
    X, y = binary_data
    X = X.copy()
    X[5, 1] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, X=X, y=y)
    fails_in_one_line(capsys, ["--data", str(path)], "NaN")


@pytest.mark.parametrize("text,message", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("a,b,label\n", "header row but no data rows"),
    ("1,2,0\n3,4\n5,6,1\n", "rectangular"),
    ("a,b,label\n1\n", "rectangular"),
    ("a,b,label\n1,2,cat\n3\n", "rectangular"),
    ("a,b,label\n1,x,0\n3,4,1\n", "not a CSV file of numbers"),
])
def test_malformed_csv(text, message, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    fails_in_one_line(capsys, ["--data", str(path)], message)


def test_single_class_is_refused(tmp_path, capsys):
    path = tmp_path / "one.npz"
    np.savez(path, X=np.random.default_rng(0).standard_normal((20, 2)), y=np.ones(20, int))
    fails_in_one_line(capsys, ["--data", str(path)], "same label")


def test_divergence_is_one_line_and_the_last_finite_model_is_saved(tmp_path, capsys):
    model = tmp_path / "diverged.npz"
    fails_in_one_line(capsys, ["--lr", "1e10", "--epochs", "5", "--layers", "16", "--quiet",
                               "--save", str(model)], "diverged", str(model))
    net = dn.load(model)
    assert net.layer_dims == [64, 16, 10]
    assert all(np.all(np.isfinite(p)) for p in net.parameters.values())


def test_divergence_without_save_is_one_line(capsys):
    _, err = fails_in_one_line(capsys, ["--lr", "1e10", "--epochs", "5", "--layers", "16",
                                        "--quiet"], "diverged", "--lr")
    assert "Saved" not in err


# ---------------------------------------------------------------- string labels


def test_string_labels_are_encoded(tmp_path, binary_data, capsys):
    X, y = binary_data
    names = np.where(y == 1, "cat", "dog")
    np.savez(tmp_path / "s.npz", X=X, y=names)
    with open(tmp_path / "s.csv", "w") as fh:
        fh.write("a,b,c,animal\n")
        for row, name in zip(X, names):
            fh.write(",".join(f"{v:.6f}" for v in row) + f", {name}\n")
    with open(tmp_path / "first.csv", "w") as fh:  # no header, target first
        for row, name in zip(X, names):
            fh.write(f'"{name}",' + ",".join(f"{v:.6f}" for v in row) + "\n")
    for name, extra in (("s.npz", []), ("s.csv", []), ("first.csv", ["--target-column", "0"])):
        rc = main(["train", "--data", str(tmp_path / name), "--epochs", "30", "--quiet",
                   "--layers", "8", *extra])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert "[3, 8, 1]" in out and "classes: cat, dog" in out
        assert float(re.search(r"test accuracy: ([0-9.]+)", out).group(1)) > 0.8


def test_three_string_classes_train_a_softmax(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 2))
    y = np.array(["red", "green", "blue"])[np.argmax(np.column_stack([X[:, 0], X[:, 1], -X.sum(1)]), 1)]
    np.savez(tmp_path / "c.npz", X=X, y=y)
    assert main(["train", "--data", str(tmp_path / "c.npz"), "--epochs", "40", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "softmax" in out and "classes: blue, green, red" in out


# ---------------------------------------------------------------- options of issue 18


def test_choices_come_from_the_registries(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option, names in (("--activation", registry.HIDDEN_ACTIVATIONS),
                          ("--output", ["auto", *registry.OUTPUT_HEADS]),
                          ("--optimizer", registry.OPTIMIZERS), ("--init", registry.INITIALIZERS),
                          ("--backend", ENGINES), ("--lr-schedule", SCHEDULES)):
        assert f"{option} {{{','.join(names)}}}" in text
    for option in ("--keep-prob", "--negative-slope", "--validation-split", "--early-stopping",
                   "--patience"):
        assert option in text


def test_training_options_reach_deepnet(monkeypatch, capsys):
    seen = {}
    init, fit = dn.DeepNet.__init__, dn.DeepNet.fit

    def spy_init(self, *args, **kwargs):
        seen["negative_slope"] = kwargs.get("negative_slope")
        init(self, *args, **kwargs)

    def spy_fit(self, X, y, **kwargs):
        seen.update(kwargs)
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(dn.DeepNet, "__init__", spy_init)
    monkeypatch.setattr(dn.DeepNet, "fit", spy_fit)
    assert main(["train", "--epochs", "3", "--quiet", "--layers", "8", "--activation", "leaky_relu",
                 "--negative-slope", "0.2", "--keep-prob", "0.8", "--lr-schedule", "exponential",
                 "--validation-split", "0.2", "--early-stopping", "--patience", "4"]) == 0
    assert seen["negative_slope"] == 0.2
    assert seen["keep_prob"] == 0.8 and seen["lr_schedule"] == "exponential"
    assert seen["validation_split"] == 0.2
    assert seen["early_stopping"] is True and seen["patience"] == 4
    out = capsys.readouterr().out
    assert "keep_prob=0.8" in out and "lr_schedule=exponential" in out
    assert re.search(r"validation cost: [0-9.]+", out)
    assert float(re.search(r"validation accuracy: ([0-9.]+)", out).group(1)) > 0.5


def test_validation_r2_for_regression(capsys):
    assert main(["train", "--data", "diabetes", "--epochs", "3", "--lr", "0.01", "--quiet",
                 "--validation-split", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "validation R^2:" in out and "validation cost:" in out


def test_early_stopping_reports_the_epoch_it_keeps(capsys):
    # A learning rate this large stalls the validation cost quickly.
    assert main(["train", "--epochs", "200", "--quiet", "--layers", "8", "--lr", "2",
                 "--validation-split", "0.2", "--early-stopping", "--patience", "2"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"early stopping in epoch (\d+): the model holds epoch (\d+)", out)
    assert match and int(match.group(2)) < int(match.group(1)) < 199


def test_relu_output_trains_on_non_negative_regression_targets(capsys):
    # Standardising would centre diabetes' targets below zero, out of relu's range.
    assert main(["train", "--data", "diabetes", "--epochs", "3", "--lr", "0.01", "--quiet",
                 "--output", "relu"]) == 0
    assert "relu" in capsys.readouterr().out


def test_relu_output_refuses_a_negative_target_wherever_the_split_puts_it(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    y = np.abs(X[:, 0]) + 0.1
    y[17] = -2.5
    np.savez(tmp_path / "r.npz", X=X, y=y)
    for seed in range(4):
        fails_in_one_line(capsys, ["--data", str(tmp_path / "r.npz"), "--output", "relu",
                                   "--seed", str(seed), "--epochs", "2"],
                          "--output relu needs non-negative targets", "from -2.5")


def test_a_class_the_split_leaves_out_of_training_keeps_its_output_unit(monkeypatch, tmp_path,
                                                                          capsys):
    import sklearn.model_selection
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = np.array(["a", "b"] * 29 + ["c", "c"])
    np.savez(tmp_path / "c.npz", X=X, y=y)

    def split_c_into_test(X, y, **kwargs):
        test = np.arange(len(y)) >= 50                   # holds both "c"
        return X[~test], X[test], y[~test], y[test]
    monkeypatch.setattr(sklearn.model_selection, "train_test_split", split_c_into_test)
    assert main(["train", "--data", str(tmp_path / "c.npz"), "--epochs", "2", "--quiet",
                 "--layers", "4"]) == 0
    out = capsys.readouterr().out
    assert "classes: a, b, c" in out and "[2, 4, 3]" in out
    assert re.search(r"test accuracy: [0-9.]+", out)


def test_relu_output_is_scored_by_r2(capsys):
    # relu is a regression head like identity: its score is R², not accuracy.
    assert main(["train", "--data", "diabetes", "--epochs", "3", "--lr", "0.01", "--quiet",
                 "--output", "relu", "--validation-split", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" not in out
    assert "train R^2:" in out and "validation R^2:" in out and "test R^2:" in out


@pytest.mark.parametrize("data,output,message", [
    ("digits", "sigmoid", "--output sigmoid separates two classes; --data digits has 10"),
    ("digits", "identity", "--output identity is a regression output; --data digits is a "
                           "classification"),
    ("iris", "relu", "--output relu is a regression output"),
    ("diabetes", "sigmoid", "--output sigmoid is a classification output; --data diabetes is "
                            "a regression"),
    ("diabetes", "softmax", "--output softmax is a classification output"),
])
def test_an_output_that_does_not_fit_the_task_is_refused_before_training(data, output, message,
                                                                        capsys):
    assert main(["train", "--data", data, "--output", output, "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_softmax_output_on_two_classes_has_a_unit_per_class(capsys):
    assert main(["train", "--data", "breast_cancer", "--output", "softmax", "--epochs", "2",
                 "--quiet"]) == 0
    assert "network: [30, 64, 32, 2]" in capsys.readouterr().out


def test_seed_beyond_32_bits_and_a_stray_target_column_are_refused(capsys):
    assert main(["train", "--seed", str(2**32), "--epochs", "1"]) == 2
    assert "--seed: must be an integer >= 0 and <= 4294967295" in capsys.readouterr().err
    assert main(["train", "--data", "iris", "--target-column", "2", "--epochs", "1"]) == 2
    assert "--target-column applies to a .csv file; --data iris" in capsys.readouterr().err


def test_a_file_that_is_not_an_npz_archive_is_named_so(tmp_path, capsys):
    path = tmp_path / "notzip.npz"
    path.write_text("just text\n")
    assert main(["train", "--data", str(path), "--epochs", "1"]) == 2
    assert "it is not a .npz archive" in capsys.readouterr().err


def test_a_batch_larger_than_the_training_samples_names_the_flags(capsys):
    assert main(["train", "--data", "iris", "--validation-split", "0.99", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size 32 is more than the 1 training samples left after --validation-split " \
           "0.99" in err


def test_an_empty_label_in_a_csv_is_named(tmp_path, capsys):
    path = tmp_path / "e.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,\n5,6,y\n7,8,x\n1,1,y\n")
    fails_in_one_line(capsys, ["--data", str(path)], "1 empty label", "sample 1")


@pytest.mark.parametrize("size, which", [("0.99", "train_size"), ("0.001", "test_size")])
def test_a_test_size_leaving_too_few_samples_names_the_flag(capsys, size, which):
    fails_in_one_line(capsys, ["--data", "iris", "--test-size", size],
                      f"--test-size {size} on 150 samples", which)


# ---------------------------------------------------------------- CSV edge cases (session 19)

def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


def test_a_first_data_row_with_a_missing_value_is_refused_not_taken_for_a_header(tmp_path,
                                                                                  capsys):
    rows = "1,,0\n" + "".join(f"{i},{i + 1},{i % 2}\n" for i in range(2, 40))
    fails_in_one_line(capsys, ["--data", _write(tmp_path / "m.csv", rows)],
                      "is not a CSV file of numbers", "could not convert string '' to float64 "
                      "at row 0")


def test_hashes_inside_values_are_data_and_comment_lines_are_skipped(tmp_path, capsys):
    labels = ["C#", "C", "F#", "F"] * 16
    lines = [f"{i},{i % 7},{lab}\n" for i, lab in enumerate(labels)]
    text = ("# exported by a tool\n   # an indented comment\nx,y,chord\n"
            + "".join(lines[:5]) + "   \n\t\n" + "".join(lines[5:]))
    assert main(["train", "--data", _write(tmp_path / "h.csv", text), "--epochs", "2",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "classes: C, C#, F, F#" in out and "train 48 / test 16 samples" in out


@pytest.mark.parametrize("name,content,message", [
    ("late.csv", ("".join(f"{i},{i},{i % 2}\n" for i in range(500)) + "1,2,caf\xe9\n")
     .encode("latin-1"), "is not a text (UTF-8) CSV file"),
    ("field.csv", "1,2," + "a" * 200_000 + "\n3,4,b\n", "is not a CSV file: field larger"),
    ("quote.csv", '1,2,"cat\n3,4,dog\n5,6,cat\n', "has a label spanning several lines"),
])
def test_malformed_csv_files_fail_in_one_line(name, content, message, tmp_path, capsys):
    fails_in_one_line(capsys, ["--data", _write(tmp_path / name, content)], message)


@pytest.mark.parametrize("column", [1.5, None, True])
def test_load_dataset_refuses_a_target_column_that_is_not_an_integer(column, tmp_path):
    from deepnet_fast.datasets import load_dataset
    path = _write(tmp_path / "d.csv", "1,2,0\n3,4,1\n")
    with pytest.raises(TypeError, match="target_column must be an integer"):
        load_dataset(path, target_column=column)
