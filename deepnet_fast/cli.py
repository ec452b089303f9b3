"""The ``deepnet-fast`` command: ``train`` a network on a dataset, ``bench`` the backends."""

import argparse
import sys
import time

import numpy as np

from ._validation import HIDDEN_ACTIVATIONS, OPTIMIZERS


def _layer_sizes(text):
    try:
        sizes = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hidden layer sizes like '64,32'; got {text!r}")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"hidden layer sizes must be positive integers; got {text!r}")
    return sizes


def build_parser():
    parser = argparse.ArgumentParser(
        prog="deepnet-fast",
        description="Train fully connected deep networks on the CPU with Numba-compiled kernels.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network and report cost, accuracy and time",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", default="digits",
                   help="bundled dataset (digits, breast_cancer, iris, wine, diabetes) or a .csv/.npz file")
    t.add_argument("--target-column", type=int, default=-1, help="target column of a CSV file")
    t.add_argument("--layers", type=_layer_sizes, default=[64, 32], help="hidden layer sizes, e.g. 64,32")
    t.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu", help="hidden activation")
    t.add_argument("--output", choices=("auto", "sigmoid", "softmax", "identity"), default="auto",
                   help="output activation (auto: from the targets)")
    t.add_argument("--init", choices=("he", "xavier", "small"), default="he")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="gd")
    t.add_argument("--learning-rate", "--lr", type=float, default=0.1)
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--batch-size", type=int, default=32, help="0 for full batch")
    t.add_argument("--l2", type=float, default=0.0)
    t.add_argument("--test-size", type=float, default=0.25)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    t.add_argument("--backend", choices=("compiled", "reference"), default="compiled")
    t.add_argument("--save", metavar="PATH", help="save the trained model (.npz)")
    t.add_argument("--plot", metavar="PNG", help="save the learning curves (needs matplotlib)")
    t.add_argument("--quiet", action="store_true", help="only the final summary")

    b = sub.add_parser("bench", help="samples/s of each backend on the standard workloads")
    try:
        from .bench import add_arguments
    except ImportError:  # pragma: no cover - bench module absent
        add_arguments = None
    if add_arguments is not None:
        add_arguments(b)
    return parser


def train(args):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .datasets import load_dataset
    from .network import DeepNet

    X, y, task = load_dataset(args.data, args.target_column)
    stratify = y if task == "classification" else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=args.test_size, random_state=args.seed,
                                          stratify=stratify)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    if task == "classification":
        classes, ytr = np.unique(ytr, return_inverse=True)
        yte = np.searchsorted(classes, yte)
        n_out = 1 if len(classes) == 2 else len(classes)
        output = args.output if args.output != "auto" else ("sigmoid" if n_out == 1 else "softmax")
    else:
        n_out = 1
        output = args.output if args.output != "auto" else "identity"
        mu, sd = ytr.mean(), ytr.std() or 1.0
        ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
    dims = [X.shape[1], *args.layers, n_out]
    net = DeepNet(dims, args.activation, output, init=args.init, seed=args.seed, dtype=args.dtype,
                  backend=args.backend)
    print(f"data: {args.data}  train {Xtr.shape[0]} / test {Xte.shape[0]} samples, "
          f"{X.shape[1]} features, {task}")
    print(f"network: {dims}  {args.activation}/{output}  {args.dtype}  backend={args.backend}  "
          f"optimizer={args.optimizer}  lr={args.learning_rate}  batch={args.batch_size or 'full'}")
    start = time.perf_counter()
    history = net.fit(Xtr, ytr, epochs=args.epochs, learning_rate=args.learning_rate,
                      batch_size=args.batch_size or None, optimizer=args.optimizer, l2=args.l2,
                      verbose=0 if args.quiet else 1)
    seconds = time.perf_counter() - start
    metric = "R^2" if output == "identity" else "accuracy"
    print(f"final cost: {history.cost[-1]:.6f}")
    print(f"train {metric}: {net.score(Xtr, ytr):.4f}")
    print(f"test {metric}: {net.score(Xte, yte):.4f}")
    print(f"wall time: {seconds:.2f} s for {len(history)} epochs "
          f"({len(history) * Xtr.shape[0] / seconds:,.0f} samples/s, compile included)")
    if args.save:
        net.save(args.save)
        print(f"model saved to {args.save}")
    if args.plot:
        history.plot(args.plot)
        print(f"learning curves saved to {args.plot}")
    return 0


def main(argv=None):
    """Entry point of ``deepnet-fast``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return train(args)
        from .bench import run
        return run(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"deepnet-fast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepnet-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
