"""The deepnet-fast command line, end to end on bundled data."""

import re
import subprocess
import sys

import numpy as np
import pytest

import deepnet_fast as dn
from deepnet_fast.cli import main


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


@pytest.mark.parametrize("argv,message", [
    (["train", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["train", "--lr", "-1"], "learning_rate must be a finite number > 0"),
    (["train", "--data", "no_such_file.csv"], "--data must be one of"),
])
def test_bad_arguments_give_one_line_error_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.count("\n") == 1


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
