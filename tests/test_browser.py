"""The built site in a real browser (headless Chromium): math typeset on notebook pages, figures
visible. Skipped where Chromium or playwright is missing, unless LABNORM_REQUIRE_BROWSER=1
(CI sets it, so there a missing browser fails instead)."""

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("LABNORM_REQUIRE_BROWSER") == "1"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

if not (CHROMIUM and sync_playwright):
    if REQUIRED:
        raise RuntimeError("LABNORM_REQUIRE_BROWSER=1 but Chromium or playwright is missing")
    pytest.skip("needs Debian's chromium and the playwright package", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (ROOT / "node_modules" / "mathjax").is_dir():
        pytest.fail("MathJax not installed: run `npm ci`")
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(site)], cwd=ROOT, check=True,
                   env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", site
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_page_renders_math_and_plots(server, browser, ipynb):
    url, site = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/notebooks/{ipynb.stem}/")
    # MathJax typesets asynchronously: wait until it reports done.
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
    page.evaluate("() => MathJax.startup.promise")
    typeset = page.locator(".jp-RenderedMarkdown mjx-container").count()
    assert typeset > 10, f"only {typeset} formulas typeset"
    raw = page.evaluate(
        "() => [...document.querySelectorAll('.jp-RenderedMarkdown')]"
        ".filter(e => /\\$[^$\\s][^$]*\\$/.test(e.innerText)).length"
    )
    assert raw == 0, f"{raw} markdown cells still show raw $…$"
    # Figures are loaded and have a size on screen
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea img')].map(i => [i.naturalWidth, i.clientWidth])"
    )
    assert sizes and all(nw > 100 and cw > 100 for nw, cw in sizes), sizes
    shots = site / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / f"{ipynb.stem}.png"))
    page.close()
