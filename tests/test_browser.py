"""The built site in a real browser (headless Chromium): math typeset on notebook, annotated and
API pages, figures visible, notes beside code, search answering; screenshots are saved in the
built site's `screenshots/` folder. Skipped where Chromium or playwright is missing, unless LABNORM_REQUIRE_BROWSER=1
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
    (site / "screenshots").mkdir()
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
    # Interactive figures a notebook saved (`report.explore()`) draw from the site's plotly.js, quickly
    plots = page.locator(".jp-OutputArea .labnorm-plot").count()
    if plots:
        page.wait_for_function("n => document.querySelectorAll('.jp-OutputArea .labnorm-plot[data-drawn] .main-svg')"
                               ".length >= n", arg=plots, timeout=20000)
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
    page.screenshot(path=str(site / "screenshots" / f"{ipynb.stem}.png"))
    page.close()


def test_annotated_page_shows_notes_beside_code(server, browser):
    url, site = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/source/batch_norm/")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
    page.evaluate("() => MathJax.startup.promise")
    sections = page.locator(".annotated-section")
    assert sections.count() > 10
    # In a section with both, the notes sit left of the code, on the same row.
    pairs = page.evaluate("""() => [...document.querySelectorAll('.annotated-section')].map(s => {
        const n = s.querySelector('.annotated-notes').getBoundingClientRect();
        const c = s.querySelector('.annotated-code pre');
        if (!c || !s.querySelector('.annotated-notes').innerText.trim()) return null;
        const r = c.getBoundingClientRect();
        return [n.right <= r.left + 1, Math.abs(n.top - r.top) < 120];
    }).filter(x => x)""")
    assert pairs and all(left and row for left, row in pairs), pairs
    # The notes' math is typeset, and the page links back to its notebook
    assert page.locator(".annotated-notes mjx-container").count() > 5
    assert page.locator('a[href*="notebooks/01_batch_and_group_norm"]').count() >= 1
    page.screenshot(path=str(site / "screenshots" / "annotated_batch_norm.png"))
    # ... and the notebook page links here
    page.goto(f"{url}/notebooks/01_batch_and_group_norm/")
    page.locator(".annotated-link a").first.click()
    page.wait_for_url("**/source/batch_norm/")
    page.close()


def test_search_returns_results(server, browser):
    url, site = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/")
    # The search worker builds its index after load; a query typed before it is ready is lost.
    page.wait_for_function(
        "() => (document.querySelector('.md-search-result__meta') || {}).innerText === 'Type to start searching'",
        timeout=30000,
    )
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator(".md-search__input").press_sequentially("group norm", delay=20)
    page.wait_for_selector(".md-search-result__item", timeout=20000)
    assert page.locator(".md-search-result__item").count() > 0
    page.screenshot(path=str(site / "screenshots" / "search.png"))
    page.close()


def test_results_and_api_pages(server, browser):
    url, site = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/results/")
    sizes = page.evaluate("() => [...document.querySelectorAll('article img')].map(i => i.naturalWidth)")
    assert sizes and all(w > 100 for w in sizes), sizes
    assert page.locator("text=CIFAR-10 (JPEG q75 copy)").count() > 0
    page.screenshot(path=str(site / "screenshots" / "results.png"))
    page.goto(f"{url}/api/")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
    page.evaluate("() => MathJax.startup.promise")
    assert page.locator("text=BatchNorm2d").count() > 0
    assert page.locator("article mjx-container").count() > 5
    page.close()


def _offline_page(browser, url, **viewport):
    """A page that may load only from the local server: every other request is blocked (as offline), and
    the console errors not caused by a blocked request are collected in `page.errors`."""
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 900})
    page.errors, blocked = [], []
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else (blocked.append(r.request.url), r.abort()))
    page.on("pageerror", lambda e: page.errors.append(str(e)))

    def console(m):
        # A blocked external link (Material asks GitHub for the repository's stars) fails to load: allowed
        if m.type == "error" and not (blocked and "ERR_FAILED" in m.text):
            page.errors.append(m.text)
    page.on("console", console)
    return page


def test_interactive_figures_draw_offline_and_answer_hover(server, browser):
    """Every interactive figure of the results page draws from the site's own plotly.js with no network:
    the heatmap's cells, the scatter's points, the range-test lines, the 3-D surface and cubes; hovering shows a
    value; dragging turns the surface."""
    url, site = server
    page = _offline_page(browser, url)
    page.goto(f"{url}/results/")
    boxes = page.locator(".labnorm-plot")
    n = boxes.count()
    assert n >= 4
    page.wait_for_function(f"() => document.querySelectorAll('.labnorm-plot[data-drawn] .main-svg').length >= {n}",
                           timeout=30000)
    marks = page.evaluate("""() => [...document.querySelectorAll('.labnorm-plot .js-plotly-plot')].map(gd => ({
        types: gd._fullData.map(t => t.type),
        heat: gd.querySelectorAll('.hm image').length, points: gd.querySelectorAll('.scatterlayer .point').length,
        lines: gd.querySelectorAll('.scatterlayer .js-line').length, gl: gd.querySelectorAll('.gl-container canvas').length}))""")
    kinds = {t for m in marks for t in m["types"]}
    assert {"heatmap", "scatter", "surface", "scatter3d"} <= kinds, kinds
    for m in marks:
        if "heatmap" in m["types"]:
            assert m["heat"] == 1, m
        elif {"surface", "scatter3d"} & set(m["types"]):  # WebGL: a canvas
            assert m["gl"] >= 1, m
        else:
            assert m["points"] >= 3 or m["lines"] >= 3, m  # (a partial record's scatter has few points)
    # Only the site's own plotly.js, served once from assets/
    scripts = page.evaluate("() => [...document.scripts].map(s => s.src).filter(s => s.includes('plotly'))")
    assert scripts == [f"{url}/assets/plotly/plotly.min.js"], scripts
    # Hover a heatmap cell: the value with its interval over seeds
    heat = page.locator(".labnorm-plot:has(.hm) .nsewdrag").first
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    # (a partial record has cells still to run, which hover "not run": the top right cell — the baseline at the
    # largest batch, the first unit to run — has a value whenever the figure has any)
    for fx, fy in ((0.97, 0.02), (0.3, 0.2)):
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        page.wait_for_selector(".labnorm-plot .hoverlayer .hovertext", timeout=5000)
        text = page.locator(".labnorm-plot .hoverlayer .hovertext").first.text_content()
        if "not run" not in text:
            break
    assert "±" in text and "%" in text and "n=" in text, text
    page.screenshot(path=str(site / "screenshots" / "results_heatmap_hover.png"))
    # Turn the surface: a drag changes the camera
    surface = page.locator(".labnorm-plot:has(.gl-container)").first
    surface.scroll_into_view_if_needed()
    eye = ("() => JSON.stringify(document.querySelector('.labnorm-plot .gl-container')"
           ".closest('.js-plotly-plot').layout.scene.camera.eye)")
    before = page.evaluate(eye)
    b = surface.locator(".svg-container").bounding_box()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2 + 120, b["y"] + b["height"] / 2 + 30, steps=8)
    page.mouse.up()
    page.wait_for_function(f"() => ({eye})() !== {before!r}", timeout=5000)
    page.screenshot(path=str(site / "screenshots" / "results_surface.png"))
    assert not page.errors, page.errors
    page.close()


def test_ranking_tables_sort_by_a_clicked_column(server, browser):
    url, site = server
    page = _offline_page(browser, url)
    page.goto(f"{url}/results/")
    table = page.locator(".labnorm-table.ranked table").first
    table.scroll_into_view_if_needed()
    headers = table.locator("thead th")
    names = [h.inner_text().strip() for h in headers.all()]
    col = next(i for i, h in enumerate(names) if h.startswith("norm"))

    def column(i):
        return table.evaluate(f"t => [...t.tBodies[0].rows].map(r => r.cells[{i}].innerText.trim())")

    headers.nth(col).click()
    assert headers.nth(col).get_attribute("aria-sort") == "ascending"
    words = column(col)
    assert words == sorted(words, key=str.lower) or words == sorted(words), words
    headers.nth(0).click()  # "#": numbers, best first on the first click
    ranks = [int(r) for r in column(0) if r.isdigit()]
    assert ranks == sorted(ranks, reverse=True), ranks
    headers.nth(0).click()
    ranks = [int(r) for r in column(0) if r.isdigit()]
    assert ranks == sorted(ranks), ranks
    assert not page.errors, page.errors
    page.close()


def test_notebook_pages_read_at_phone_width(server, browser):
    """At 390 px every notebook page fits: nothing but code and printed tables scrolls sideways, and
    prose keeps a readable size."""
    url, site = server
    for ipynb in NOTEBOOKS:
        page = _offline_page(browser, url, width=390, height=844)
        page.goto(f"{url}/notebooks/{ipynb.stem}/")
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 391, f"{ipynb.stem}: the page is {wide} px wide at 390 px"
        small = page.evaluate("""() => [...document.querySelectorAll('.jp-RenderedMarkdown p')]
            .map(p => parseFloat(getComputedStyle(p).fontSize)).filter(s => s < 12).length""")
        assert small == 0, f"{ipynb.stem}: {small} paragraphs under 12 px"
        if ipynb.stem.startswith("09"):
            page.screenshot(path=str(site / "screenshots" / f"{ipynb.stem}_phone.png"))
        page.close()


def test_notebook_pages_give_tables_and_code_the_width(server, browser):
    """At 1400 px the notebook column is wide (no right-hand table of contents) and printed tables keep
    their lines (they scroll sideways, never wrap mid-word); at a phone's width the page still renders."""
    url, site = server
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/notebooks/01_batch_and_group_norm/")
    width = page.evaluate("() => document.querySelector('.jupyter-wrapper').getBoundingClientRect().width")
    assert width > 900, f"notebook column only {width:.0f} px wide"
    assert not page.locator(".md-sidebar--secondary").is_visible()
    modes = page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea-output pre')].map(p => getComputedStyle(p).whiteSpace)")
    assert modes and set(modes) == {"pre"}, set(modes)
    page.screenshot(path=str(site / "screenshots" / "notebook_1400px.png"))
    page.close()
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(f"{url}/notebooks/01_batch_and_group_norm/")
    assert phone.locator(".jupyter-wrapper").count() == 1
    phone.screenshot(path=str(site / "screenshots" / "notebook_phone.png"))
    phone.close()
