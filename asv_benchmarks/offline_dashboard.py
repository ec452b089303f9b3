"""Make a published asv dashboard work without a network.

asv 0.6 writes pages that load jQuery, flot, bootstrap and three small plugins
from CDNs; offline they stay blank ("One or more external (JavaScript)
dependencies of airspeed velocity failed to load"), and asv has no option to
ship them. Run after ``asv publish``, from ``asv_benchmarks/``::

    python offline_dashboard.py html        # rewrites html/*.html, fills html/vendor/
    python -m http.server --bind 127.0.0.1 --directory html 8080

The first run downloads the libraries once with ``npm pack`` from the npm
registry (the same package and version as the CDN file) into a cache
(``--cache``, by default ``$XDG_CACHE_HOME/deepnet_fast/asv-assets``); later
runs work offline. ``--no-fetch`` fails instead of downloading. Where the
packaged file is byte for byte the CDN's (jQuery, bootstrap, orderBars, md5),
the page keeps its ``integrity`` hash and the browser checks it; the flot
files come unminified from the npm package (the CDN minified them itself) and
stupidtable as 1.1.3 (npm has no 1.0.1): those tags lose the hash.

It then runs ``dashboard_extras.py`` (``--no-extras`` does not): each
graph page shows its benchmark's description above the graph, and ratio
graphs a line at 1.0.

A CDN address the table below does not know (a newer asv) stops the script
with the address, rather than leaving a page that fails later. Serve the
folder over HTTP: the pages read their JSON with XMLHttpRequest, which
browsers refuse on ``file://`` pages.
"""

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

# CDN address in asv's pages -> (npm package@version, file in the package).
ASSETS = {
    "https://code.jquery.com/jquery-3.3.1.min.js":
        ("jquery@3.3.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js":
        ("flot@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        ("flot@0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        ("flot@0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        ("flot@0.8.3", "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js":
        ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}

# Files a stylesheet loads by relative path: bootstrap's glyphicons.
EXTRA_FILES = {
    "bootstrap@3.1.1": ["dist/fonts/glyphicons-halflings-regular." + ext
                        for ext in ("eot", "svg", "ttf", "woff")],
}

VENDOR = "vendor"
_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r'\s([a-zA-Z-]+)="([^"]*)"')


def default_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "deepnet_fast", "asv-assets")


def needed_files():
    """``{package@version: [file, ...]}`` of every asset and its extras."""
    files = {}
    for package, path in ASSETS.values():
        files.setdefault(package, [])
        if path not in files[package]:
            files[package].append(path)
    for package, paths in EXTRA_FILES.items():
        files.setdefault(package, []).extend(p for p in paths if p not in files[package])
    return files


def missing(cache):
    """``{package@version: [file, ...]}`` not yet in ``cache``."""
    out = {}
    for package, paths in needed_files().items():
        absent = [p for p in paths if not os.path.isfile(os.path.join(cache, package, p))]
        if absent:
            out[package] = absent
    return out


def fetch(cache, packages, npm="npm"):
    """Download ``packages`` with ``npm pack`` and keep the files named."""
    if shutil.which(npm) is None:
        raise SystemExit(f"offline_dashboard: {npm} not found: install Node.js's npm, or copy "
                         f"the files into {cache} (layout package@version/path): {packages}")
    for package, paths in packages.items():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([npm, "pack", package, "--silent", "--pack-destination", tmp],
                           check=True, stdout=subprocess.DEVNULL)
            (tarball,) = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
            with tarfile.open(os.path.join(tmp, tarball)) as tar:
                for path in paths:
                    data = tar.extractfile(f"package/{path}").read()
                    target = os.path.join(cache, package, path)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as fh:
                        fh.write(data)


def _sri_matches(integrity, data):
    for token in integrity.split():
        algorithm, _, digest = token.partition("-")
        if algorithm in ("sha256", "sha384", "sha512"):
            ours = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
            if ours == digest:
                return True
    return False


def localise_page(text, cache):
    """``text`` with every CDN tag pointing at ``vendor/``; returns
    ``(new_text, {local path: package file})``. Raises ValueError for an
    external address that ``ASSETS`` does not know."""
    used = {}

    def rewrite(match):
        tag = match.group(0)
        attrs = dict(_ATTR.findall(tag))
        key = "src" if match.group(1).lower() == "script" else "href"
        url = attrs.get(key, "")
        if not url.startswith(("http://", "https://", "//")):
            return tag
        if url not in ASSETS:
            raise ValueError(f"unknown external asset {url!r}: add it to ASSETS")
        package, path = ASSETS[url]
        local = f"{VENDOR}/{package}/{path}"
        used[local] = (package, path)
        tag = tag.replace(f'{key}="{url}"', f'{key}="{local}"')
        with open(os.path.join(cache, package, path), "rb") as fh:
            same_bytes = _sri_matches(attrs.get("integrity", ""), fh.read())
        if not same_bytes:
            # Not the CDN's bytes (unminified, or another patch version): the
            # hash would block it. crossorigin/referrerpolicy only matter with it.
            for name in ("integrity", "crossorigin", "referrerpolicy"):
                tag = re.sub(rf'\s{name}="[^"]*"', "", tag)
        return tag

    return _TAG.sub(rewrite, text), used


def localise(html_dir, cache):
    """Rewrite ``html_dir/*.html`` and copy the files they need to ``vendor/``."""
    pages = sorted(f for f in os.listdir(html_dir) if f.endswith(".html"))
    if "index.html" not in pages:
        raise SystemExit(f"offline_dashboard: no index.html in {html_dir}: run asv publish first")
    copied = set()
    for page in pages:
        filename = os.path.join(html_dir, page)
        with open(filename, encoding="utf-8") as fh:
            text, used = localise_page(fh.read(), cache)
        with open(filename, "w", encoding="utf-8") as fh:
            fh.write(text)
        copied.update(package for package, _ in used.values())
    for package in sorted(copied):
        for path in needed_files()[package]:
            target = os.path.join(html_dir, VENDOR, package, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(cache, package, path), target)
    return pages


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="html",
                        help="the folder asv publish wrote (default: html)")
    parser.add_argument("--cache", default=default_cache(),
                        help="where the downloaded libraries are kept (default: %(default)s)")
    parser.add_argument("--no-fetch", action="store_true",
                        help="fail instead of downloading missing libraries")
    parser.add_argument("--no-extras", action="store_true",
                        help="leave out dashboard_extras.py (descriptions above the graphs, "
                             "the line at 1.0 on ratio graphs)")
    args = parser.parse_args(argv)
    absent = missing(args.cache)
    if absent and args.no_fetch:
        raise SystemExit(f"offline_dashboard: missing in {args.cache}: {absent}")
    if absent:
        fetch(args.cache, absent)
    try:
        pages = localise(args.html_dir, args.cache)
    except ValueError as exc:
        raise SystemExit(f"offline_dashboard: {exc}") from None
    print(f"{', '.join(pages)} in {args.html_dir} now load their libraries from "
          f"{args.html_dir}/{VENDOR}/")
    if not args.no_extras:
        import dashboard_extras   # next to this script

        dashboard_extras.main([args.html_dir])
    print(f"serve with: python -m http.server --bind 127.0.0.1 --directory {args.html_dir} 8080")
    return 0


if __name__ == "__main__":
    sys.exit(main())
