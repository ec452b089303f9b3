"""Compiling the kernels: saying so before a fit waits for it, and doing it ahead.

The compiled backend's kernels are compiled by Numba on their first use, for
the dtype at hand, and cached on disk (see ``deepnet_fast.kernels._config``):
a fresh install pays the compile once, later processes load the machine code.

- :func:`announce` runs at the start of every fit (``TrainingSession.run``).
  When a kernel the fit needs is neither compiled in this process nor in the
  cache, it prints one line on stderr, before the progress bar: what is
  compiled, that it happens once, roughly how long. ``verbose=0`` keeps it
  quiet, except inside :func:`announcing` (the command line always says it).
- :func:`compile_beside` also runs at the start of every fit. When the
  fit's training kernel is not cached, it starts a helper process that
  compiles kernels into the cache on another core meanwhile: the training
  kernel when the fit runs on the NumPy reference instead (see below), else
  the prediction kernel the model will need next (:func:`settle` waits for
  it before a prediction that does not run on the reference).
- :func:`training_backend` and :func:`prediction_backend` decide where a fit
  and a prediction run while a helper compiles the kernel they need: a short
  one runs on the NumPy reference (:mod:`deepnet_fast.reference`, the oracle
  the kernels are tested against) rather than wait for the compile, and the
  next one loads the kernel the helper put in the cache.
- :func:`training_threads` and :func:`prediction_threads` decide the threads
  of a fit and of a prediction: one that would split its work between
  threads, but would first have to compile the threaded kernel, runs on one
  thread when that is quicker (see :func:`training_threads`).
- :func:`deepnet_fast.ahead.compile_ahead` (``deepnet-fast compile``) compiles
  every kernel a fit or a prediction can use into the cache, with the
  helpers' lock (:func:`helper_lock`) and the leaves (:func:`training_leaves`)
  of this module.

Whether a kernel is cached is read from its Numba cache index, without
loading or compiling anything: an entry for the dtype, this CPU and the
kernel's current code (an edit to any kernel module makes every entry stale).

Where a first fit's compile goes
--------------------------------
Measured with Numba's compile events, its per-pass timings and
``NUMBA_LLVM_PASS_TIMINGS`` on a 2-core AMD EPYC (family 26, a loaded shared
host), the README's digits command (float64, one thread), seconds exclusive of
the functions each compiles in turn:

- ``train_epoch`` ~7: typing the inlined glue, Numba's inliner (it deep-copies
  the callee's IR at every call site, ~2 s), and LLVM 4.3 (function passes 1.5,
  module passes 1.75, machine code 0.8);
- its ~55 leaves ~9, none above 1 s (``cost_sum`` 0.9, ``bias_activation``
  0.8); the glue ``@overload(inline="always")`` functions of ``kernels.sparse``
  and ``kernels._scalars`` ~1.8 of it: Numba compiles an inlined overload whole
  to type it;
- ``predict_output`` ~3.5, now in the helper of :func:`compile_beside`.

(Since then the one-thread kernels stopped inlining the thread-split code, 2 s
less for the whole command; see ``kernels/training.py``.)

Numba links each callee's optimised module into its caller and optimises the
whole again: 14,000 of the 18,500 lines of ``train_epoch``'s optimised IR are
its leaves, each optimised and emitted once more per kernel that calls it. The
threaded epoch pays this twice over: ``run_phase``'s code (9.6 s) is optimised
in itself, in the ``prange``'s function and in the epoch (whose parfor lowering
takes 13.4 s), 35-39 s for a first 784-1024-1024-10 float32 fit. Calling the
leaves through unresolved symbols instead of linking them would avoid it, at
the price of Numba's cache internals; not done. A first fit that would wait
for the threaded kernel only to run it for a few seconds trains on one thread
instead (:func:`training_threads`, and :func:`prediction_threads` for a
prediction): one epoch of that network to its first prediction took 12.2 s
instead of 42.4 s (``bench_compile``).
"""

