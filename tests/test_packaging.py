"""Packaging: kernels ship as deepnet_fast.kernels; the core import stays light."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_import_needs_only_numpy_numba_scipy():
    code = ("import sys, deepnet_fast; "
            "heavy = [m for m in ('sklearn', 'tqdm', 'matplotlib', 'torch', 'dask') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.timeout(300)
def test_wheel_ships_kernels_inside_the_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("deepnet_fast-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("activations", "linear", "losses", "updates", "training", "simd_math",
                   "training_threaded", "blas"):
        assert f"deepnet_fast/kernels/{module}.py" in names
    for module in ("__init__", "_worker", "_placement", "_inference"):
        assert f"deepnet_fast/distributed/{module}.py" in names
    assert not any(n.startswith("kernels/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "deepnet-fast = deepnet_fast.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_kernels_use_relative_imports_only():
    for path in (ROOT / "kernels").glob("*.py"):
        text = path.read_text()
        assert "import kernels" not in text and "from kernels" not in text, path.name
