"""The site's generators: annotated source sections and the results page."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import annotate  # noqa: E402
import render_pages  # noqa: E402
import results_page  # noqa: E402

SOURCE = '''"""Module title.

$$y = x$$
"""

import torch

# The constant, explained.
K = 3  # noqa: E501


@torch.no_grad()
def f(x):
    """Doubles $x$."""
    # twice
    return 2 * x


def g():
    return 1
'''


def test_sections_pair_notes_with_the_code_they_describe():
    secs = annotate.sections(SOURCE)
    assert secs[0].notes == ["Module title.\n\n$$y = x$$"] and secs[0].code == ["import torch"]
    assert secs[1].notes == ["The constant, explained."] and secs[1].code == ["K = 3  # noqa: E501"]
    # The decorator and signature follow their docstring, so the note comes first.
    assert secs[2].notes == ["Doubles $x$."]
    assert secs[2].code == ["@torch.no_grad()", "def f(x):"] and secs[2].first_line == 12
    assert secs[3].notes == ["twice"]
    assert secs[3].code[0] == "    return 2 * x"
    assert "def g():" in secs[3].code  # no docstring: stays with the code before it


def test_every_code_line_appears_once_and_nothing_else():
    import ast
    from collections import Counter

    for module in ["labnorm/batch_norm.py", "labnorm/train/lr_finder.py", "labnorm/data.py"]:
        source = (ROOT / module).read_text()
        docstrings, _ = annotate._docstring_lines(ast.parse(source))
        in_doc = {n for first, (last, _) in docstrings.items() for n in range(first, last + 1)}
        lines = source.splitlines()
        expected = Counter(
            line for n, line in enumerate(lines, 1)
            if line.strip() and n not in in_doc and not line.strip().startswith("#")
        )
        got = Counter(line for s in annotate.sections(source) for line in s.code if line.strip())
        assert got == expected, module


def test_page_links_source_and_notebooks():
    md = annotate.page("labnorm/x.py", SOURCE, "https://example.org/x.py", [("01 demo", "../notebooks/01_demo.ipynb")])
    assert "[`labnorm/x.py`](https://example.org/x.py)" in md
    assert "[01 demo](../notebooks/01_demo.ipynb)" in md
    assert md.count('class="annotated-section"') == len(annotate.sections(SOURCE))
    assert 'href="https://example.org/x.py#L12"' in md


@pytest.fixture(scope="module")
def fresh():
    return render_pages.render()


def test_rendered_pages_are_up_to_date(fresh):
    """docs/results.md, docs/results/*.png and docs/claims.md are what `make pages` renders from the saved
    records now: a new record, a changed report or claim fails here until the pages are rendered again."""
    stale = render_pages.stale(new=fresh)
    assert not stale, f"stale rendering, run `make pages` (python scripts/render_pages.py): {stale}"


def test_staleness_check_notices_a_changed_figure_and_page(tmp_path, fresh):
    import shutil

    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "claims.md").write_text((docs / "claims.md").read_text().replace("supported", "SUPPORTED", 1))
    png = sorted((docs / "results").glob("*.png"))[0]
    from PIL import Image

    Image.new("RGB", Image.open(png).size, "black").save(png)
    (docs / "results" / "gone__cpu__0.png").write_bytes(png.read_bytes())
    assert render_pages.stale(docs, new=fresh) == sorted(["claims.md", f"results/{png.name}", "results/gone__cpu__0.png"])


def test_results_page_shows_every_record_through_its_report(tmp_path, monkeypatch):
    md, images = results_page.build(ROOT, "https://github.com/labnorm/labnorm", figure_dir="results")
    records = sorted((ROOT / "results").glob("*.json"))
    for path in records:
        assert f"{path.stem}__0.png" in images and images[f"{path.stem}__0.png"][:4] == b"\x89PNG"
        assert f"](results/{path.stem}__0.png)" in md
        assert f"## {path.stem.replace('__', ' · ')}" in md
    assert md.count("| device | scale | dataset | commit |") == len(records) + len(
        list((ROOT / "benchmarks" / "results").glob("*.json")))
    assert "CIFAR-10 (JPEG q75 copy)" in md and "https://github.com/labnorm/labnorm/commit/" in md
    assert "**inconclusive at this scale**" in md and "95% Student-t interval" in md
    # $LABNORM_RESULTS is where the page reads records from
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    md, images = results_page.build(ROOT, "https://github.com/labnorm/labnorm")
    assert not images or all(not name.startswith(tuple(p.stem for p in records)) for name in images)


def test_results_page_names_no_experiment():
    text = (ROOT / "scripts" / "results_page.py").read_text()
    from labnorm.experiments import experiments

    for name in experiments():
        assert name not in text, name
