"""The asv dashboard tells the truth (issue 20).

- Definitions (no asv needed): every tracked quantity is lower-is-better (asv
  flags upward steps and has no "higher is better"), every benchmark names
  itself, the first view of a training graph holds every backend, no parameter
  combination is one that does not exist, and the kernel timings are timeit's.
- ``offline_dashboard.py`` points asv's pages at local copies of their
  libraries (no network: the test writes its own "copies").
- ``dashboard_extras.py`` gives ratio benchmarks (unit "x ...") a line at 1.0
  and every graph page its description; its patch of asv's graphdisplay.js
  applies once, and refuses an asv whose code moved.
- In headless Chromium, offline (skipped without chromium, asv or the cached
  libraries): a dashboard published from made-up results shows every
  backend's training time on first view, and its Regressions page lists a
  kernel that got slower and not one that got faster; a ratio graph draws a
  dark line at 1.0 on its axis (read from the screenshot's pixels), a time
  graph none, and both show their benchmark's docstrings above the graph.
"""

import base64
import contextlib
import hashlib
import importlib
import inspect
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import timeit

import pytest

from deepnet_fast import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASV_DIR = os.path.join(ROOT, "asv_benchmarks")
MODULES = ("common", "bench_training", "bench_predict", "bench_kernels", "bench_compile",
           "bench_dask")
PREFIXES = ("time_", "track_", "peakmem_", "mem_")

# Units of track_* benchmarks, each a quantity where lower is better.
LOWER_IS_BETTER_UNITS = {
    "seconds", "MiB", "cross-entropy", "fraction misclassified", "functions",
    "x matmul time (1 = matmul speed)", "x NumPy's time (below 1: kernel faster)",
    "x one worker's time", "x compute time (1 = no overhead)",
    "x the peer's time (below 1: deepnet_fast faster)",
}
# Units that are not a ratio of two times (no line at 1.0 on their graph).
ABSOLUTE_UNITS = {"seconds", "MiB", "cross-entropy", "fraction misclassified", "functions"}
RATIO_BENCHMARKS = {
    "bench_kernels.KernelVsNumpy.track_kernel_time_over_numpy",
    "bench_training.EpochVsMatmul.track_epoch_time_over_matmul_time",
    "bench_dask.DaskScaling.track_time_2_workers_over_1",
    "bench_dask.DaskScaling.track_worker_seconds_per_compute_second",
    "bench_predict.PredictLatencyRatio.track_time_over_peer",
}
HIGHER_IS_BETTER_WORDS = ("speedup", "per_second", "throughput", "accuracy", "efficiency",
                          "fraction_of", "gflops")


def _is_suite_module(name):
    return name == "benchmarks" or name.startswith("benchmarks.")


@contextlib.contextmanager
def _fresh_suite():
    """The asv suite importable as ``benchmarks``, freshly imported inside the
    block; the path and any earlier ``benchmarks`` modules restored after."""
    sys.path.insert(0, ASV_DIR)
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_suite_module(m)}
    try:
        yield
    finally:
        for m in [m for m in sys.modules if _is_suite_module(m)]:
            del sys.modules[m]
        sys.modules.update(saved)
        sys.path.remove(ASV_DIR)


@pytest.fixture(scope="module")
def suite():
    with _fresh_suite():
        yield {name: importlib.import_module(f"benchmarks.{name}") for name in MODULES}


def _benchmarks(suite):
    """``(module, class, method name)`` of every benchmark of the suite."""
    for mod_name, module in suite.items():
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name in dir(cls):
                if name.startswith(PREFIXES) and callable(getattr(cls, name)):
                    yield mod_name, cls, name


def _params(cls):
    params = getattr(cls, "params", [])
    if params and not isinstance(params[0], list):
        params = [params]
    return params


def _first_view(params, max_curves=8):
    """The parameter values asv's graph selects on first view (asv 0.6
    graphdisplay.js: up to 8 curves, filled from the first parameter on)."""
    count, selected = 1, []
    for values in params:
        item = [v for j, v in enumerate(values) if (j + 1) * count <= max_curves]
        count *= len(item)
        selected.append(item)
    return selected


