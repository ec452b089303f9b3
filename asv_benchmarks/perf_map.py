"""Profile the compiled training epoch with Linux ``perf``, kernel by kernel.

``perf`` samples Numba's JIT code as anonymous memory (``[JIT] tid ...``)
unless the process writes ``/tmp/perf-<pid>.map``, a text file of "start size
name" lines that ``perf report`` reads. This script trains a workload of
``deepnet-fast bench`` in-process, compiling its kernels into a fresh cache
(a function loaded from the cache keeps no LLVM module to list), writes that
map for every function of the kernels' compiled libraries, then keeps
training for the given seconds while you attach ``perf``::

    cd asv_benchmarks
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python perf_map.py digits-small float32 20 &
    # when it prints READY <pid>:
    perf record -F 20000 -p <pid> -o perf.data -- sleep 5
    perf report -i perf.data --sort dso,sym --stdio | head -40

The map's sizes come from an object file emitted from each library's final
LLVM module (the JIT compiles the same module with the same target machine).
It reads Numba internals (``_final_module``, ``_codegen._tm``), so it is a
development tool, not part of the package; it was written with Numba 0.68.
On the machines of these sessions only the software event ``cpu-clock`` is
available (no hardware counters), which is enough for sampling.
"""

import os
import re
import subprocess
import sys
import tempfile
import time


def _functions(library):
    """(address, size, mangled name) of every function compiled in ``library``."""
    module = getattr(library, "_final_module", None)
    if module is None:
        return []
    obj = library._codegen._tm.emit_object(module)
    with tempfile.NamedTemporaryFile(suffix=".o") as fh:
        fh.write(obj)
        fh.flush()
        table = subprocess.run(["nm", "-S", "--defined-only", fh.name],
                               capture_output=True, text=True, check=True).stdout
    found = []
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            try:
                address = library.get_pointer_to_function(parts[3])
            except Exception:       # noqa: BLE001 - not materialised in the JIT
                continue
            if address:
                found.append((address, int(parts[1], 16), parts[3]))
    return found


def _qualified(mangled):
    """The dotted path at the front of an Itanium-mangled name that c++filt
    left as it was (``_ZN12deepnet_fast7kernels...``), or the name itself."""
    parts, i = [], 3 if mangled.startswith("_ZN") else len(mangled)
    while i < len(mangled) and mangled[i].isdigit():
        j = i
        while j < len(mangled) and mangled[j].isdigit():
            j += 1
        n = int(mangled[i:j])
        parts.append(mangled[j:j + n])
        i = j + n
    return "::".join(parts) if parts else mangled


def write_map(path=None):
    """Write the perf map of every compiled ``deepnet_fast.kernels`` function
    of this process; returns its path and number of entries."""
    from numba.core.registry import CPUDispatcher

    entries, seen = set(), set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("deepnet_fast.kernels"):
            continue
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher):
                for cres in obj.overloads.values():
                    if id(cres.library) not in seen:
                        seen.add(id(cres.library))
                        entries.update(_functions(cres.library))
    entries = sorted(entries)
    names = subprocess.run(["c++filt"], input="\n".join(e[2] for e in entries),
                           capture_output=True, text=True).stdout.splitlines()
    path = path or f"/tmp/perf-{os.getpid()}.map"
    with open(path, "w") as fh:
        for (address, size, _), name in zip(entries, names):
            if name.startswith("_Z"):
                name = _qualified(name)
            name = re.sub(r"\[abi:[^\]]*\]", "", name).split("(")[0][-100:]
            fh.write(f"{address:x} {size:x} {name}\n")
    return path, len(entries)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    workload = argv[0] if argv else "digits-small"
    dtype = argv[1] if len(argv) > 1 else "float32"
    seconds = float(argv[2]) if len(argv) > 2 else 20.0
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="perf_map_"))
    os.environ.setdefault("DEEPNET_FAST_COMPILE_BESIDE", "0")
    from deepnet_fast import bench

    X, y = bench.make_data(workload, dtype)
    trainer = bench.make_trainer("compiled", workload, X, y, dtype)
    path, n = write_map()
    print(f"{n} functions in {path}", flush=True)
    print("READY", os.getpid(), flush=True)
    end = time.perf_counter() + seconds
    epochs = 0
    while time.perf_counter() < end:
        trainer.train(20)
        epochs += 20
    print(f"{epochs} epochs", flush=True)


if __name__ == "__main__":
    main()
