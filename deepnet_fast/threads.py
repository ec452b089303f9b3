"""Thread control: Numba's threads and the BLAS threads together.

Numba's ``np.dot`` runs on SciPy's OpenBLAS, NumPy's ``@`` on NumPy's own; both
start a thread per core, and so does Numba's threading layer. Letting them all
run at once oversubscribes a small machine (contention made 2-thread runs 20–50×
slower on 2 cores), so :func:`set_num_threads` sets every pool to the same ``n``.

Numba's ``workqueue`` threading layer (its fallback when neither TBB nor
OpenMP loads) aborts the process when two threads run parallel kernels at
once, so under that layer :class:`fit_threads` lets one parallel kernel call
run at a time.
"""

import os
import sys
import threading
import time

_requested = None
_limiter = None
_controller = None


def _blas_controller():
    """One ThreadpoolController per process: discovering the loaded libraries
    costs milliseconds, a limit on a known controller about 20 µs."""
    global _controller
    if _controller is None:
        # threadpoolctl only sees libraries already loaded: make sure SciPy's
        # BLAS (the one Numba calls), NumPy's and the kernels' (MKL when
        # installed) are among them.
        import scipy.linalg.cython_blas  # noqa: F401

        from .kernels.blas import library
        library()
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


def set_num_threads(n):
    """Use ``n`` threads in Numba kernels and in every BLAS library.

    Parameters
    ----------
    n : int or None
        A positive number of threads; more than ``os.cpu_count()`` (or
        Numba's ``NUMBA_NUM_THREADS``) uses that many, since threads beyond
        the cores only wait on one another at every barrier. None returns to
        the defaults (all cores, and the automatic single thread for small
        networks during ``fit``).
    """
    global _requested, _limiter
    import numba

    from ._validation import check_positive_int

    if n is None:
        if _limiter is not None:
            _limiter.restore_original_limits()
        _limiter, _requested = None, None
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        return
    n = check_positive_int(n, "n")
    n = min(n, numba.config.NUMBA_NUM_THREADS, os.cpu_count() or n)
    numba.set_num_threads(n)
    if _limiter is not None:
        _limiter.restore_original_limits()
    _limiter = _blas_controller().limit(limits=n, user_api="blas")
    _requested = n


def get_num_threads():
    """The number set by :func:`set_num_threads`, or None for the defaults."""
    return _requested


# Per-batch work (multiply-adds of the forward pass) below which fit trains on
# one thread. Measured on these 2-core machines with nothing else running
# (deepnet-fast bench --backends compiled --threads 1|2): a second thread gave
# 1.48x at course-cat (51 M), 1.14x at mnist-medium (30 M), 1.6x at wide-large
# (3.2 G) when OpenBLAS split the products, and nothing measurable at
# digits-small (75 k), where a product is too short to split. Splitting the
# batch instead (kernels/training_threaded.py) adds 1.0-1.3x on top at the
# three large ones.
#
# A prediction follows the same rule (all its rows as one batch), so one row
# always runs on one thread. Splitting one row's first layer by units between
# the two cores (tried in sessions 8-9) won only back to back, and lost where
# a service waits: mnist-medium predict_proba of one row, float32, median us,
# split / one thread, six alternating blocks in one process, on a 2-core AMD
# EPYC (family 26 model 2): calls back to back 13.4-20.1 / 16.1-20.5, 1 ms
# apart 36-76 / 27-77, 10 ms apart 316-390 / 205-250, 50 ms apart 2,900-5,700
# / 135-160. Between calls the second thread goes to sleep, and waking it
# costs more than the split saves; in the benchmark's worker process it lost
# back to back too (109 us against ONNX Runtime's 16). A one-row prediction
# with a large first layer shares that product with the pair worker instead
# (pairs_one_row, kernels/pair.py), which the caller waits for only when that
# worker has claimed part of the product: 10.3-10.9 us against 13.6-16.2 us
# back to back, and no loss at 10 ms apart.
SINGLE_THREAD_BELOW = 10_000_000


def _available():
    if _omp_forked:
        return 1
    import numba
    return _requested or numba.get_num_threads()


# Set in a child process forked after its parent ran a parallel kernel on
# Numba's OpenMP layer built on GNU OpenMP, which cannot start a parallel
# region there (Numba terminates the child, "fork() called from a process
# already using GNU OpenMP"): such a child trains and predicts on one thread.
_omp_forked = False


def _after_fork_in_child():
    global _omp_forked
    numba = sys.modules.get("numba")
    if numba is None:
        return
    try:
        layer = numba.threading_layer()
    except ValueError:      # no parallel kernel has run in this process
        return
    if layer == "omp":
        from numba.np.ufunc import omppool
        _omp_forked = _omp_forked or getattr(omppool, "openmp_vendor", "GNU") == "GNU"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_cores_seen = []


def pairs_one_row(first_layer_macs):
    """Whether a one-row prediction whose first layer makes ``first_layer_macs``
    multiply-adds shares that product with the pair worker
    (:mod:`deepnet_fast.kernels.pair`): a large one, on a machine with two
    cores or more for this process, unless :func:`set_num_threads` asked for
    one thread. Unlike a split between threads it never waits for a sleeping
    one, so it holds whatever the pace of the calls."""
    if not _cores_seen:
        from .kernels.pair import PAIR_MIN_MACS
        _cores_seen[:] = [usable_cores(), PAIR_MIN_MACS]
    if first_layer_macs < _cores_seen[1] or (_requested is not None and _requested < 2):
        return False
    return _cores_seen[0] > 1


