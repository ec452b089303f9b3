"""Packaging: kernels ship as deepnet_fast.kernels; the core import stays light;
the API works from the root of a checkout after ``pip install .``."""

import os
import pathlib
import re
import shutil
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


def test_kernels_come_with_the_package_they_are_imported_by():
    # Installed: inside the package; editable or from a checkout: beside it.
    code = ("import deepnet_fast, deepnet_fast.kernels.training as t; "
            "print(deepnet_fast.__file__); print(t.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    package, training = (pathlib.Path(p).parent for p in out.stdout.split())
    assert training in (package / "kernels", package.parent / "kernels")


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.timeout(600)
def test_quick_start_runs_from_the_checkout_root_after_pip_install(tmp_path):
    # README command 1 installs from the root of a checkout; Python started
    # there imports the checkout's deepnet_fast/ (kernels/ beside it), not the
    # installed package. The clone holds the committed HEAD, as a user's would.
    if shutil.which("git") is None or _git("rev-parse", "HEAD").returncode != 0:
        pytest.skip("needs git and a git checkout")
    clone, venv = tmp_path / "clone", tmp_path / "venv"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # Only the project is installed; its dependencies come from this
    # environment, through a .pth file (which does not run this
    # environment's own .pth files, so not its editable install either).
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", "."],
                             cwd=clone, env=env, capture_output=True, text=True)
    if install.returncode != 0 and ("No matching distribution" in install.stderr
                                    or "Could not find a version" in install.stderr):
        pytest.skip("the build requirements (setuptools, wheel) are not available offline")
    assert install.returncode == 0, install.stderr[-3000:]
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    pathlib.Path(site_packages, "_test_dependencies.pth").write_text(
        "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")

    where = ("import deepnet_fast, deepnet_fast.kernels.training as t; "
             "print(deepnet_fast.__file__); print(t.__file__)")
    outside = subprocess.run([str(python), "-c", where], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert outside.returncode == 0, outside.stderr[-3000:]
    assert [pathlib.Path(p).parent for p in outside.stdout.split()] == [
        pathlib.Path(site_packages, "deepnet_fast"), pathlib.Path(site_packages, "deepnet_fast",
                                                                  "kernels")]

    readme = (clone / "README.md").read_text()
    quick_start = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
    inside = subprocess.run([str(python), "-c", where + "\n" + quick_start], cwd=clone, env=env,
                            capture_output=True, text=True)
    assert inside.returncode == 0, inside.stderr[-3000:]
    lines = inside.stdout.splitlines()
    assert [pathlib.Path(p).parent for p in lines[:2]] == [clone / "deepnet_fast",
                                                           clone / "kernels"]
    assert "accuracy:" in lines[-1]
