"""Look at a published asv dashboard in headless Chromium, with no network.

    python dashboard_screenshot.py html out.png "#bench_training.TrainingPerSample.track_seconds_per_sample"
    python dashboard_screenshot.py html out.png "#/regressions"

serves ``html`` on 127.0.0.1 (a free port) for the length of the call and
has Chromium render the page: every host but 127.0.0.1 resolves to nothing,
so a page that still needs a CDN shows asv's "failed to load" error instead
of the dashboard. Run ``offline_dashboard.py`` on the folder first. ``--dom``
prints the page's DOM after its scripts ran instead of saving a picture.
"""

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser():
    """Path of a Chromium-like browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def serve(html_dir):
    """Serve ``html_dir`` on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=os.path.abspath(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def render(html_dir, fragment="", png=None, size=(1400, 900), budget_ms=8000, browser=None):
    """Render ``index.html<fragment>``; save a PNG at ``png``, or return the DOM."""
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    with serve(html_dir) as base, tempfile.TemporaryDirectory(prefix="asv_chromium_") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}",
            # Offline but for the local server: other hosts do not resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}",
        ]
        command += [f"--screenshot={os.path.abspath(png)}"] if png else ["--dump-dom"]
        out = subprocess.run(command + [base + "index.html" + fragment], capture_output=True,
                             text=True, timeout=180, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{browser} failed ({out.returncode}): {out.stderr[-2000:]}")
    return None if png else out.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir")
    parser.add_argument("png", help="output picture (ignored with --dom)")
    parser.add_argument("fragment", nargs="?", default="",
                        help='the part of the address after index.html, e.g. "#/regressions"')
    parser.add_argument("--dom", action="store_true", help="print the DOM instead")
    args = parser.parse_args(argv)
    if args.dom:
        print(render(args.html_dir, args.fragment))
    else:
        render(args.html_dir, args.fragment, png=args.png)
        print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
