"""A second core for one-row predictions: a worker that claims work, never awaited.

A service predicts one row at a time. For a network whose first layer is
large (mnist-medium's 784 x 256 weights, 0.8 MB in float32), that row costs a
matrix-vector product bound by one core's cache bandwidth (~7 us of ~13). A
``prange`` would split it, but its join waits for every thread: a thread pool
asleep after a pause (a service's requests come tens of milliseconds apart)
wakes in 0.1-7 ms on these machines, and the split then costs ten times what
it saves (see ``deepnet_fast.threads.SINGLE_THREAD_BELOW``).

Here the product is cut into ``CHUNKS`` blocks of rows that the calling
thread and one worker thread *claim* from a shared counter. The caller claims
blocks until none is left and waits only for the blocks the worker has
claimed, which it computes at once: a worker that sleeps claims nothing and
costs the caller nothing but an atomic operation. After a job the worker
spins for ``SPIN_CYCLES`` (about 0.1-0.2 ms) waiting for the next one, then
goes back to Python to sleep on an event. A prediction that comes within
``STREAM_SECONDS`` of the previous one wakes it (without waiting for it), so
that the stream of calls that follows finds it spinning; a lone call does not,
as waking a thread costs the caller more than the worker would save. Measured on a 2-core AMD EPYC (family 26), float32 784 x 256
matrix-vector product: 7.4 us on one thread, 3.9 us with a spinning worker,
7.8 us when the caller does both blocks alone.

The state lives in ``BOX``, an int64 array at a fixed address that compiled
code names by symbol (as :mod:`.blas` does its table), so the prediction
kernels keep their signatures and their on-disk cache:

- ``WORD``: the job's generation (high 32 bits) and its next unclaimed block
  (low 32 bits). A worker claims block c of generation g by a compare-and-swap
  of that exact word, so a claim never lands on a later job; the caller
  writes a job's fields before it publishes the word, and publishes the next
  job only once every block is done, so the fields a successful claim read
  stay valid until the claimer reports its block done.
- ``DONE``: blocks finished; ``OWNER``: 1 while a caller uses the worker (a
  second caller, in another Python thread, computes its product alone);
  ``STATE``: whether the worker is spinning; ``STOP``: asks it to return.
- The job: addresses of W (M, K, C-contiguous), of x (K contiguous values)
  and of y (M contiguous values), M, K, the dtype and the number of blocks.
- ``HELPED``: blocks the worker has computed, ever.
"""

import atexit
import ctypes
import os
import platform
import threading
import time

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import JIT
from .blas import gemm

WORD, DONE, OWNER, STATE, STOP, W_ADDR, X_ADDR, Y_ADDR, ROWS, COLS, KIND, BLOCKS, HELPED = \
    range(13)
SLOTS = 16
ASLEEP, SPINNING = 0, 1
FLOAT32, FLOAT64 = 0, 1
CHUNKS = 2
# About 0.1-0.2 ms of spinning (timestamp-counter ticks) after the last job.
SPIN_CYCLES = 1 << 19
# Products below this many multiply-adds stay on the calling thread: the
# claim and wait (~0.4 us) would eat what half of the product saves.
PAIR_MIN_MACS = 65_536
# The spin reads the x86 timestamp counter and pauses with x86's PAUSE; on
# other machines the worker never starts and every product stays on the caller.
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

_SYMBOL = "deepnet_fast_pair_box"
# Allocated once and never freed: the worker may still read it while the
# interpreter shuts down.
_memory = ctypes.create_string_buffer(8 * SLOTS + 64)
_address = (ctypes.addressof(_memory) + 63) // 64 * 64       # own cache line
BOX = np.frombuffer((ctypes.c_int64 * SLOTS).from_address(_address), dtype=np.int64)
_keep = [_memory]
llvm.add_symbol(_SYMBOL, _address)

_int64 = ir.IntType(64)