import contextlib
import math
import os
import subprocess
import sys
import time

try:
    import fcntl
except ImportError:          # Windows: helpers of other processes go unseen
    fcntl = None

import numpy as np

from ._validation import FLOAT_DTYPE_NAMES

DTYPES = FLOAT_DTYPE_NAMES

# Seconds to compile each kernel with an empty cache: the estimates the notice
# quotes, and the price of the threaded kernels in training_threads' rule.
# Checked in session 10 on a 2-core AMD EPYC (family 26, Numba 0.68, a shared
# host) with `deepnet-fast compile --dtype D` in a fresh cache, which compiles
# each kind after the earlier ones (so later kinds load leaves the earlier
# ones compiled): float64 / float32 training leaves 5.5 / 4.3 s, training
# 9.0 / 7.5 s (so ~12-14 s alone), prediction 2.4 / 2.2 s, threaded training
# 20.2 / 20.4 s (~25 s alone), threaded prediction 2.9 / 2.7 s. Revise them
# with the kernels.
ESTIMATE_SECONDS = {"training": 12, "prediction": 3, "threaded training": 25,
                    "threaded prediction": 6}

KINDS = (*ESTIMATE_SECONDS, "gradient", "training leaves")
"""What ``deepnet-fast compile --kind`` takes."""

_always = False


@contextlib.contextmanager
def announcing():
    """Within the block, :func:`announce` speaks whatever the fit's ``verbose``."""
    global _always
    previous, _always = _always, True
    try:
        yield
    finally:
        _always = previous


# ---------------------------------------------------------------- which kernels

def _dispatcher(kind):
    """The kernel (a Numba dispatcher) of one kind, importing its module."""
    if kind.startswith("threaded"):
        from .kernels import training_threaded as module
    else:
        from .kernels import training as module
    return {
        "training": lambda: module.train_epoch,
        "prediction": lambda: module.predict_output,
        "threaded training": lambda: module.train_epoch_threaded,
        "threaded prediction": lambda: module.predict_output_threaded,
    }[kind]()


def fit_kernels(arch, batch, n_validation=0, n_samples=0, epochs=0):
    """The kernel kinds a compiled fit of ``arch`` with batches of ``batch``
    samples runs (validation predictions on ``n_validation`` samples
    included), for ``epochs`` epochs over ``n_samples`` samples (0: unknown;
    see :func:`training_threads`)."""
    threaded = training_threads(arch, batch, n_samples, epochs).kernel_threads > 1
    kinds = ["threaded training" if threaded else "training"]
    if n_validation:
        threaded = prediction_threads(arch, n_validation).kernel_threads > 1
        kinds.append("threaded prediction" if threaded else "prediction")
    return kinds


# Training FLOP/s of the one-thread kernel, a low estimate: half of what
# mnist-medium (784-256-128-10, batch 128) ran at in float32 on one core of a
# 2-core AMD EPYC (family 26 model 2): 145k samples/s, 204 GFLOP/s; float64
# half again. Only networks above threads.SINGLE_THREAD_BELOW meet it, whose
# products BLAS runs near its peak.
ONE_THREAD_FLOPS = {"float32": 100e9, "float64": 50e9}
# (threaded kernel kind, dtype) -> estimated seconds run on one thread instead
_one_thread_seconds = {}