# ------------------------------------------------------------- definitions


def test_the_suite_has_benchmarks_of_every_kind(suite):
    kinds = {name.split("_")[0] for _, _, name in _benchmarks(suite)}
    assert kinds == {"time", "track", "peakmem"}


def test_every_tracked_quantity_is_lower_is_better(suite):
    for _, cls, name in _benchmarks(suite):
        assert not any(word in name.lower() for word in HIGHER_IS_BETTER_WORDS), name
        assert not any(word in cls.__name__.lower() for word in ("speedup", "throughput")), cls
        if name.startswith("track_"):
            unit = getattr(getattr(cls, name), "unit", getattr(cls, "unit", None))
            assert unit in LOWER_IS_BETTER_UNITS, (cls.__name__, name, unit)


def test_every_benchmark_has_a_pretty_name_and_says_what_it_measures(suite):
    names = set()
    for _, cls, name in _benchmarks(suite):
        method = getattr(cls, name)
        assert getattr(method, "pretty_name", ""), (cls.__name__, name)
        assert inspect.getdoc(method), (cls.__name__, name)
        assert inspect.getdoc(cls), cls.__name__
        names.add((method.pretty_name, cls.__name__))
    assert len({p for p, _ in names}) == len(names)


def test_first_view_of_training_graphs_compares_every_installed_backend(suite):
    common = suite["common"]
    assert common.TRAINING_PARAM_NAMES[0] == "backend"
    for _, cls, name in _benchmarks(suite):
        if getattr(cls, "param_names", None) == common.TRAINING_PARAM_NAMES:
            first = _first_view(_params(cls))
            assert first[0] == common.TRAINING_BACKENDS, (cls.__name__, name)
            assert first[1] == common.CASES[:8 // len(common.TRAINING_BACKENDS)]
            assert first[1][0] == "mnist-medium float32"


def test_first_view_of_kernel_graphs_compares_every_implementation(suite):
    kernels = suite["bench_kernels"]
    for cls in (kernels.ActivationKernels, kernels.LinearKernels):
        assert _first_view(_params(cls))[0] == _params(cls)[0]
    assert _first_view(_params(kernels.KernelVsNumpy))[0] == ["float32", "float64"]


def test_the_suite_measures_compiled_kernels_not_a_compile_helpers_rent(monkeypatch):
    """A benchmark process starts no compile helper: on a cold cache its fits
    would otherwise train on the reference or on one thread (measured so)."""
    from deepnet_fast import compilation

    monkeypatch.setenv(compilation.BESIDE_VARIABLE, "1")
    with _fresh_suite():
        importlib.import_module("benchmarks.common")
    assert os.environ[compilation.BESIDE_VARIABLE] == "0"


def test_only_installed_backends_are_parameters(suite):
    expected = [b for b in bench.BACKENDS if bench.backend_unavailable(b) is None]
    assert suite["common"].TRAINING_BACKENDS == expected
    assert {"compiled", "reference", "sklearn"} <= set(expected)


def test_training_cases_are_exactly_the_defined_workload_dtypes(suite):
    common = suite["common"]
    defined = {(name, dtype) for name, w in bench.WORKLOADS.items() for dtype in w.dtypes}
    assert {common.split_case(c) for c in common.CASES} == defined
    assert len(common.CASES) == len(defined)
    with pytest.raises(NotImplementedError):
        common.split_case("wide-large float64")


def test_no_parameter_combination_is_skipped_for_not_existing(suite):
    # Only a missing library may skip (torch, mkl are dropped from the lists
    # when absent): workload x dtype holes are gone with the cases.
    training = suite["bench_training"]
    for backend, case in itertools.product(*training.TrainingEpoch.params):
        suite["common"].split_case(case)


def test_kernel_benchmarks_time_themselves_with_many_calls_per_sample(suite):
    kernels = suite["bench_kernels"]
    for _, cls, name in _benchmarks({"bench_kernels": kernels}):
        assert not name.startswith("time_"), (cls.__name__, name)  # asv: 1 call per sample
    calls = []

    def fn():
        calls.append(None)

    seconds = suite["common"].seconds_per_call(fn, sample_time=0.002, samples=3)
    assert len(calls) > 100 and 0 < seconds < 1e-4


def test_kernel_track_reports_the_timeit_median(suite):
    kernels = suite["bench_kernels"]
    b = kernels.ActivationKernels()
    b.setup("kernel", "relu", "128x256")
    ours, theirs = [], []
    for _ in range(3):   # alternating, as this shared machine's speed drifts
        ours.append(b.track_forward("kernel", "relu", "128x256"))
        number = max(1, int(0.01 / max(ours[-1], 1e-9)))
        theirs.append(statistics.median(timeit.repeat(b.forward, number=number,
                                                      repeat=21)) / number)
    # The same method, so only noise separates them; the one-call samples
    # this replaces read 17x too slow.
    assert 1 / 3 < statistics.median(ours) / statistics.median(theirs) < 3


def test_kernel_vs_numpy_is_the_inverse_of_the_bench_speedup(suite, monkeypatch):
    kernels = suite["bench_kernels"]
    monkeypatch.setattr(kernels, "kernel_speedups",
                        lambda acts, shape, dtype, rounds=15: {acts[0]: {"ratio": 4.0}})
    b = kernels.KernelVsNumpy()
    b.setup("float32", "tanh", "128x256")
    assert b.track_kernel_time_over_numpy("float32", "tanh", "128x256") == 0.25


def test_convergence_tracks_the_error_rate(suite):
    training = suite["bench_training"]
    results = {("compiled", "digits-small float32"): (0.3, 0.05)}
    b = training.Convergence()
    b.setup(results, "compiled", "digits-small float32")
    assert b.track_error_rate(results, "compiled", "digits-small float32") == 0.05


# ------------------------------------------------------ offline_dashboard.py


def _asv_script(name):
    """Imports one of asv_benchmarks' scripts (not a package) for the module."""
    sys.path.insert(0, ASV_DIR)
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(ASV_DIR)


@pytest.fixture(scope="module")
def offline():
    yield from _asv_script("offline_dashboard")


def _sri(data, algorithm="sha256"):
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def _fake_cache(offline, root):
    for package, paths in offline.needed_files().items():
        for path in paths:
            target = os.path.join(root, package, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(f"/* {package} {path} */".encode())
    return root


def test_offline_pages_point_every_cdn_tag_at_vendor(offline, tmp_path):
    cache = _fake_cache(offline, str(tmp_path / "cache"))
    jquery_url, flot_url = list(offline.ASSETS)[:2]
    with open(os.path.join(cache, "jquery@3.3.1", "dist/jquery.min.js"), "rb") as fh:
        jquery = fh.read()
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(
        f'<script src="{jquery_url}" integrity="{_sri(jquery)}" crossorigin="anonymous" '
        f'onerror="f()"></script>\n'
        f'<script src="{flot_url}" integrity="sha512-AAAA" crossorigin="anonymous" '
        f'referrerpolicy="no-referrer" onerror="f()"></script>\n'
        '<script src="asv.js"></script><a href="https://github.com/x">x</a>\n')
    offline.localise(str(html), cache)
    text = (html / "index.html").read_text()
    assert f'src="vendor/jquery@3.3.1/dist/jquery.min.js" integrity="{_sri(jquery)}"' in text
    assert '<script src="vendor/flot@0.8.3/jquery.flot.js" onerror="f()"></script>' in text
    assert 'src="asv.js"' in text and 'href="https://github.com/x"' in text
    assert (html / "vendor" / "flot@0.8.3" / "jquery.flot.js").is_file()
    assert not (html / "vendor" / "bootstrap@3.1.1").exists()   # not used by this page


def test_offline_refuses_an_unknown_cdn_address(offline, tmp_path):
    cache = _fake_cache(offline, str(tmp_path / "cache"))
    page = '<script src="https://cdn.example.org/new.js"></script>'
    with pytest.raises(ValueError, match="cdn.example.org"):
        offline.localise_page(page, cache)


def test_offline_no_fetch_fails_with_what_is_missing(offline, tmp_path):
    with pytest.raises(SystemExit, match="jquery@3.3.1"):
        offline.main([str(tmp_path), "--cache", str(tmp_path / "empty"), "--no-fetch"])


def test_offline_knows_every_external_library_of_the_installed_asv(offline, tmp_path):
    asv = pytest.importorskip("asv")
    www = os.path.join(os.path.dirname(asv.__file__), "www")
    cache = _fake_cache(offline, str(tmp_path / "cache"))
    for page in ("index.html", "error.html"):
        with open(os.path.join(www, page), encoding="utf-8") as fh:
            text, _ = offline.localise_page(fh.read(), cache)
        assert "https://cdn" not in text and "https://code.jquery" not in text


# ------------------------------------------------------ dashboard_extras.py


@pytest.fixture(scope="module")
def extras():
    yield from _asv_script("dashboard_extras")


def _unit(cls, name):
    return getattr(getattr(cls, name), "unit", getattr(cls, "unit", "seconds"))


def _text(paragraphs):
    return "\n".join("".join(text for text, _ in p) for p in paragraphs)


def test_ratio_benchmarks_and_only_they_get_a_line_at_one(suite, extras):
    ratios = set()
    for mod_name, cls, name in _benchmarks(suite):
        unit = _unit(cls, name)
        if extras.reference_line(unit) is not None:
            assert extras.reference_line(unit) == 1.0
            ratios.add(f"{mod_name}.{cls.__name__}.{name}")
        else:
            assert unit in ABSOLUTE_UNITS, (cls.__name__, name, unit)
    assert ratios == RATIO_BENCHMARKS


def test_description_is_the_class_and_method_docstrings(suite, extras):
    kernels = suite["bench_kernels"]
    entries = [_entry("bench_kernels", kernels.KernelVsNumpy, "track_kernel_time_over_numpy"),
               _entry("bench_kernels", kernels.ActivationKernels, "track_forward")]
    data = extras.dashboard_data({e["name"]: e for e in entries},
                                 extras.class_docstrings(os.path.join(ASV_DIR, "benchmarks")))
    ratio, forward = (data[e["name"]] for e in entries)
    assert ratio["title"] == entries[0]["pretty_name"]
    assert ratio["reference_line"] == 1.0 and forward["reference_line"] is None
    text = _text(ratio["description"])
    assert "measured alternating in this process" in text             # the class's
    assert "Median over 15 alternating rounds" in text                 # the method's
    assert "line marks 1.0" in text and "line" not in _text(forward["description"])
    # A :func: role broken over two lines is one code segment.
    assert ["deepnet_fast.bench_kernels.kernel_speedups", True] in ratio["description"][0]
    assert "Seconds per call of A = g(Z)." in _text(forward["description"])
    assert "for every activation, float32" in _text(forward["description"])


def test_paragraphs_join_lines_and_mark_code(extras):
    text = "First ``fit(epochs=1)`` line\n  goes on.\n\nSee :class:`FitPeak`."
    assert extras.paragraphs(text) == [
        [["First ", False], ["fit(epochs=1)", True], [" line goes on.", False]],
        [["See ", False], ["FitPeak", True], [".", False]],
    ]


def _asv_www():
    asv = pytest.importorskip("asv")
    return os.path.join(os.path.dirname(asv.__file__), "www")


def test_graphdisplay_patch_applies_once_and_refuses_a_changed_asv(extras):
    with open(os.path.join(_asv_www(), "graphdisplay.js"), encoding="utf-8") as fh:
        original = fh.read()
    patched = extras.patch_graphdisplay(original)
    assert patched.count(extras.MARK) == len(extras.GRAPHDISPLAY_PATCHES) == 3
    for anchor, call in extras.GRAPHDISPLAY_PATCHES:
        assert f"{anchor}{call}  {extras.MARK}\n" in patched
    assert extras.patch_graphdisplay(patched) == patched                 # idempotent
    for anchor, _ in extras.GRAPHDISPLAY_PATCHES:
        with pytest.raises(ValueError, match="asv's graph page changed"):
            extras.patch_graphdisplay(original.replace(anchor, anchor.replace("(", " (")))
    with pytest.raises(ValueError, match="var zoom_y_axis"):
        extras.patch_graphdisplay(original.replace("var zoom_y_axis", "let zoom_y_axis"))
    half = "\n".join(line for line in patched.split("\n") if "show_benchmark" not in line)
    with pytest.raises(ValueError, match="2 of the 3"):
        extras.patch_graphdisplay(half)


def test_index_loads_the_extras_after_graphdisplay(extras):
    with open(os.path.join(_asv_www(), "index.html"), encoding="utf-8") as fh:
        original = fh.read()
    patched = extras.patch_index(original)
    assert extras.patch_index(patched) == patched
    ours = patched.index(f'src="{extras.SCRIPT}"')
    assert patched.index('src="graphdisplay.js"') < ours < patched.index('src="regressions.js"')
    with pytest.raises(ValueError, match="0 graphdisplay.js script tags"):
        extras.patch_index(original.replace('src="graphdisplay.js"', 'src="graphs.js"'))


def test_extras_apply_to_a_published_folder_twice(suite, extras, tmp_path):
    www = _asv_www()
    for page in ("graphdisplay.js", "index.html"):
        shutil.copy(os.path.join(www, page), tmp_path / page)
    entry = _entry("bench_kernels", suite["bench_kernels"].KernelVsNumpy,
                   "track_kernel_time_over_numpy")
    (tmp_path / "index.json").write_text(json.dumps({"benchmarks": {entry["name"]: entry}}))
    extras.apply(str(tmp_path))
    first = {p: (tmp_path / p).read_text() for p in ("graphdisplay.js", "index.html",
                                                     extras.SCRIPT)}
    extras.apply(str(tmp_path))
    assert {p: (tmp_path / p).read_text() for p in first} == first
    script = first[extras.SCRIPT]
    prefix = "window.DEEPNET_DASHBOARD_DATA = "
    data = json.loads(script[len(prefix):script.index(";\n\n")])
    assert data[entry["name"]]["reference_line"] == 1.0
    if shutil.which("node"):       # both scripts parse
        for page in ("graphdisplay.js", extras.SCRIPT):
            subprocess.run(["node", "--check", str(tmp_path / page)], check=True)


# ----------------------------------------------------- headless Chromium


def _browser_or_skip():
    sys.path.insert(0, ASV_DIR)
    try:
        shot = importlib.import_module("dashboard_screenshot")
        offline = importlib.import_module("offline_dashboard")
    finally:
        sys.path.remove(ASV_DIR)
    if shot.find_browser() is None:
        pytest.skip("no chromium (apt-get install chromium)")
    if shutil.which("asv") is None:
        pytest.skip("asv is not installed (pip install '.[bench]')")
    cache = offline.default_cache()
    if offline.missing(cache):
        pytest.skip(f"the dashboard's libraries are not cached in {cache}: run "
                    "asv_benchmarks/offline_dashboard.py once with a network")
    return shot, offline, cache


def _entry(module_name, cls, method):
    fn = getattr(cls, method)
    params = _params(cls)
    return {
        "name": f"{module_name}.{cls.__name__}.{method}", "code": inspect.getsource(fn),
        "param_names": list(getattr(cls, "param_names", [])),
        "params": [[repr(v) for v in values] for values in params],
        "pretty_name": fn.pretty_name, "timeout": 60, "version": "1",
        "type": method.split("_")[0], "unit": getattr(fn, "unit", getattr(cls, "unit", "seconds")),
    }


def _publish(tmp_path, suite, offline, cache):
    """A dashboard of three commits of made-up results: training times per
    backend, kernel times where tanh gets 4x slower and ReLU 4x faster, and
    kernel / NumPy ratios from 0.3 to 0.9, the same in every commit. The
    pages are made offline, with the descriptions and the line at 1.0."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
    commits = []
    for i in range(3):
        (repo / "f").write_text(str(i))
        subprocess.run(git + ["add", "f"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", f"c{i}"], check=True)
        commits.append(subprocess.run(git + ["rev-parse", "HEAD"], check=True,
                                      capture_output=True, text=True).stdout.strip())
    training, kernels = suite["bench_training"].TrainingPerSample, \
        suite["bench_kernels"].ActivationKernels
    versus = suite["bench_kernels"].KernelVsNumpy
    entries = [_entry("bench_training", training, "track_seconds_per_sample"),
               _entry("bench_kernels", kernels, "track_forward"),
               _entry("bench_kernels", versus, "track_kernel_time_over_numpy")]
    n_ratios = len(list(itertools.product(*versus.params)))
    ratios = [0.3 + 0.6 * j / (n_ratios - 1) for j in range(n_ratios)]
    results = tmp_path / "results"
    (results / "box").mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps(
        dict({e["name"]: e for e in entries}, version=2)))
    machine = {"arch": "x86_64", "cpu": "test", "machine": "box", "num_cpu": "2",
               "os": "Linux", "ram": "1", "version": 1}
    (results / "box" / "machine.json").write_text(json.dumps(machine))
    rate = {b: 1.0 + i for i, b in enumerate(training.params[0])}
    for i, commit in enumerate(commits):
        per_sample = [rate[b] * 1e-6 * (1 + 0.3 * c) for b in training.params[0]
                      for c in range(len(training.params[1]))]
        forward = []
        for impl, act, shape in itertools.product(*kernels.params):
            t = 1e-5 * (10 if shape == "1024x512" else 1)
            if act == "tanh" and impl == "kernel" and i == 2:
                t *= 4
            if act == "relu" and impl == "kernel" and i < 2:
                t *= 4
            forward.append(t)
        result = {
            "commit_hash": commit, "env_name": "existing-py", "date": 1700000000000 + i * 3600000,
            "params": dict(machine, python="3.11"), "python": "3.11", "requirements": {},
            "env_vars": {}, "result_columns": ["result", "params", "version", "started_at",
                                               "duration"],
            "results": {
                entries[0]["name"]: [per_sample, entries[0]["params"], "1", 0, 1.0],
                entries[1]["name"]: [forward, entries[1]["params"], "1", 0, 1.0],
                entries[2]["name"]: [ratios, entries[2]["params"], "1", 0, 1.0],
            },
            "durations": {}, "version": 2,
        }
        (results / "box" / f"{commit[:8]}-existing-py.json").write_text(json.dumps(result))
    conf = {"version": 1, "project": "deepnet_fast", "repo": str(repo), "dvcs": "git",
            "branches": ["main"], "environment_type": "virtualenv",
            "results_dir": str(results), "html_dir": str(tmp_path / "html"),
            "regressions_thresholds": {".*": 0.2}}
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    subprocess.run(["asv", "publish"], cwd=tmp_path, check=True, capture_output=True)
    offline.localise(str(tmp_path / "html"), cache)
    sys.path.insert(0, ASV_DIR)
    try:
        importlib.import_module("dashboard_extras").apply(str(tmp_path / "html"))
    finally:
        sys.path.remove(ASV_DIR)
    return str(tmp_path / "html"), entries


@pytest.fixture(scope="module")
def dashboard(suite, tmp_path_factory):
    """``(dashboard_screenshot module, html folder, entries)`` of _publish."""
    shot, offline, cache = _browser_or_skip()
    html, entries = _publish(tmp_path_factory.mktemp("asv"), suite, offline, cache)
    return shot, html, entries


def _long_rows(png):
    """``(dark, frame)``: the rows of a screenshot that a dark line crosses
    (every channel under 60: the reference line, #1a1a1a anti-aliased) and
    the mean row of each band of flot's grey frame (#545454), each over at
    least 40% of the picture's width."""
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("PIL.Image")
    rgb = np.asarray(image.open(png).convert("RGB")).astype(int)
    dark = [int(y) for y in np.flatnonzero((rgb.max(axis=2) < 60).mean(axis=1) > 0.4)]
    grey = (rgb.min(axis=2) >= 70) & (rgb.max(axis=2) <= 100)
    rows = [int(y) for y in np.flatnonzero(grey.mean(axis=1) > 0.4)
            if all(abs(y - d) > 2 for d in dark)]      # not the line's own edge
    bands = []
    for y in rows:
        if bands and y - bands[-1][-1] <= 2:
            bands[-1].append(y)
        else:
            bands.append([y])
    return dark, [statistics.mean(band) for band in bands]


def _description(dom):
    """The text of the description above the graph (asserting it is shown)."""
    start = dom.index('<div id="deepnet-description"')
    tag = dom[start:dom.index(">", start)]
    assert "display: none" not in tag
    body = dom[start:dom.index("</div>", start)]
    # The graph moved below it, past asv's 48 px (Chromium writes the box's
    # top, right, bottom and left as "inset").
    top = re.search(r'(?:inset|top): ([\d.]+)px[^"]*">\s*<div id="main-graph"', dom)
    assert top and float(top.group(1)) > 48 + 30, top
    return body


@pytest.mark.timeout(300)
def test_published_dashboard_offline_in_headless_chromium(suite, dashboard, tmp_path):
    shot, html, entries = dashboard
    training = "#" + entries[0]["name"]

    dom = shot.render(html, training)
    assert "failed to load" not in dom
    common = suite["common"]
    for backend in common.TRAINING_BACKENDS:
        # Each backend's legend entry for the first cases: drawn on first view.
        for case in common.CASES[:8 // len(common.TRAINING_BACKENDS)]:
            assert f"backend-{backend}; case-{case}" in dom, (backend, case)
    assert entries[0]["pretty_name"] in dom          # the navigation names it
    png = tmp_path / "training.png"
    shot.render(html, training, png=str(png))
    assert png.stat().st_size > 10_000
    keep = os.environ.get("DEEPNET_FAST_SCREENSHOT_DIR")
    if keep:
        shutil.copy(png, os.path.join(keep, "asv_training_first_view.png"))

    regressions = shot.render(html, "#/regressions")
    assert "activation='tanh'" in regressions and "implementation='kernel'" in regressions
    assert "activation='relu'" not in regressions


@pytest.mark.timeout(300)
def test_ratio_graph_draws_a_line_at_one_and_graphs_show_their_docstrings(suite, dashboard,
                                                                          tmp_path):
    shot, html, entries = dashboard
    training, ratio = entries[0], entries[2]

    ratio_png = tmp_path / "ratio.png"
    shot.render(html, "#" + ratio["name"], png=str(ratio_png))
    dark, frame = _long_rows(ratio_png)
    assert dark, "no line across the ratio graph"
    assert max(dark) - min(dark) <= 3, dark                      # one line
    top, bottom = frame[:2]          # the main graph's frame; the overview's follows
    # Ratios of 0.3-0.9: the axis runs from 0 to 1.3 x 1.0, the line at 1.0.
    assert abs(1.3 * (bottom - statistics.mean(dark)) / (bottom - top) - 1.0) < 0.03
    keep = os.environ.get("DEEPNET_FAST_SCREENSHOT_DIR")
    if keep:
        shutil.copy(ratio_png, os.path.join(keep, "asv_ratio_line_at_one.png"))

    training_png = tmp_path / "training.png"
    shot.render(html, "#" + training["name"], png=str(training_png))
    dark, frame = _long_rows(training_png)
    assert not dark and len(frame) >= 2                         # a time: no line

    text = _description(shot.render(html, "#" + ratio["name"]))
    assert ratio["pretty_name"] in text
    assert "measured alternating in this process" in text              # the class's
    assert "Median over 15 alternating rounds" in text                 # the method's
    assert "line marks 1.0" in text
    text = _description(shot.render(html, "#" + training["name"]))
    assert "Training time per sample, each measurement padded" in text
    assert "Seconds per training sample" in text and "line marks" not in text