def _slot(builder, index):
    module = builder.module
    box = module.globals.get(_SYMBOL)
    if box is None:
        box = ir.GlobalVariable(module, ir.ArrayType(_int64, SLOTS), _SYMBOL)
        box.linkage = "external"
    zero = ir.Constant(ir.IntType(32), 0)
    return builder.gep(box, [zero, builder.trunc(index, ir.IntType(32))])


@intrinsic
def load(typingctx, index):
    """``BOX[index]``, an acquiring atomic load."""
    def codegen(context, builder, signature, args):
        return builder.load_atomic(_slot(builder, args[0]), "acquire", 8)
    return types.int64(types.int64), codegen


@intrinsic
def store(typingctx, index, value):
    """``BOX[index] = value``, a releasing atomic store."""
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[1], _slot(builder, args[0]), "release", 8)
        return context.get_dummy_value()
    return types.void(types.int64, types.int64), codegen


@intrinsic
def fetch_add(typingctx, index, value):
    """Adds ``value`` to ``BOX[index]`` atomically; returns the value before."""
    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", _slot(builder, args[0]), args[1], "acq_rel")
    return types.int64(types.int64, types.int64), codegen


@intrinsic
def swap_if(typingctx, index, expected, value):
    """``BOX[index] = value`` if it holds ``expected`` (atomically); returns whether it did."""
    def codegen(context, builder, signature, args):
        pair = builder.cmpxchg(_slot(builder, args[0]), args[1], args[2], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return types.boolean(types.int64, types.int64, types.int64), codegen


@intrinsic
def _pause_and_ticks(typingctx):
    """A spin-wait pause, then the timestamp counter."""
    def codegen(context, builder, signature, args):
        module = builder.module
        if X86:
            pause = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, ())
        ticks = cgutils.get_or_insert_function(module, ir.FunctionType(_int64, []),
                                               "llvm.readcyclecounter")
        return builder.call(ticks, ())
    return types.int64(), codegen