def training_threads(arch, batch, n_samples=0, epochs=0, backend="compiled", record=False):
    """The :class:`~deepnet_fast.threads.fit_threads` of a fit of ``epochs``
    epochs over ``n_samples`` samples in batches of ``batch``.

    The rule of :class:`~deepnet_fast.threads.fit_threads`, except for a
    compiled fit that would split its batches between threads while the
    threaded training kernel is neither compiled nor cached: that fit runs on
    one thread when its epochs would take less time there than the threaded
    kernel's compile (``ESTIMATE_SECONDS``), counting the fits of this
    process that ran on one thread for the same reason (``record=True``
    counts this one). Renting until the rent paid equals the price of buying
    costs at most twice the best choice made knowing the future: a short
    first fit (a notebook's first try, ``bench_compile``'s 784-1024-1024-10
    float32 epoch) does not wait 25-40 s for a kernel it would use for a
    second, and a long fit or a stream of ``partial_fit`` calls still gets
    the threaded kernel.

    Not when the user set a thread count (:func:`~deepnet_fast.threads.set_num_threads`),
    nor with ``DEEPNET_FAST_COMPILE_BESIDE=0`` (the test suite and the
    benchmarks: they measure the kernel the size calls for).
    """
    from .threads import fit_threads

    plan = fit_threads(arch.layer_dims, batch, backend)
    if n_samples <= 0 or epochs <= 0 or not _may_rent(plan, backend):
        return plan
    flops = 6 * arch.multiply_adds(n_samples) * epochs
    if _rents("threaded training", np.dtype(arch.dtype).name, flops, record):
        return fit_threads(arch.layer_dims, batch, backend, available=1)
    return plan


def prediction_threads(arch, n_samples, backend="compiled", record=False):
    """The :class:`~deepnet_fast.threads.fit_threads` of a prediction of
    ``n_samples`` rows: as :func:`training_threads`, one thread rather than
    compile the threaded prediction kernel while the one-thread predictions
    of this process (``record=True`` counts this one) would take less time
    than that compile."""
    from .threads import fit_threads

    plan = fit_threads(arch.layer_dims, n_samples, backend)
    if not _may_rent(plan, backend):
        return plan
    flops = 2 * arch.multiply_adds(n_samples)
    if _rents("threaded prediction", np.dtype(arch.dtype).name, flops, record):
        return fit_threads(arch.layer_dims, n_samples, backend, available=1)
    return plan


def _may_rent(plan, backend):
    """Whether a run that ``plan`` splits between threads may run on one
    thread instead of compiling its threaded kernel."""
    from .threads import get_num_threads

    return (not plan.single and backend == "compiled" and get_num_threads() is None
            and os.environ.get(BESIDE_VARIABLE, "1") != "0")


def _rents(kind, dtype, flops, record):
    """Whether ``flops`` of work run on one thread rather than compile the
    threaded kernel ``kind`` first (see :func:`training_threads`)."""
    return _rent(_one_thread_seconds, kind, dtype, flops / ONE_THREAD_FLOPS[dtype], record,
                 lambda: _missing(kind, dtype))


def _rent(ledger, kind, dtype, seconds, record, missing=lambda: True):
    """The rent-or-buy rule, in one place: whether ``seconds`` of work done
    instead of compiling the kernel ``kind`` for ``dtype``, with what
    ``ledger`` holds of this process's earlier such work, stay below its
    compile estimate (``ESTIMATE_SECONDS``) while ``missing()`` says it is
    not compiled; ``record`` adds them to ``ledger``."""
    key = (kind, dtype)
    spent = ledger.get(key, 0.0)
    if spent + seconds >= ESTIMATE_SECONDS[kind] or not missing():
        return False
    if record:
        ledger[key] = spent + seconds
    return True


# The NumPy reference's seconds for a fit, a high estimate (only a fit clearly
# shorter than the compile runs there): Python's work per mini-batch, and its
# products at a low rate. Measured on the host of ESTIMATE_SECONDS, loaded:
# the README's digits command (4,300 batches of 32, float64) took 2.0 s on the
# reference, 0.47 ms a batch.
REFERENCE_BATCH_SECONDS = 1e-3
REFERENCE_FLOPS = {"float32": 20e9, "float64": 10e9}
# (kernel kind, dtype) -> estimated seconds run on the reference instead
_reference_seconds = {}


