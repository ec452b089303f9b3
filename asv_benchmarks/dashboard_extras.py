"""Make each graph of a published asv dashboard explain itself.

asv 0.6 shows a benchmark's docstring only in a tooltip of the navigation
tree, and draws a ratio (our time over another's) on a bare axis. Run after
``asv publish``, from ``asv_benchmarks/`` (``offline_dashboard.py`` runs it
too)::

    python dashboard_extras.py html

and every graph page shows, above the graph, the benchmark's pretty name, its
class's docstring and its own; the graph of every benchmark whose unit is a
ratio (it starts with "x ", as "x NumPy's time (below 1: kernel faster)")
gets a dark horizontal line at 1.0, on an axis from 0 that reaches it.

The method's docstring comes from the code asv published (``index.json``),
the class's from the benchmark sources (``--benchmark-dir``, by default
``benchmarks/`` next to this script), read with ``ast``, nothing imported.
The step writes ``html/deepnet_dashboard.js`` (the data, then
``dashboard_extras.js``), adds it to ``index.html`` and patches three lines
into asv's ``graphdisplay.js`` that call it. Running it again rewrites the
data and leaves the patched files as they are; asv code that does not have
the exact lines the patch follows (another asv version) stops it with the
missing line, rather than leaving a page that fails later.
"""

import argparse
import ast
import json
import os
import re
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = "deepnet_dashboard.js"
MARK = "/* deepnet_fast: dashboard_extras.py */"
RATIO_PREFIX = "x "
REFERENCE_VALUE = 1.0

# graphdisplay.js (asv 0.6): line after which a call is inserted -> the call.
GRAPHDISPLAY_PATCHES = (
    ('        $("#title").text(bm_name);\n',
     "        deepnet_dashboard.show_benchmark(bm_name);"),
    ("        handle_x_scale(options);\n        handle_y_scale(options);\n",
     "        deepnet_dashboard.before_plot(options, current_benchmark, "
     "{log: log_scale, zoom: zoom_y_axis, relative: reference_scale});"),
    ("            handle_y_scale(new_options);\n",
     "            deepnet_dashboard.before_plot(new_options, current_benchmark, "
     "{log: log_scale, zoom: zoom_y_axis, relative: reference_scale});"),
)
# The closure variables the calls read.
GRAPHDISPLAY_VARIABLES = ("current_benchmark", "log_scale", "zoom_y_axis", "reference_scale")
_GRAPHDISPLAY_TAG = re.compile(
    r'<script\b[^>]*\bsrc="graphdisplay\.js"[^>]*>\s*</script>\n?', re.IGNORECASE)
_OUR_TAG = f'<script type="text/javascript" src="{SCRIPT}"></script>'
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_CODE = re.compile(r"``(.+?)``")


def reference_line(unit):
    """The value of the reference line for a benchmark of ``unit``: 1.0 for a
    ratio ("x NumPy's time ..."), None for any other unit."""
    return REFERENCE_VALUE if (unit or "").startswith(RATIO_PREFIX) else None


def method_docstring(code, method):
    """The docstring of ``method`` in asv's published ``code``, or None."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == method:
            return ast.get_docstring(node)
    return None


def class_docstrings(benchmark_dir):
    """``{(module, class): docstring}`` of the benchmark sources, read with ast."""
    docs = {}
    for root, _, files in os.walk(benchmark_dir):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            module = os.path.relpath(path, benchmark_dir)[:-3].replace(os.sep, ".")
            module = module.removesuffix(".__init__")
            with open(path, encoding="utf-8") as fh:
                try:
                    tree = ast.parse(fh.read())
                except SyntaxError:
                    continue
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and ast.get_docstring(node):
                    docs[(module, node.name)] = ast.get_docstring(node)
    return docs


def paragraphs(text):
    """A docstring as paragraphs of ``[text, is_code]`` segments: lines joined,
    ``literal`` and :role:`target` as code."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        line = " ".join(part.strip() for part in block.splitlines() if part.strip())
        line = _ROLE.sub(lambda m: "``" + re.sub(r"\s+", "", m.group(1)) + "``", line)
        segments, start = [], 0
        for match in _CODE.finditer(line):
            if match.start() > start:
                segments.append([line[start:match.start()], False])
            segments.append([match.group(1), True])
            start = match.end()
        if start < len(line):
            segments.append([line[start:], False])
        if segments:
            out.append(segments)
    return out


