"""``TrainingSession``: one fit's orchestration, in one place.

Every way of training drives a session: ``DeepNet.fit`` and ``partial_fit``,
the scikit-learn estimators (through ``fit`` with callbacks), and the dask
trainer (with a runner that sends each step to the cluster). The session
owns what a fit needs besides the arithmetic, and the guarantees that go with
it:

- the *runner* that does the arithmetic of a step: :class:`LocalRunner` (an
  engine of :mod:`deepnet_fast.engines`, one kernel call per epoch, over the
  data in memory, shuffled by the state's stream), or the dask runner
  (a round of ``sync_every`` epochs on every worker, then an average);
- the learning-rate schedule, the validation cost and score, the
  :class:`~deepnet_fast.History`, the progress display and the callbacks
  (early stopping is one: :class:`~deepnet_fast.callbacks.EarlyStopping`);
- the divergence guard: a step whose cost or gradient is not finite, or
  after which the parameters are not, raises
  :class:`~deepnet_fast.DivergenceError` with the state back at the end of
  the last finite step, so that no model ever holds NaN or infinity;
- interrupts: Ctrl-C at any moment of ``run`` (set-up included) ends the fit
  with the state of the last complete step and ``history.interrupted``.

This is umap's ``layouts.py`` arrangement: the Python loop owns the
configuration and the reporting, the compiled function the arithmetic.
"""

import time
import warnings

import numpy as np

from . import compilation
from . import reference as R
from .callbacks import EarlyStopping, hooks
from .engines import ENGINES, predict_output
from .exceptions import DivergenceError
from .history import History
from .inputs import take_rows
from .progress import Progress
from .schedules import rate_at


def check_batch_size(batch_size, n_samples):
    """The rows of one batch of a fit on ``n_samples`` training samples.

    Parameters
    ----------
    batch_size : int or None
        A checked positive integer (:class:`~deepnet_fast.config.FitConfig`),
        or None for full batches.
    n_samples : int
        The training samples, validation samples held out.

    Returns
    -------
    int
        ``batch_size``, or ``n_samples`` for None.

    Raises
    ------
    ValueError
        When ``batch_size`` is larger than ``n_samples``.
    """
    if batch_size is None:
        return n_samples
    if batch_size > n_samples:
        raise ValueError(f"batch_size must be between 1 and the number of training samples "
                         f"({n_samples}); got {batch_size}")
    return batch_size


class LocalRunner:
    """Epochs over data in memory, one engine call each.

    Parameters
    ----------
    arch : Architecture
    backend : str
        A key of :data:`~deepnet_fast.engines.ENGINES`.
    config : FitConfig
    X, Y : ndarray
        Checked rows (dense, or SciPy CSR: see :func:`~deepnet_fast.inputs.check_rows`)
        and encoded targets of the network's dtype, C-contiguous.
    rng : numpy.random.Generator
        The stream that shuffles each epoch (the state's).
    dropout_seed : int
    sample_weight : ndarray or None
        A checked weight per row of ``X``, of the network's dtype.
    """

    epochs_per_step = 1
    rate_scale = 1

    def __init__(self, arch, backend, config, X, Y, rng, dropout_seed, sample_weight=None):
        m = X.shape[0]
        batch = check_batch_size(config.batch_size, m)
        self.arch, self.backend, self.config = arch, backend, config
        self.X, self.Y, self.rng = X, Y, rng
        self.sample_weight = sample_weight
        self.batch, self.dropout_seed = batch, dropout_seed
        self.shuffled = config.shuffle and batch < m
        self.engine = self.threads = self.engine_backend = None
        self._no_order = np.empty(0, np.int64)
        self._score_base = arch.head.score_base(Y, sample_weight)
        self.score = None

    def open(self):
        """Allocate the engine's buffers and set the thread pools (in ``run``'s
        ``try``, so that an interrupt here is handled like any other)."""
        m, epochs = self.X.shape[0], self.config.epochs
        # A short compiled fit whose kernel a helper is compiling runs on the
        # reference meanwhile (compilation.training_backend).
        self.engine_backend = compilation.training_backend(self.arch, self.batch, m, epochs,
                                                           self.backend, record=True)
        if self.engine_backend == "compiled":
            # A fit too long for the reference waits for a helper that is
            # compiling its kernel rather than compile it a second time.
            compilation.settle(dtype=self.arch.dtype, kind="training")
        self.threads = compilation.training_threads(self.arch, self.batch, m, epochs,
                                                    self.engine_backend, record=True)
        self.engine = ENGINES[self.engine_backend](self.arch, self.config, self.batch, m,
                                                   self.dropout_seed,
                                                   threads=self.threads.kernel_threads)
        self.threads.__enter__()

    def close(self):
        if self.threads is not None:
            self.threads.__exit__(None, None, None)
            self.threads = None

    def run(self, state, rates):
        """One epoch at ``rates[0]``; returns (cost, index of a failed epoch or -1)."""
        order = self.rng.permutation(self.X.shape[0]) if self.shuffled else self._no_order
        costs, failed = self.engine.epoch(state, self.X, self.Y, order, rates[0],
                                          self.sample_weight)
        if failed >= 0:
            return np.nan, 0
        self.score = self.engine.epoch_score(self._score_base)
        return self.engine.epoch_cost(costs), -1

    def label(self, step, epoch):
        return None