def training_backend(arch, batch, n_samples=0, epochs=0, backend="compiled", record=False):
    """The backend a fit of ``epochs`` epochs over ``n_samples`` samples in
    batches of ``batch`` runs on: ``backend``, or ``"reference"`` for a
    compiled fit whose one-thread training kernel a helper is compiling
    (:func:`compile_beside`), when the fit would take less time
    on the NumPy reference than that compile (``ESTIMATE_SECONDS``), counting
    the fits of this process that ran there for the same reason
    (``record=True`` counts this one): the rule of :func:`training_threads`.

    The reference runs the same arithmetic (the kernels are tested against it
    to rtol 1e-10 in float64, 1e-4 in float32), the same shuffles and the
    same dropout masks, one mini-batch at a time in Python. Measured on a
    2-core AMD EPYC (family 26 model 2), a loaded host, empty cache: the
    README's first command (100 epochs of digits, float64) printed the same
    costs and accuracies after 4.3 s on the reference against 13.2-14.2 s
    compiling first; the helper puts the kernels in the cache meanwhile, and
    finishes even after this process exits (:func:`start_helper`).

    Not with ``DEEPNET_FAST_COMPILE_BESIDE=0``, a read-only cache or a single
    core: no helper compiles then, and a fit compiles its kernel itself.
    """
    if backend != "compiled" or n_samples <= 0 or epochs <= 0 or not _beside:
        return backend
    dtype = np.dtype(arch.dtype).name
    if not _compiling("training", dtype):
        return backend
    if fit_kernels(arch, batch, 0, n_samples, epochs)[0] != "training":
        return backend           # long enough to buy the threaded kernel
    return "reference" if _fit_rents_reference(arch, batch, n_samples, epochs, record) else backend


def prediction_backend(arch, n_samples, backend="compiled", record=False):
    """The backend of a prediction of ``n_samples`` rows: ``backend``, or
    ``"reference"`` while a helper compiles the prediction kernel and the
    reference's predictions of this process (``record=True``
    counts this one) take less time than that compile (see
    :func:`training_backend`): a prediction does not wait for the helper."""
    if backend != "compiled" or not _beside:      # every call but a first run's
        return backend
    dtype = np.dtype(arch.dtype).name
    if not _compiling("prediction", dtype):
        return backend
    seconds = REFERENCE_BATCH_SECONDS + 2 * arch.multiply_adds(n_samples) / REFERENCE_FLOPS[dtype]
    return "reference" if _rent(_reference_seconds, "prediction", dtype, seconds, record) \
        else backend


def _fit_rents_reference(arch, batch, n_samples, epochs, record):
    """Whether the fit's estimated time on the reference, with this process's
    earlier such fits, stays below the training kernel's compile
    (:func:`_rent`)."""
    return _rent(_reference_seconds, "training", np.dtype(arch.dtype).name,
                 _reference_fit_seconds(arch, batch, n_samples, epochs), record)