def dashboard_data(benchmarks, class_docs):
    """``{name: {title, description, reference_line}}`` for ``index.json``'s
    benchmarks."""
    data = {}
    for name, bm in benchmarks.items():
        parts = name.split(".")
        texts = [class_docs.get((".".join(parts[:-2]), parts[-2])) if len(parts) > 2 else None,
                 method_docstring(bm.get("code", ""), parts[-1])]
        description = [p for text in texts if text for p in paragraphs(text)]
        line = reference_line(bm.get("unit"))
        if line is not None:
            description.append([[f"The dark horizontal line marks {line:.1f}, where both times "
                                 f"are equal (unit: {bm['unit']}).", False]])
        data[name] = {"title": bm.get("pretty_name") or name, "description": description,
                      "reference_line": line}
    return data


def patch_graphdisplay(text):
    """asv's graphdisplay.js with the calls inserted; unchanged if already
    patched. Raises ValueError where asv's code is not as expected."""
    patched = text.count(MARK)
    if patched == len(GRAPHDISPLAY_PATCHES):
        return text
    if patched:
        raise ValueError(f"graphdisplay.js holds {patched} of the {len(GRAPHDISPLAY_PATCHES)} "
                         "patched lines: publish again (asv publish) and rerun")
    for variable in GRAPHDISPLAY_VARIABLES:
        if not re.search(rf"^    var {variable}\b", text, re.MULTILINE):
            raise ValueError(f"graphdisplay.js no longer declares 'var {variable}': "
                             "asv's graph page changed, update dashboard_extras.py")
    for anchor, call in GRAPHDISPLAY_PATCHES:
        count = text.count(anchor)
        if count != 1:
            raise ValueError(f"graphdisplay.js holds {count} copies of {anchor!r} (expected "
                             "one): asv's graph page changed, update dashboard_extras.py")
        text = text.replace(anchor, f"{anchor}{call}  {MARK}\n")
    return text


def patch_index(text):
    """index.html loading ``deepnet_dashboard.js`` after graphdisplay.js."""
    if _OUR_TAG in text:
        return text
    tags = _GRAPHDISPLAY_TAG.findall(text)
    if len(tags) != 1:
        raise ValueError(f"index.html holds {len(tags)} graphdisplay.js script tags "
                         "(expected one): asv's page changed, update dashboard_extras.py")
    return text.replace(tags[0], f"{tags[0]}    {_OUR_TAG}\n")


def script(data):
    """The text of ``deepnet_dashboard.js``: the data, then dashboard_extras.js."""
    with open(os.path.join(HERE, "dashboard_extras.js"), encoding="utf-8") as fh:
        code = fh.read()
    blob = json.dumps(data, indent=1, sort_keys=True).replace("</", "<\\/")
    return f"window.DEEPNET_DASHBOARD_DATA = {blob};\n\n{code}"


def apply(html_dir, benchmark_dir=os.path.join(HERE, "benchmarks")):
    """Add the descriptions and reference lines to the dashboard in ``html_dir``;
    returns the data written."""
    index_json = os.path.join(html_dir, "index.json")
    if not os.path.isfile(index_json):
        raise ValueError(f"no index.json in {html_dir}: run asv publish first")
    with open(index_json, encoding="utf-8") as fh:
        benchmarks = json.load(fh)["benchmarks"]
    data = dashboard_data(benchmarks, class_docstrings(benchmark_dir))
    edits = {}
    for page, patch in (("graphdisplay.js", patch_graphdisplay), ("index.html", patch_index)):
        with open(os.path.join(html_dir, page), encoding="utf-8") as fh:
            edits[page] = patch(fh.read())    # both checked before either is written
    with open(os.path.join(html_dir, SCRIPT), "w", encoding="utf-8") as fh:
        fh.write(script(data))
    for page, text in edits.items():
        with open(os.path.join(html_dir, page), "w", encoding="utf-8") as fh:
            fh.write(text)
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="html",
                        help="the folder asv publish wrote (default: html)")
    parser.add_argument("--benchmark-dir", default=os.path.join(HERE, "benchmarks"),
                        help="the benchmark sources, for class docstrings (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        data = apply(args.html_dir, args.benchmark_dir)
    except ValueError as exc:
        raise SystemExit(f"dashboard_extras: {exc}") from None
    ratios = sum(d["reference_line"] is not None for d in data.values())
    print(f"{args.html_dir}: descriptions on {len(data)} graph pages, a line at "
          f"{REFERENCE_VALUE:.1f} on {ratios} ratio graphs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
