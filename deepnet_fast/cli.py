"""The ``deepnet-fast`` command: ``train`` a network on a dataset, ``bench`` the backends,
``compile`` the kernels ahead of time.

Every failure is one line on stderr and exit status 2. The output files
(``--save``, ``--plot``) are checked before training starts, and a run that
diverges still saves the model of its last finite epoch.
"""

import argparse
import copy
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np

from . import compilation, registry
from ._validation import FLOAT_DTYPE_NAMES
from .engines import ENGINES
from .schedules import SCHEDULES

DTYPES = FLOAT_DTYPE_NAMES[::-1]    # float64 first: train's default, compiled first


class CommandLineError(Exception):
    """A failure reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block) that :func:`main`
    turns into exit status 2 instead of ``sys.exit``."""

    def error(self, message):
        raise CommandLineError(f"{self.prog}: error: {_one_line(message)} "
                               f"(see {self.prog} --help)")


# ---------------------------------------------------------------- argument types

def _layer_sizes(text):
    try:
        sizes = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hidden layer sizes like '64,32'; got {text!r}")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"hidden layer sizes must be positive integers; got {text!r}")
    return sizes


def _dtypes(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in DTYPES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected {' or '.join(DTYPES)}, comma-separated; "
                                         f"got {text!r}")
    return list(dict.fromkeys(names))