def _reference_fit_seconds(arch, batch, n_samples, epochs):
    batches = -(-n_samples // batch) * epochs
    flops = 6 * arch.multiply_adds(n_samples) * epochs
    return batches * REFERENCE_BATCH_SECONDS + flops / REFERENCE_FLOPS[np.dtype(arch.dtype).name]


# Seconds for which a kernel found missing stays missing without another look
# at its cache index (a read took 130-240 us): renting predictions of a few
# hundred microseconds would pay it on every call otherwise.
MISSING_TTL = 1.0
_missing_seen = {}          # (kind, dtype) -> time.monotonic() of the read that found it missing


def _missing(kind, dtype):
    """``is_ready(kind, dtype) is False``, read again at most every ``MISSING_TTL``
    seconds while it holds."""
    key, now = (kind, dtype), time.monotonic()
    if now - _missing_seen.get(key, -math.inf) < MISSING_TTL:
        return True
    if is_ready(kind, dtype) is False:
        _missing_seen[key] = now
        return True
    _missing_seen.pop(key, None)
    return False


def _first_dtype(arg_types):
    first = arg_types[0] if arg_types else None
    return getattr(first, "dtype", None)


def is_ready(kind, dtype):
    """Whether the kernel ``kind`` for ``dtype`` runs without compiling: it is
    compiled in this process, or its cache holds it for this CPU and this code.

    Returns True, False, or None when Numba's cache cannot be read (then
    nobody can say).
    """
    import numba

    dispatcher = _dispatcher(kind)
    wanted = numba.from_dtype(np.dtype(dtype))
    if any(_first_dtype(args) == wanted for args in dispatcher.overloads):
        return True
    cache = dispatcher._cache
    index_file = getattr(cache, "_cache_file", None)
    if index_file is None:
        return False          # no cache: every process compiles
    try:
        _, magic, code = cache._index_key((), dispatcher.targetctx.codegen())
        index = index_file._load_index()
        return any(key[1] == magic and key[2] == code and _first_dtype(key[0]) == wanted
                   for key in index)
    except Exception:  # a Numba whose cache is laid out otherwise
        return None


def cache_writable():
    """Whether the kernels have a disk cache (a writable one was found)."""
    from .kernels._config import JIT
    return JIT["cache"]


def notice(kinds, dtype, beside=(), reference=False):
    """The line that says a fit is about to compile the kernels ``kinds``
    (and that a helper process compiles the kernels ``beside`` meanwhile);
    with ``reference``, that the helper compiles them all while the fit runs
    on the NumPy reference (:func:`training_backend`)."""
    if reference:
        every = [*kinds, *beside]
        seconds = sum(ESTIMATE_SECONDS[k] for k in every)
        return (f"deepnet_fast: the {dtype} {' and '.join(every)} kernels are not compiled for "
                f"this machine yet: a helper process compiles them into Numba's cache (once: "
                f"later runs load them; about {seconds} s), and this fit runs on the NumPy "
                "reference meanwhile (the same arithmetic, slower epochs)")
    once = ("once: later runs load it from Numba's cache" if cache_writable()
            else "no writable cache: every process compiles it again")
    what = " and ".join(kinds)
    plural = "s" if len(kinds) > 1 else ""
    seconds = sum(ESTIMATE_SECONDS[k] for k in kinds)
    helper = "".join(f"; the {k} kernel in a helper process beside it" for k in beside)
    return (f"deepnet_fast: compiling the {dtype} {what} kernel{plural} for this machine "
            f"({once}; about {seconds} s{helper})...")


def announce(session):
    """Print :func:`notice` when the fit of ``session`` is about to compile,
    or to run on the reference while a helper compiles (the hook at the start
    of ``TrainingSession.run``); only for a compiled fit in this process, with
    ``verbose >= 1`` or inside :func:`announcing`."""
    runner = session.runner
    if getattr(runner, "backend", None) != "compiled" or not hasattr(runner, "batch"):
        return
    if session.config.verbose < 1 and not _always:
        return
    dtype = np.dtype(session.arch.dtype).name
    n, epochs = runner.X.shape[0], session.config.epochs
    if training_backend(session.arch, runner.batch, n, epochs) == "reference":
        print(notice(["training"], dtype, [k for k, d in _beside if d == dtype and
                                           k != "training"], reference=True),
              file=sys.stderr, flush=True)
        return
    n_validation = 0 if session.validation is None else len(session.validation[0])
    missing = [k for k in fit_kernels(session.arch, runner.batch, n_validation, n, epochs)
               if is_ready(k, dtype) is False]
    if missing:
        beside = [k for k, d in _beside if d == dtype and k not in missing]
        print(notice(missing, dtype, beside), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- beside

# Setting this variable to 0 keeps every compile in the process that needs it,
# and every fit on the kernel its size calls for (see training_threads).
BESIDE_VARIABLE = "DEEPNET_FAST_COMPILE_BESIDE"

# Seconds a prediction waits for the helper before it compiles by itself.
SETTLE_TIMEOUT = 120

_beside = {}           # (kernel kind, dtype) -> the helper process compiling it
_compiling_ahead = False


def compile_beside(session):
    """Start a helper process that compiles kernels of the fit of ``session``
    into the cache while this process works (the hook at the start of
    ``TrainingSession.run``).

    Only when the fit's training kernel is missing from the cache, the cache
    is writable, this process may run on two cores or more, no helper runs
    already, and ``DEEPNET_FAST_COMPILE_BESIDE`` is not ``0``. The helper is
    ``deepnet-fast compile --kind ... --dtype ...``, its output discarded.

    - A fit short enough for the NumPy reference (:func:`training_backend`)
      runs there, and the helper compiles its training kernel, then the
      prediction kernel: the first ``deepnet-fast train --data digits``
      took 4.3 s instead of 13.2-14.2 s.
    - A longer fit compiles its training kernel here, and the helper the
      prediction kernel (after the last leaves of the one-thread training
      kernel, see :func:`start_helper`). Numba compiles one function at a
      time per process, and a first run needs both kernels: on a 2-core AMD
      EPYC (family 26, a shared host), the first digits command took
      25.4-28.2 s in one process and 20.7-23.9 s with this helper (three runs
      each, alternating), before the helper compiled the training leaves.

    Returns
    -------
    subprocess.Popen or None
        The helper, or None when none was started.
    """
    runner = session.runner
    if getattr(runner, "backend", None) != "compiled" or not hasattr(runner, "batch"):
        return None
    if not _may_start_helper():      # before the cache reads below
        return None
    dtype = np.dtype(session.arch.dtype).name
    n, epochs = runner.X.shape[0], session.config.epochs
    # The prediction most likely next: the fit's own rows, as a score makes.
    training, prediction = fit_kernels(session.arch, runner.batch, n, n, epochs)
    if is_ready(training, dtype) is not False:
        return None
    other = _OtherHelper.find(dtype)
    if other is not None:
        # Another process's helper compiles these kernels into the same cache:
        # wait for it as for one of ours rather than compile them twice.
        _beside["training", dtype] = _beside["prediction", dtype] = other
        return None
    if training == "training" and _fit_rents_reference(session.arch, runner.batch, n, epochs,
                                                       record=False):
        return start_helper(["training", prediction], dtype)
    return start_helper([prediction], dtype, leaves=training == "training")


def start_helper(kinds, dtype, leaves=False):
    """Start compiling the kernels ``kinds`` for ``dtype`` into the cache in a
    helper process now, unless they are ready, a helper runs already, or
    helpers do not pay here (see :func:`compile_beside`).

    With ``leaves``, the helper first compiles the leaves that the one-thread
    training kernel compiles after its glue (:func:`training_leaves`), for
    a process about to compile that kernel itself: it then finds them in the
    cache when it gets there instead of compiling what the helper compiles at
    the same time. The first digits command took 12.1-13.9 s (its fit
    9.6-11.2 s) against 13.4-16.0 s (10.8-13.0 s) without them, three
    alternating pairs on a quieter host.

    The helper finishes its compile even after this process exits: what it
    compiles serves the next process, and Numba writes each cache file whole,
    under a temporary name. Ctrl-C in the terminal stops it with this process.

    Returns
    -------
    subprocess.Popen or None
        The helper, or None when none was started.
    """
    if not _may_start_helper():
        return None
    dtype = np.dtype(dtype).name
    kinds = [k for k in kinds if is_ready(k, dtype) is False]
    if not kinds:
        return None
    args = (["training leaves"] if leaves and is_ready("training", dtype) is False else []) + kinds
    import numba

    env = dict(os.environ)
    if numba.config.CACHE_DIR:        # also the directory kernels._config fell back to
        env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR
    env[BESIDE_VARIABLE] = "0"
    try:
        helper = subprocess.Popen(
            [sys.executable, "-m", "deepnet_fast", "compile", "--dtype", dtype,
             *(arg for k in args for arg in ("--kind", k))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env)
    except OSError:
        return None
    for kind in kinds:
        _beside[kind, dtype] = helper
    return helper


def cache_directory():
    """The directory of the kernels' disk cache (Numba's ``cache_path`` of the
    training kernel: the kernels share it), or None without one."""
    from .kernels import training
    where = getattr(training.train_epoch._cache, "cache_path", None)
    return where or None


def _lock_path(dtype):
    """The file a helper compiling kernels of ``dtype`` holds locked, beside
    the kernels' cache (None when there is none)."""
    where = cache_directory()
    return None if where is None else os.path.join(where, f"deepnet_fast-helper-{dtype}.lock")


@contextlib.contextmanager
def helper_lock(dtype):
    """Hold the lock of :func:`_lock_path` for ``dtype`` (a compile in this
    process: other processes wait for it instead of compiling the same
    kernels); nothing where it cannot be taken."""
    fd = _open_lock(dtype)
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            except OSError:
                pass          # held by another compile: compile anyway
        yield
    finally:
        if fd is not None:
            os.close(fd)      # releases the lock


def _open_lock(dtype):
    path = _lock_path(dtype) if fcntl is not None and cache_writable() else None
    if path is None:
        return None
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None


class _OtherHelper:
    """A helper of another process, compiling kernels of ``dtype`` into this
    process's cache, seen through the lock it holds (:func:`helper_lock`):
    the ``subprocess.Popen`` methods :func:`settle` and :func:`helpers` use."""

    def __init__(self, dtype, pid):
        self.dtype, self.pid = dtype, pid
        self.returncode, self._seen = None, time.monotonic()

    @classmethod
    def find(cls, dtype):
        """The helper compiling for ``dtype`` now, or None."""
        fd = _open_lock(dtype)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None       # nobody holds it
        except OSError:
            try:
                pid = int(os.read(fd, 32) or 0)
            except (OSError, ValueError):
                pid = 0
            return cls(dtype, pid)
        finally:
            os.close(fd)

    def poll(self):
        # A prediction asks on every call: the lock is read at most every
        # MISSING_TTL seconds.
        if self.returncode is None and time.monotonic() - self._seen >= MISSING_TTL:
            self._seen = time.monotonic()
            if self.find(self.dtype) is None:
                self.returncode = 0
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.find(self.dtype) is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"helper {self.pid}", timeout)
            time.sleep(0.05)
        self.returncode = 0
        return 0

    def kill(self):
        """Stop waiting for it (it is not this process's to stop)."""
        self.returncode = -1


def helpers():
    """The helpers compiling for this process now: the processes it started
    (``subprocess.Popen``), and another process's it waits for."""
    return list({id(h): h for h in _beside.values() if h.poll() is None}.values())


def _compiling(kind, dtype):
    """Whether a helper (:func:`helpers`) is compiling the kernel ``kind`` for
    ``dtype`` now."""
    helper = _beside.get((kind, dtype))
    if helper is None:
        return False
    if helper.poll() is None:
        return True
    _beside.pop((kind, dtype), None)     # done: later calls skip all this
    return False


def settle(timeout=SETTLE_TIMEOUT, dtype=None, kind="prediction"):
    """Wait for the helpers of :func:`compile_beside` that compile a ``kind``
    kernel (prediction or training, on one thread or threaded) for ``dtype``
    (None: for every helper): the caller is about to run a kernel that such a
    helper may be compiling, which it would otherwise compile a second time.
    A helper still running after ``timeout`` seconds is stopped (the caller
    then compiles)."""
    if not _beside:              # empty on every call but the first few
        return
    name = None if dtype is None else np.dtype(dtype).name
    for key, helper in list(_beside.items()):
        if name is not None and (key[1] != name or kind not in key[0]):
            continue
        # pop: one thread waits for each entry (a helper has one per kernel).
        if _beside.pop(key, None) is None or helper.poll() is not None:
            continue
        try:
            helper.wait(timeout)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()


def helpers_pay():
    """Whether a helper process can compile beside this one into a shared
    cache: a second core, a writable cache, a Python to start, and
    ``DEEPNET_FAST_COMPILE_BESIDE`` not ``0``."""
    from .threads import usable_cores

    return (os.environ.get(BESIDE_VARIABLE, "1") != "0" and cache_writable()
            and usable_cores() >= 2 and bool(sys.executable) and not getattr(sys, "frozen", False))


def _may_start_helper():
    """No helper runs already, none is compiling ahead, and helpers pay."""
    return not helpers() and not _compiling_ahead and helpers_pay()


@contextlib.contextmanager
def ahead_of_time():
    """Within it, fits start no helper process: they are the compile ahead of
    time (:func:`deepnet_fast.ahead.compile_ahead`), which decides its own helper."""
    global _compiling_ahead
    previous, _compiling_ahead = _compiling_ahead, True
    try:
        yield
    finally:
        _compiling_ahead = previous


# ---------------------------------------------------------------- ahead of time

def training_leaves(dtype):
    """(dispatcher, signature) of the leaves that the one-thread training
    kernel (``train_epoch``) compiles after its glue, in the order it needs
    them, with the types its code gives them: what :func:`start_helper`
    compiles ahead of a fit.

    Measured on the first ``deepnet-fast train --data digits`` (float64, a
    loaded host), the fit compiled ~4 s of glue first (buffers, batch views,
    the sparse/dense dispatch), then these: ``bias_activation`` (1.6 s, with
    the ``simd_math`` functions it calls), the loss, its delta, and the
    backward and update leaves (~3.5 s together), then ``train_epoch``'s own
    ~5 s. The helper compiles nothing else first, so it stays ahead of the
    fit. ``tests/test_compilation.py`` checks that a fit finds every one of
    them in the cache after this list is compiled.
    """
    from numba import types

    from .kernels import activations, dropout, linear, losses, training, updates

    f = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    f64, i64 = types.float64, types.int64
    matrix = types.Array(f, 2, "C")
    vector = types.Array(f, 1, "C")
    return [
        (activations.bias_activation, (matrix, matrix, i64, f, matrix)),
        (losses.cost_sum, (matrix, matrix, i64, vector)),
        (losses.metric_sum, (matrix, matrix, vector, i64)),
        (losses.output_delta, (matrix, matrix, f, matrix, vector, i64, f, i64)),
        (losses.softmax_output, (matrix, matrix, matrix, vector, f)),
        (dropout.apply_mask, (matrix, types.uint64, f64, f, i64, i64, i64)),
        (training.delta, (i64, types.Array(i64, 1, "C"), vector, vector, i64)),
        (linear.row_sums, (matrix, f, f, matrix)),
        (activations.scale_by_derivative, (matrix, matrix, i64, f, f)),
        (training.batch_cost, (f64, f64, f64, f64)),
        (updates.apply_update, (vector, vector, vector, vector, i64, vector)),
    ]


def compile_training_leaves(dtype):
    """Compile (or load from the cache) every leaf of :func:`training_leaves`."""
    for dispatcher, signature in training_leaves(dtype):
        dispatcher.compile(signature)


def compile_count(kind):
    """Compiles so far of the kernel ``kind`` (a key of :data:`ESTIMATE_SECONDS`,
    ``"training leaves"`` or ``"gradient"``) in this process."""
    if kind == "training leaves":
        return sum(sum(d.stats.cache_misses.values()) for d, _ in training_leaves("float64"))
    if kind == "gradient":
        from .kernels.training import loss_and_gradient as dispatcher
    else:
        dispatcher = _dispatcher(kind)
    return sum(dispatcher.stats.cache_misses.values())