def _running_tasks():
    """Runnable tasks on the machine and among this process's own threads,
    from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            machine = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
                    # The state follows the parenthesised command name.
                    own += f.read().rpartition(")")[2].split()[0] == "R"
            except OSError:       # the thread ended meanwhile
                pass
    except (OSError, ValueError, IndexError):
        return None
    return machine, own


# Seconds for which free_cores' answer stands: reading /proc takes ~50 us a
# sample, which a stream of mid-size predictions or partial_fit calls would
# otherwise pay on every call.
FREE_CORES_TTL = 0.5
_free_cores_seen = [float("-inf"), None]      # (time.monotonic(), answer)


def usable_cores():
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_cores(samples=3, interval=0.0005):
    """Cores this process may use that no other process is keeping busy now.

    The CPUs this process may run on, less the other processes' runnable
    tasks (``/proc/loadavg``'s running count, less this process's own running
    threads: its BLAS and OpenMP threads spin for a while after a call and
    are not competitors). The fewest competitors over a few samples ``interval``
    seconds apart (a daemon's wake-up is not a competing job; one sample when
    it finds none). At least 1; None where /proc is not available. The answer
    stands for ``FREE_CORES_TTL`` seconds.

    Why: a kernel that splits every batch between threads meets at a barrier
    several times per batch, so one thread that shares its core with another
    process stalls all of them. mnist-medium float32 (784-256-128-10, batch
    128), samples/s, on a 2-core AMD EPYC (family 26 model 2): alone, two
    threads 265k-273k, one thread 164k-168k; beside one busy process, two
    threads 7k-137k (each fit between), one thread 164k-167k, and this rule
    (which then picks one) 136k-161k.
    """
    seen, answer = _free_cores_seen
    if time.monotonic() - seen < FREE_CORES_TTL:
        return answer
    cores = usable_cores()
    others = None
    for i in range(samples):
        if i:
            time.sleep(interval)
        tasks = _running_tasks()
        if tasks is None:
            break
        machine, own = tasks
        others = machine - own if others is None else min(others, machine - own)
        if others <= 0:
            break
    answer = None if others is None else max(1, (cores or 1) - max(others, 0))
    _free_cores_seen[:] = [time.monotonic(), answer]
    return answer


def runs_single(macs):
    """Whether ``fit_threads(...).single`` holds for a batch of ``macs``
    multiply-adds whatever the machine's load, without building the context:
    a small prediction asks this on every call (building the context took
    1.7 us of a 9-us one-row prediction). False: build it and ask it."""
    return _small(macs) or _available() == 1


def _small(macs):
    """Whether a batch of ``macs`` multiply-adds runs on one thread whatever
    the threads available (unless the user chose a count)."""
    return macs < SINGLE_THREAD_BELOW and _requested is None


# Held around parallel kernel calls while the threading layer may be workqueue.
# Reentrant: fit's validation predict enters again on the same thread.
_workqueue_lock = threading.RLock()
# Per thread, one flag per open context: did its __enter__ take the lock? (A
# context object may be shared, e.g. by a dask worker's threads.)
_held = threading.local()


def _layer_may_be_workqueue():
    """True under workqueue, and before Numba has started any layer (it only
    says which one on the first parallel call): the first calls serialise."""
    import numba
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:
        return True


def _kernel_blas_is_sequential():
    from .kernels.blas import library
    return library()[0] == "mkl"


class fit_threads:
    """Threads for one ``fit``: a context that sets the BLAS pool for its duration.

    Below ``SINGLE_THREAD_BELOW`` multiply-adds per batch everything runs on
    one thread, unless the user chose a count with :func:`set_num_threads`.
    Otherwise the compiled backend splits each batch between
    ``kernel_threads`` threads that each call BLAS single-threaded (see
    :mod:`deepnet_fast.kernels.training_threaded`), while the reference
    backend leaves the threads to BLAS. Under Numba's ``workqueue`` threading
    layer, which is not thread-safe, the context also holds a process-wide
    lock while ``kernel_threads > 1``, so that parallel kernel calls from
    several Python threads run one after the other.

    Parameters
    ----------
    layer_dims : sequence of int
    batch : int
        Samples per mini-batch.
    backend : {"compiled", "reference"}
    available : int, optional
        Threads to use; default: the number set by :func:`set_num_threads`,
        else Numba's thread count (all cores) capped by the cores no other
        process keeps busy when the fit starts (:func:`free_cores`).
    """

    def __init__(self, layer_dims, batch, backend="compiled", available=None):
        macs = batch * sum(a * b for a, b in zip(layer_dims[:-1], layer_dims[1:]))
        n = 1 if _omp_forked else available or _available()
        small = _small(macs)
        if not small and available is None and _requested is None and n > 1:
            n = min(n, free_cores() or n)
        self.single = small or n == 1
        if backend == "compiled":
            self.kernel_threads = 1 if self.single else n
            self.blas_threads = 1
        else:
            self.kernel_threads = 1
            self.blas_threads = 1 if small else n
        self._backend = backend
        self._ctx = None

    def __enter__(self):
        take = self.kernel_threads > 1 and _layer_may_be_workqueue()
        if take:
            _workqueue_lock.acquire()
        _held.__dict__.setdefault("stack", []).append(take)
        try:
            self._limit_blas()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _limit_blas(self):
        controller = _blas_controller()
        if self._backend == "compiled" and _kernel_blas_is_sequential():
            # MKL runs every kernel product on the calling thread already:
            # no pool to limit (saves ~0.1 ms per fit, which counts for
            # partial_fit and 1-ms epochs).
            return
        self._ctx = controller.limit(limits=self.blas_threads, user_api="blas")

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
            self._ctx = None
        stack = getattr(_held, "stack", None)
        if stack and stack.pop():
            _workqueue_lock.release()
        return False