class TrainingSession:
    """One fit (see the module docstring).

    Parameters
    ----------
    arch : Architecture
    backend : str
        Backend of the validation predictions (and of a local runner).
    state : TrainingState
        Updated in place; its optimizer is set to ``config.optimizer``.
    config : FitConfig
    runner : LocalRunner or a runner with the same methods
    validation : tuple (Xv, Yv) or None
        Checked rows and encoded targets.
    callbacks : sequence of Callback
        ``config.early_stopping`` adds an :class:`EarlyStopping` with its
        ``patience`` and ``min_delta``.
    history : History, optional
        To fill (the dask trainer gives one with its own fields).
    """

    def __init__(self, arch, backend, state, config, runner, validation=None, callbacks=(),
                 history=None):
        self.arch, self.backend, self.state, self.config = arch, backend, state, config
        self.runner = runner
        self.validation = validation
        self.callbacks = list(callbacks)
        if config.early_stopping:
            self.callbacks.append(EarlyStopping(patience=config.patience,
                                                min_delta=config.min_delta))
        self.history = History() if history is None else history
        self.epoch = 0          # epochs of this fit (the state counts them all)
        self._max_rate = float(np.finfo(arch.dtype).max)
        self.model = None       # the DeepNet being trained, for callbacks that save it
        self.diverged = False   # set before on_train_end when a DivergenceError ends the run
        self.failed = False     # likewise for any other exception (not Ctrl-C)
        if config.learning_rate >= self._max_rate:
            raise ValueError(f"learning_rate must be a finite number of the model's dtype "
                             f"({arch.dtype.name}, below {self._max_rate:.3g}); "
                             f"got {config.learning_rate:g}")

    @classmethod
    def local(cls, arch, backend, state, config, X, Y, validation=None, *, seed=None,
              callbacks=(), sample_weight=None):
        """A session over data in memory; holds out ``config.validation_split``
        of ``(X, Y)`` (drawn from the state's stream) when no ``validation`` is
        given. ``sample_weight`` weighs the training samples (the validation
        cost and score are unweighted)."""
        if validation is None and config.validation_split > 0:
            n = X.shape[0]
            n_val = int(round(config.validation_split * n))
            if n_val < 1 or n_val >= n:
                raise ValueError(f"validation_split={config.validation_split} leaves {n_val} "
                                 f"validation samples out of {n}; need at least one on each side")
            perm = state.validation_rows(n)
            validation = (take_rows(X, perm[:n_val]), Y[perm[:n_val]])
            X, Y = take_rows(X, perm[n_val:]), np.ascontiguousarray(Y[perm[n_val:]])
            if sample_weight is not None:
                sample_weight = np.ascontiguousarray(sample_weight[perm[n_val:]])
                if not sample_weight.sum() > 0:
                    raise ValueError("sample_weight is zero on every training sample left "
                                     "after validation_split")
        # Views of our own of the targets and weights, as of the rows
        # (inputs.private_rows): the caller cannot reshape what the epochs read.
        Y = Y.view()
        sample_weight = None if sample_weight is None else sample_weight.view()
        if validation is not None:
            validation = (validation[0], validation[1].view())
        dropout_seed = int(seed) if seed is not None else int(state.rng.integers(2**62))
        runner = LocalRunner(arch, backend, config, X, Y, state.rng, dropout_seed,
                             sample_weight)
        return cls(arch, backend, state, config, runner, validation, callbacks)

    # ------------------------------------------------------------ state

    def snapshot(self, into=None):
        """A copy of the training state (see :meth:`TrainingState.snapshot`)."""
        return self.state.snapshot(into)

    def restore(self, snap, stream=True):
        """Go back to ``snap``; ``stream=False`` keeps the shuffle stream where it is."""
        self.state.restore(snap, stream)

    # ------------------------------------------------------------ the loop

    def run(self):
        """Train for ``config.epochs`` epochs (or until a callback stops it).

        Returns
        -------
        History

        Raises
        ------
        DivergenceError
            The state then holds the last finite step.

        Any other exception leaves the state at the end of the last complete
        epoch (as it was before the fit when there is none), and so does an
        interrupt (Ctrl-C), which returns the history so far.
        """
        config, runner, history = self.config, self.runner, self.history
        steps = -(-config.epochs // runner.epochs_per_step)
        progress = None
        self._last = None
        begun = []          # the callbacks whose on_train_begin ran
        try:
            self._last = self.state.snapshot()
            self.state.use_optimizer(config.optimizer)
            self.state.settings = config.settings()
            compilation.compile_beside(self)
            compilation.announce(self)
            runner.open()
            history.backend = getattr(runner, "engine_backend", None) or self.backend
            progress = Progress(steps, config.verbose)
            for cb in self.callbacks:
                for hook in hooks([cb], "on_train_begin"):
                    hook(self)
                begun.append(cb)
            for step in range(steps):
                if self._step(step, progress):
                    break
        except DivergenceError:
            self.diverged = True
            raise
        except BaseException as exc:
            # Back to the end of the last complete epoch: a step in flight may
            # have updated part of the parameters. Before the first, that is
            # the state before the fit, the optimizer's switch undone too: a fit
            # that trained nothing changes nothing.
            if self._last is not None:
                self.state.restore(self._last)
            if not isinstance(exc, KeyboardInterrupt):
                self.failed = True
                raise
            history.interrupted = True
            warnings.warn(f"training interrupted after {len(history.cost)} complete epochs; "
                          "the model holds the parameters of the last complete epoch",
                          RuntimeWarning, stacklevel=3)
        finally:
            runner.close()
            if progress is not None:
                progress.close()
            # Also on the way out of a DivergenceError: a CSVLogger closes its
            # file, EarlyStopping restores its best epoch.
            for hook in hooks(begun, "on_train_end"):
                hook(self)
        return history

    def _step(self, step, progress):
        """One step (an epoch, or a round of distributed training); returns
        whether a callback asked to stop."""
        config, state = self.config, self.state
        k = min(self.runner.epochs_per_step, config.epochs - self.epoch)
        # The schedule continues across warm fits: it counts the state's epochs.
        rates = [self._rate(e) for e in range(state.epoch, state.epoch + k)]
        start = time.perf_counter()
        cost, failed = self.runner.run(state, rates)
        if failed >= 0:
            state.restore(self._last)
            raise DivergenceError(self.epoch + failed, learning_rate=rates[failed])
        if not state.is_finite():
            # An update can overflow after the last finite gradient of a step.
            state.restore(self._last)
            raise DivergenceError(self.epoch + k - 1, what="parameters",
                                  learning_rate=rates[-1])
        val_cost, val_score = self._validate()
        # Counted once validated: a failure before this is not a trained epoch.
        self.epoch += k
        state.epoch += k
        name = self.arch.head.score_name
        score = getattr(self.runner, "score", None)
        logs = {"cost": cost, name: score, "learning_rate": rates[0],
                "time": time.perf_counter() - start, "val_cost": val_cost,
                f"val_{name}": val_score}
        self.history.append_epoch(cost, rates[0], logs["time"], val_cost,
                                  **{name: score, f"val_{name}": val_score})
        self._last = state.snapshot(self._last)
        progress.update(step, cost, val_cost, self.runner.label(step, self.epoch - 1))
        stop = False
        for hook in hooks(self.callbacks, "on_epoch_end"):
            stop = bool(hook(step, logs)) or stop
        # A callback (ReduceLROnPlateau) may have set the next epoch's scale:
        # a return to this epoch's end keeps it, as a checkpoint of it does.
        self._last.lr_scale = state.lr_scale
        return stop

    @property
    def lr_scale(self):
        """The learning-rate factor that callbacks such as ReduceLROnPlateau
        set (kept in the state: warm fits and checkpoints continue it)."""
        return self.state.lr_scale

    @lr_scale.setter
    def lr_scale(self, value):
        self.state.lr_scale = float(value)

    def _rate(self, epoch):
        rate = rate_at(self.config.lr_schedule, epoch, self.config.learning_rate)
        rate *= self.runner.rate_scale * self.lr_scale
        if rate >= self._max_rate:
            raise ValueError(f"the learning rate of epoch {epoch} ({rate:g}) does not fit in "
                             f"the model's dtype {self.arch.dtype.name}")
        return rate

    def _validate(self):
        """Validation cost and score of the current parameters (None, None without data)."""
        if self.validation is None:
            return None, None
        Xv, Yv = self.validation
        A = predict_output(self.arch, self.backend, self.state.theta, Xv)
        head = self.arch.head
        cost = R.compute_cost(A, np.ascontiguousarray(Yv.T), head.name)
        return cost, head.score(A.T, Yv)

