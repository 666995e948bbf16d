"""The built site: notebook pages with their figures, math set up for notebook markdown and
served locally (no CDN), a small search index. (The strict build itself runs in `make test`.)"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not (ROOT / "node_modules" / "mathjax").is_dir():
        pytest.skip("MathJax not installed: run `npm ci` (make test does)")
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT, check=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_page_with_figures_math_and_a_download(site, ipynb):
    page = site / "notebooks" / ipynb.stem / "index.html"
    assert page.is_file()
    html = page.read_text()
    # Saved PNG figures are embedded
    assert re.search(r'<img[^>]+src="data:image/png;base64,', html)
    # Markdown cells keep their $$ math inside the class MathJax is told to process
    md = re.findall(r'class="jp-RenderedHTMLCommon jp-RenderedMarkdown[^"]*"[^>]*>(.*?)</div>', html, re.S)
    assert any("$$" in block for block in md)
    # MathJax configured, then loaded from the site itself
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert any(s.endswith("javascripts/mathjax.js") for s in scripts)
    assert any(s.endswith("assets/mathjax/tex-mml-chtml.js") for s in scripts)
    assert not [s for s in scripts if s.startswith(("http:", "https:", "//"))], scripts
    # The notebook itself is downloadable from its page
    assert (page.parent / ipynb.name).is_file()


def test_mathjax_config_covers_notebook_markdown(site):
    config = (site / "javascripts" / "mathjax.js").read_text()
    assert "jp-RenderedMarkdown" in config and "arithmatex" in config
    assert '["$$", "$$"]' in config and '["$", "$"]' in config
    # Material's ".*|" would also ignore the class-less <p> inside notebook markdown cells
    assert 'ignoreHtmlClass: "tex2jax_ignore|jp-OutputArea"' in config
    assert (site / "assets" / "mathjax" / "tex-mml-chtml.js").stat().st_size > 500_000
    assert list((site / "assets" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_nav_has_one_entry_per_notebook(site):
    html = (site / "index.html").read_text()
    for ipynb in NOTEBOOKS:
        assert f"notebooks/{ipynb.stem}/" in html


def test_search_index_is_small_and_has_no_images(site):
    index = site / "search" / "search_index.json"
    # 2 MB: twelve notebooks written as a first course (the problem, the idea, checkable exercises), the guide to
    # choosing, the annotated source of 27 modules and the API of every module (1.18 MB before the course, 1.67 MB
    # after it, on 2026-12-07); text only, so it grows with the prose, never with a figure
    assert index.stat().st_size < 2_000_000
    text = index.read_text()
    assert "data:image" not in text and "base64" not in text
    docs = json.loads(text)["docs"]
    assert any("Group" in d["title"] for d in docs)