def _integer(low=None, high=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or (low is not None and value < low) or (
                high is not None and value > high):
            bound = "" if low is None else f" >= {low}"
            bound += "" if high is None else f"{' and' if bound else ''} <= {high}"
            raise argparse.ArgumentTypeError(f"must be an integer{bound}; got {text!r}")
        return value
    parse.__name__ = "integer"
    return parse


def _real(low=None, high=None, low_open=False, high_open=False):
    """A finite float in the given interval (argparse type)."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = "a finite number" + (" " + " and ".join(bounds) if bounds else "")

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


def build_parser():
    parser = _Parser(
        prog="deepnet-fast",
        description="Train fully connected deep networks on the CPU with Numba-compiled kernels.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network and report cost, accuracy and time",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", default="digits",
                   help="bundled dataset (digits, breast_cancer, iris, wine, diabetes) or a .csv/.npz "
                        "file (.npz: arrays X and y; class labels may be numbers or text)")
    t.add_argument("--target-column", type=int, default=-1, help="target column of a CSV file")
    t.add_argument("--layers", type=_layer_sizes, default=[64, 32], help="hidden layer sizes, e.g. 64,32")
    t.add_argument("--activation", choices=list(registry.HIDDEN_ACTIVATIONS), default="relu",
                   help="hidden activation")
    t.add_argument("--negative-slope", type=_real(low=0.0), default=0.01,
                   help="slope of leaky_relu for negative inputs")
    t.add_argument("--output", choices=["auto", *registry.OUTPUT_HEADS], default="auto",
                   help="output activation (auto: from the targets)")
    t.add_argument("--init", choices=list(registry.INITIALIZERS), default="he",
                   help="weight initialisation")
    t.add_argument("--optimizer", choices=list(registry.OPTIMIZERS), default="gd",
                   help="update rule")
    t.add_argument("--learning-rate", "--lr", type=_real(low=0.0, low_open=True), default=0.1,
                   help="initial learning rate")
    t.add_argument("--lr-schedule", choices=list(SCHEDULES), default="constant",
                   help="learning-rate schedule (deepnet_fast.schedules, default settings)")
    t.add_argument("--epochs", type=_integer(low=1), default=100, help="passes over the data")
    t.add_argument("--batch-size", type=_integer(low=0), default=32, help="0 for full batch")
    t.add_argument("--l2", type=_real(low=0.0), default=0.0, help="L2 regularisation lambda")
    t.add_argument("--keep-prob", type=_real(low=0.0, high=1.0, low_open=True), default=1.0,
                   help="dropout keep probability of hidden units (1: no dropout)")
    t.add_argument("--test-size", type=_real(low=0.0, high=1.0, low_open=True, high_open=True),
                   default=0.25, help="fraction of the samples held out for the test score")
    t.add_argument("--validation-split", type=_real(low=0.0, high=1.0, high_open=True),
                   default=0.0, help="fraction of the training samples held out for validation")
    t.add_argument("--early-stopping", action="store_true",
                   help="stop when the validation cost (the training cost without "
                        "--validation-split) stops improving, and keep the best epoch")
    t.add_argument("--patience", type=_integer(low=1), default=10,
                   help="epochs without improvement before early stopping")
    # scikit-learn's split takes 32-bit seeds.
    t.add_argument("--seed", type=_integer(low=0, high=2**32 - 1), default=0,
                   help="seeds the split, the initial weights and the shuffling")
    t.add_argument("--dtype", choices=DTYPES, default="float64", help="floating-point type")
    t.add_argument("--backend", choices=list(ENGINES), default="compiled",
                   help="compiled kernels, or the NumPy reference")
    t.add_argument("--save", metavar="PATH", help="save the trained model (.npz)")
    t.add_argument("--plot", metavar="PNG", help="save the learning curves (needs matplotlib)")
    t.add_argument("--quiet", action="store_true", help="only the final summary")

    c = sub.add_parser("compile", help="compile every kernel into Numba's cache now (for Docker "
                                       "images and cluster workers), not on the first fit",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--dtype", type=_dtypes, default=list(DTYPES),
                   help="floating-point types, comma-separated")
    c.add_argument("--threaded", action=argparse.BooleanOptionalAction, default=True,
                   help="also the threaded kernels that large networks use on several cores")
    c.add_argument("--kind", action="append", choices=compilation.KINDS, default=None,
                   help="only this kernel (repeat for several; default: all)")

    b = sub.add_parser("bench", help="samples/s of each backend on the standard workloads")
    try:
        from .bench import add_arguments
    except ImportError:  # pragma: no cover - bench module absent
        add_arguments = None
    if add_arguments is not None:
        add_arguments(b)
    return parser


# ---------------------------------------------------------------- output files

def _check_output(path, option):
    """Fail now, before training, if ``path`` cannot be written."""
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise CommandLineError(f"{option} {path}: is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, probe = tempfile.mkstemp(prefix=".deepnet_fast-", suffix=".probe", dir=folder)
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise CommandLineError(f"{option} {path}: cannot write into {folder}: {reason}") from None
    os.close(fd)
    os.unlink(probe)


def _check_plot(path):
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CommandLineError('--plot needs matplotlib: pip install "deepnet-fast[plot]"') from None
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    if suffix not in formats:
        raise CommandLineError(f"--plot {path}: the file name must end in one of "
                               f"{', '.join('.' + f for f in formats)}")
    _check_output(path, "--plot")


def _plot(history, path):
    fig = history.plot(path)
    import matplotlib.pyplot as plt
    plt.close(fig)


# ---------------------------------------------------------------- train

def _classification_output(args, n_classes):
    """``(output activation, output units)`` of ``--output`` for ``n_classes``
    classes: sigmoid has one unit (two classes), softmax one per class."""
    output = args.output
    if output == "auto":
        output = "sigmoid" if n_classes == 2 else "softmax"
    if registry.OUTPUT_HEADS[output].score_name == "r2":
        raise CommandLineError(f"--output {output} is a regression output; --data {args.data} is "
                               f"a classification (use sigmoid, softmax or auto)")
    if output == "sigmoid" and n_classes > 2:
        raise CommandLineError(f"--output sigmoid separates two classes; --data {args.data} has "
                               f"{n_classes} (use softmax or auto)")
    return output, 1 if output == "sigmoid" else n_classes


def train(args):
    if args.save:
        _check_output(args.save, "--save")
        from .serialization import target_mode
        try:
            target_mode(args.save)
        except ValueError as exc:
            raise CommandLineError(f"--save {args.save}: {exc}") from None
    if args.plot:
        _check_plot(args.plot)
        if args.save and os.path.abspath(args.save) == os.path.abspath(args.plot):
            raise CommandLineError("--save and --plot name the same file")
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .datasets import load_dataset
    from .exceptions import DivergenceError
    from .network import DeepNet

    X, y, task = load_dataset(args.data, args.target_column)
    if task == "classification" and len(np.unique(y)) < 2:
        raise CommandLineError(f"--data {args.data}: every sample has the same label "
                               f"({np.unique(y)[0]}); a classification needs two classes or more")
    stratify = y if task == "classification" else None
    try:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=args.test_size,
                                              random_state=args.seed, stratify=stratify)
    except ValueError as exc:
        # scikit-learn's words, on the flag that set the sizes
        raise CommandLineError(f"--test-size {args.test_size:g} on {X.shape[0]} samples: "
                               f"{_one_line(exc)}") from None
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    classes, target_scale = None, None
    if task == "classification":
        # Labels (numbers or text) become class indices 0..k-1, the classes
        # of all the data: a class may fall in the test split only.
        classes = np.unique(y)
        ytr, yte = np.searchsorted(classes, ytr), np.searchsorted(classes, yte)
        output, n_out = _classification_output(args, len(classes))
    else:
        n_out = 1
        output = args.output if args.output != "auto" else "identity"
        if registry.OUTPUT_HEADS[output].score_name != "r2":
            raise CommandLineError(f"--output {output} is a classification output; --data "
                                   f"{args.data} is a regression (use identity, relu or auto)")
        if output == "relu" and np.min(y) < 0:
            raise CommandLineError(f"--output relu needs non-negative targets; --data {args.data} "
                                   f"has targets from {np.min(y):g} (use identity or auto)")
        # Centring would push targets below a head's lower bound (relu: y >= 0):
        # such targets are only scaled.
        bounded = registry.OUTPUT_HEADS[output].target_range is not None
        mu = 0.0 if bounded else ytr.mean()
        sd = ytr.std() or 1.0
        ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
        target_scale = (mu, sd)
    # The same count as the fit's validation split, so that the message names the flags.
    n_train = Xtr.shape[0] - int(round(args.validation_split * Xtr.shape[0]))
    if args.batch_size > n_train:
        held = f" after --validation-split {args.validation_split:g}" if args.validation_split else ""
        raise CommandLineError(f"--batch-size {args.batch_size} is more than the {n_train} "
                               f"training samples left{held} (0 trains on full batches)")
    dims = [X.shape[1], *args.layers, n_out]
    net = DeepNet(dims, args.activation, output, init=args.init, seed=args.seed, dtype=args.dtype,
                  backend=args.backend, negative_slope=args.negative_slope)

    print(f"data: {args.data}  train {Xtr.shape[0]} / test {Xte.shape[0]} samples, "
          f"{X.shape[1]} features, {task}")
    if classes is not None and classes.dtype.kind == "U":
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        print(f"classes: {shown}")
    extras = ""
    if args.activation == "leaky_relu":
        extras += f"  negative_slope={args.negative_slope:g}"
    if args.lr_schedule != "constant":
        extras += f"  lr_schedule={args.lr_schedule}"
    if args.l2:
        extras += f"  l2={args.l2:g}"
    if args.keep_prob < 1:
        extras += f"  keep_prob={args.keep_prob:g}"
    if args.validation_split:
        extras += f"  validation_split={args.validation_split:g}"
    if args.early_stopping:
        extras += f"  early_stopping(patience={args.patience})"
    print(f"network: {dims}  {args.activation}/{output}  {args.dtype}  backend={args.backend}  "
          f"optimizer={args.optimizer}  lr={args.learning_rate:g}  batch={args.batch_size or 'full'}"
          f"{extras}")

    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), compilation.announcing():
            # Ctrl-C: reported below in one line, and the model is kept.
            warnings.filterwarnings("ignore", message="training interrupted", category=RuntimeWarning)
            history = net.fit(Xtr, ytr, epochs=args.epochs, learning_rate=args.learning_rate,
                              batch_size=args.batch_size or None, optimizer=args.optimizer,
                              l2=args.l2, keep_prob=args.keep_prob, lr_schedule=args.lr_schedule,
                              validation_split=args.validation_split,
                              early_stopping=args.early_stopping, patience=args.patience,
                              verbose=0 if args.quiet else 1)
    except DivergenceError as exc:
        raise CommandLineError(_diverged(exc, net, args, scaler, target_scale)) from None
    seconds = time.perf_counter() - start

    score_name = net.head.score_name
    metric = {"r2": "R^2"}.get(score_name, score_name)
    if history.interrupted:
        print(f"interrupted: the model holds the {len(history)} complete epoch(s)")
    if len(history):
        print(f"final cost: {history.cost[-1]:.6f}")
    if history.stopped_epoch is not None:
        print(f"early stopping in epoch {history.stopped_epoch}: the model holds epoch "
              f"{history.best_epoch}, the best")
    held = -1 if history.best_epoch is None else history.best_epoch
    if history.val_cost:
        print(f"validation cost: {history.val_cost[held]:.6f}")
    print(f"train {metric}: {net.score(Xtr, ytr):.4f}")
    val_metric = history.metrics.get(f"val_{score_name}")
    if val_metric:
        print(f"validation {metric}: {val_metric[held]:.4f}")
    print(f"test {metric}: {net.score(Xte, yte):.4f}")
    how = ("on the NumPy reference while the kernels compiled"
           if history.backend == "reference" != args.backend
           else "compile included")
    print(f"wall time: {seconds:.2f} s for {len(history)} epochs "
          f"({len(history) * Xtr.shape[0] / seconds:,.0f} samples/s, {how})")
    if args.save:
        _save(net, args.save, scaler, target_scale)
        takes = "the data's features" + (", predicts class indices 0..k-1 of the sorted labels"
                                         if classes is not None else "")
        print(f"model saved to {args.save} (takes {takes})")
    if args.plot and len(history):
        try:
            _plot(history, args.plot)
        except (OSError, ValueError, RuntimeError) as exc:
            saved = f" (the model was saved to {args.save})" if args.save else ""
            raise CommandLineError(f"--plot {args.plot}: {_one_line(exc)}{saved}") from None
        print(f"learning curves saved to {args.plot}")
    return 0


def _raw_data_parameters(parameters, scaler, target_scale):
    """``parameters`` with the run's preprocessing folded in: the first layer
    standardises the features itself, and (regression) the last one returns
    targets in the data's units, so that a saved model takes the data as it is."""
    out = {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()}
    L = len(out) // 2
    # W1 (x - mean) / scale + b1 = (W1 / scale) x + (b1 - (W1 / scale) mean)
    W1 = out["W1"] / scaler.scale_
    out["W1"], out["b1"] = W1, out["b1"] - (W1 @ scaler.mean_)[:, None]
    if target_scale is not None:
        # sd * g(z) + mu = g(sd * z) + mu for identity, and for relu (mu = 0, sd > 0)
        mu, sd = target_scale
        out[f"W{L}"], out[f"b{L}"] = sd * out[f"W{L}"], sd * out[f"b{L}"] + mu
    return out


def _save(net, path, scaler, target_scale):
    """Save ``net`` as a model of the data's own features and targets."""
    saved = copy.deepcopy(net)
    try:
        saved.set_parameters(_raw_data_parameters(net.parameters, scaler, target_scale))
    except ValueError:
        raise CommandLineError(f"--save {path}: the features' scales do not fit "
                               f"{net.dtype.name} once folded into the first layer (standardise "
                               "the data first, or use --dtype float64)") from None
    saved.save(path)


def _diverged(exc, net, args, scaler, target_scale):
    """The one-line report of a diverged run, after saving what can be saved."""
    message = _one_line(exc)
    cut = message.find(" The model holds")
    if cut > 0:
        message = message[:cut]
    message = message.replace("learning_rate=", "--lr ")
    kept, notes = [], []
    if args.save:
        try:
            # DeepNet keeps the parameters of the last finite epoch
            _save(net, args.save, scaler, target_scale)
            kept.append(f"the model of the last finite epoch to {args.save}")
        except OSError as err:
            notes.append(f"Could not save the model to {args.save}: "
                         f"{err.strerror or _one_line(err)}.")
        except CommandLineError as err:
            notes.append(f"Could not save the model: {err}.")
    history = net.history_
    if args.plot and history is not None and len(history):
        try:
            _plot(history, args.plot)
            kept.append(f"the learning curves of the finite epochs to {args.plot}")
        except (OSError, ValueError, RuntimeError) as err:
            notes.append(f"Could not write {args.plot}: {_one_line(err)}.")
    if kept:
        notes.insert(0, f"Saved {' and '.join(kept)}.")
    return " ".join([message, *notes])


# ---------------------------------------------------------------- entry point

def main(argv=None):
    """Entry point of ``deepnet-fast``; returns the exit status.

    ``--help`` exits through ``SystemExit(0)`` as usual; every failure prints
    one line on stderr and returns 2 (130 on Ctrl-C).
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "train":
            return train(args)
        if args.command == "compile":
            from .ahead import compile_ahead
            compile_ahead(args.dtype, args.threaded, kinds=args.kind)
            return 0
        from .bench import run
        return run(args)
    except CommandLineError as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.filename is not None and exc.strerror:
            _fail(f"deepnet-fast: error: {exc.filename}: {exc.strerror}")
        else:
            _fail(f"deepnet-fast: error: {_one_line(exc)}")
    except (ValueError, TypeError, ImportError, ArithmeticError) as exc:
        _fail(f"deepnet-fast: error: {_one_line(exc)}")
    except KeyboardInterrupt:
        print("deepnet-fast: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("DEEPNET_FAST_TRACEBACK"):
            raise
        _fail(f"deepnet-fast: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set DEEPNET_FAST_TRACEBACK=1 for the traceback, and please report it)")
    return 2


def _fail(message):
    print(message if message.startswith("deepnet-fast") else f"deepnet-fast: error: {message}",
          file=sys.stderr)


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