@intrinsic
def _pointer(typingctx, address, like):
    """The int ``address`` as a pointer to values of ``like``'s type."""
    sig = types.CPointer(like)(types.int64, like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
    return sig, codegen


@njit(**JIT)
def _block(W, x, y, c, n):
    """Rows of block c of n of y = W x."""
    M = W.shape[0]
    r0, r1 = c * M // n, (c + 1) * M // n
    one = W.dtype.type(1)      # not from W[0, 0]: W may be empty
    gemm(one, W[r0:r1], x, one - one, y[r0:r1])


@njit(**JIT)
def _run_block(c, like):
    """Block c of the published job, of ``like``'s dtype."""
    M, K = load(ROWS), load(COLS)
    W = carray(_pointer(load(W_ADDR), like), (M, K))
    x = carray(_pointer(load(X_ADDR), like), (K, 1))
    y = carray(_pointer(load(Y_ADDR), like), (M, 1))
    _block(W, x, y, c, load(BLOCKS))


@njit(**JIT)
def _claim_and_run():
    """Claims and computes blocks of the current job until none is left;
    returns the job's generation."""
    while True:
        word = load(WORD)
        c = word & 0xFFFFFFFF
        if c >= load(BLOCKS):
            return word >> 32
        kind = load(KIND)
        if not swap_if(WORD, word, word + 1):
            continue
        if kind == FLOAT32:
            _run_block(c, np.float32(0))
        else:
            _run_block(c, np.float64(0))
        fetch_add(HELPED, 1)
        fetch_add(DONE, 1)


@njit(**JIT)
def serve():
    """The worker's loop: claims blocks of every new job, until no job came
    for ``SPIN_CYCLES`` or ``BOX[STOP]`` is set; then returns (to sleep)."""
    store(STATE, SPINNING)
    seen = load(WORD) >> 32
    last = _pause_and_ticks()
    while load(STOP) == 0:
        now = _pause_and_ticks()
        if (load(WORD) >> 32) != seen:
            seen = _claim_and_run()
            last = now
        elif now - last > SPIN_CYCLES or now < last:
            break
    store(STATE, ASLEEP)


@njit(**JIT)
def product(W, x, y):
    """y = W x for a one-column x (K, 1) and y (M, 1), with the worker's help
    while it spins and W (M, K) is large and C-contiguous, x and y contiguous
    (see the module docstring); else on BLAS alone."""
    one = W.dtype.type(1)      # not from W[0, 0]: W may be empty
    M, K = W.shape
    size = W.itemsize
    # Anything else (shapes that do not match included: gemm raises) stays
    # on the caller: the worker reads the operands by address, unchecked.
    if (load(STATE) != SPINNING or M < CHUNKS or M * K < PAIR_MIN_MACS
            or x.shape[0] != K or x.shape[1] != 1 or y.shape[0] != M or y.shape[1] != 1
            or W.strides[1] != size or W.strides[0] != K * size
            or x.strides[0] != size or y.strides[0] != size
            or not swap_if(OWNER, 0, 1)):
        gemm(one, W, x, one - one, y)
        return
    store(W_ADDR, W.ctypes.data)
    store(X_ADDR, x.ctypes.data)
    store(Y_ADDR, y.ctypes.data)
    store(ROWS, M)
    store(COLS, K)
    store(KIND, FLOAT32 if W.itemsize == 4 else FLOAT64)
    store(BLOCKS, CHUNKS)
    store(DONE, 0)
    store(WORD, ((load(WORD) >> 32) + 1) << 32)       # publish: generation + 1, block 0
    while True:
        word = load(WORD)
        c = word & 0xFFFFFFFF
        if c >= CHUNKS:
            break
        if swap_if(WORD, word, word + 1):
            _block(W, x, y, c, CHUNKS)
            fetch_add(DONE, 1)
    while load(DONE) < CHUNKS:
        _pause_and_ticks()
    store(OWNER, 0)


# ---------------------------------------------------------------- the worker

# Waking a sleeping thread cost the caller 45-60 us on these machines (a
# paced one-row mnist-medium prediction: 152-244 us against 106-187 us), more
# than the worker saves on one call: only a call that follows another closely
# (a stream, a loop over rows) wakes it.
STREAM_SECONDS = 0.001
_last_call = [float("-inf")]
_lock = threading.Lock()
_worker = {"thread": None, "wake": threading.Event(), "pid": None}


def _loop(wake):
    while True:
        wake.wait()
        wake.clear()
        if BOX[STOP]:
            return
        serve()


def wake(now=None):
    """Starts the worker, or wakes it when it sleeps, without waiting for it,
    when this call comes within ``STREAM_SECONDS`` of the last: the calls that
    follow find it spinning (on x86 only). ``now``: ``time.perf_counter()``."""
    now = time.perf_counter() if now is None else now
    last, _last_call[0] = _last_call[0], now
    if BOX[STATE] == SPINNING or not X86 or now - last > STREAM_SECONDS:
        return
    with _lock:
        if _worker["thread"] is None or _worker["pid"] != os.getpid():
            _worker["wake"] = threading.Event()
            thread = threading.Thread(target=_loop, args=(_worker["wake"],),
                                      name="deepnet_fast-pair", daemon=True)
            _worker.update(thread=thread, pid=os.getpid())
            BOX[STOP] = 0
            thread.start()
    _worker["wake"].set()


def stop(timeout=1.0):
    """Stops the worker (at exit, and in tests); a later :func:`wake` starts another."""
    with _lock:
        thread = _worker["thread"]
        BOX[STOP] = 1
        _worker["wake"].set()
        if thread is not None and _worker["pid"] == os.getpid():
            thread.join(timeout)
        _worker["thread"] = None
        BOX[STATE] = ASLEEP


def _after_fork_in_child():
    # The worker thread does not exist in a forked child.
    _worker.update(thread=None, pid=None)
    BOX[STATE] = ASLEEP
    BOX[OWNER] = 0


atexit.register(stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
