"""Does asv's Regressions page flag a slowed kernel, and only that?

    python regression_experiment.py [WORK_DIR]

clones the repository's committed HEAD into ``WORK_DIR`` (a new temporary
folder by default) and makes two commits there, never in this checkout:

- ``before``: the ReLU forward kernel runs its loop 4 times (deliberately slow);
- ``after``:  ReLU back to normal (an improvement), tanh forward 4 times
  (a regression).

It runs ``ActivationKernels.track_forward`` of this folder's suite on both
commits (``asv run -E existing:same``, the clone's code put first on the path
through ``ASV_PYTHONPATH``), publishes, makes the pages work offline and
prints what the Regressions page lists, read from the page itself in headless
Chromium (``dashboard_screenshot.py``; ``regressions.png`` is saved beside the
results). Expected: tanh (``kernel`` and ``compiled``) listed, ReLU not.
Takes about 5 minutes; needs asv, npm (first time) and Chromium.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = "ActivationKernels.track_forward"
LOOP = ("    n, m = Z.shape\n"
        "    for i in range(n):\n"
        "        for j in range(m):\n"
        "            A[i, j] = _g(Z[i, j], code, slope)\n")


def _slowed(code_name):
    return ("    n, m = Z.shape\n"
            f"    for _ in range(4 if code == {code_name} else 1):  # deliberately slow\n"
            "        for i in range(n):\n"
            "            for j in range(m):\n"
                "                A[i, j] = _g(Z[i, j], code, slope)\n")


def _git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit_with(repo, loop, message):
    path = os.path.join(repo, "kernels", "activations.py")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    current = LOOP if LOOP in text else re.search(
        r"    n, m = Z.shape\n    for _ in range.*?_g\(Z\[i, j\], code, slope\)\n", text, re.DOTALL).group(0)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace(current, loop, 1))
    _git(repo, "-c", "user.name=experiment", "-c", "user.email=experiment@localhost",
         "commit", "-q", "-am", message)
    return _git(repo, "rev-parse", "HEAD")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    work = os.path.abspath(argv[0]) if argv else tempfile.mkdtemp(prefix="asv_regression_")
    repo = os.path.join(work, "repo")
    subprocess.run(["git", "clone", "-q", ROOT, repo], check=True)
    with open(os.path.join(repo, "kernels", "activations.py"), encoding="utf-8") as fh:
        if LOOP not in fh.read():
            raise SystemExit("activation_forward's loop changed: update LOOP")
    before = _commit_with(repo, _slowed("RELU"), "experiment: ReLU forward 4x slower")
    after = _commit_with(repo, _slowed("TANH"), "experiment: ReLU normal, tanh forward 4x slower")

    conf = {
        "version": 1, "project": "deepnet_fast", "repo": repo, "dvcs": "git",
        "branches": [_git(repo, "rev-parse", "--abbrev-ref", "HEAD")],
        "environment_type": "virtualenv",
        "benchmark_dir": os.path.join(HERE, "benchmarks"),
        "env_dir": os.path.join(work, "env"), "results_dir": os.path.join(work, "results"),
        "html_dir": os.path.join(work, "html"), "regressions_thresholds": {".*": 0.2},
    }
    with open(os.path.join(work, "asv.conf.json"), "w", encoding="utf-8") as fh:
        json.dump(conf, fh, indent=2)
    env = dict(os.environ, ASV_PYTHONPATH=repo)
    for commit in (before, after):
        _git(repo, "checkout", "-q", commit)
        subprocess.run(["asv", "run", "-E", "existing:same", "--set-commit-hash", commit,
                        "-b", BENCH], cwd=work, env=env, check=True)
    subprocess.run(["asv", "publish"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(HERE, "offline_dashboard.py"),
                    os.path.join(work, "html")], check=True)

    sys.path.insert(0, HERE)
    from dashboard_screenshot import render
    html = os.path.join(work, "html")
    render(html, "#/regressions", png=os.path.join(work, "regressions.png"))
    dom = render(html, "#/regressions")
    listed = sorted(set(re.findall(r"track_forward\(([^)]*)\)", dom)))
    print(f"results and pages in {work}")
    print("Regressions page lists:", *(listed or ["nothing"]), sep="\n  ")
    # The step function ("compiled") calls the same kernel as "kernel".
    touched = [x for x in listed if "'reference'" not in x]
    slowed = [x for x in touched if "'tanh'" in x]
    improved = [x for x in touched if "'relu'" in x]
    print(f"slowed tanh listed: {len(slowed)} of 4; ReLU improvement listed: "
          f"{len(improved)} of 4 (should be 0); unchanged benchmarks listed (noise): "
          f"{len(listed) - len(slowed) - len(improved)}")
    return 1 if improved or not slowed else 0


if __name__ == "__main__":
    sys.exit(main())
