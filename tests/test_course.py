"""A first course (issue 34): what every notebook owes a first-time reader, and the site pieces it relies on.

For every `notebooks/NN_*.ipynb`:

- **exercises** — at least two "Try it" exercises, each the cell pattern the site's hook and a reader rely
  on: a markdown cell with a `### Try it` heading, a ⏱ time label and a `<details><summary>Hint` block,
  then a code cell tagged `solution` whose `jupyter.source_hidden` is true (collapsed in JupyterLab),
  then a code cell tagged `check`; nbval runs both, so neither may be skipped;
- **the problem first** — a `## The problem` heading before the notebook's first display formula (`$$`);
- **readable figures** — every saved PNG records (in its `pHYs` chunk) a resolution of at least 100 dpi.

And for the site: the page "Which normalization should I use?" (`choose.md`) and the glossary are in
the nav; the glossary defines every anchor the notebooks may link to, and every glossary link in the
notebooks and docs names one of them; the hook collapses a cell tagged `solution` into a
`<details class="solution">` block.

Each check is a function that returns what is wrong (an empty list: nothing), run on the real notebooks
(parametrized, so a failure names the notebook) and, both ways, on a tiny notebook built here from the
exact py:percent cells the course asks for.
"""

from __future__ import annotations

import base64
import copy
import io
import re
import struct
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import mkdocs_hooks  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MIN_EXERCISES = 2
MIN_DPI = 100
# The glossary's anchors: the notebooks link to https://labnorm.github.io/labnorm/glossary/#<anchor>
GLOSSARY_ANCHORS = [
    "one-cycle", "linear-lr-scaling", "channels-last", "nbval", "silu", "tlu", "lipschitz", "bit", "the-source",
    "range-test", "running-statistics", "per-worker-batch", "bf16", "tta", "label-smoothing", "lookahead",
    "whitening", "pre-ln", "post-ln", "qk-norm",
]
TRY_IT = re.compile(r"^###\s+Try it\b.*$", re.M)
HINT = re.compile(r"<details>\s*<summary>\s*Hint", re.I)
# nbconvert renders markdown inside an HTML block only after a blank line
HINT_BODY = re.compile(r"<summary>\s*Hint[^<]*</summary>[ \t]*\n[ \t]*\n", re.I)
THE_PROBLEM = re.compile(r"^##\s+The problem\b", re.M)
SKIP = re.compile(r"NBVAL_SKIP|NBVAL_RAISES_EXCEPTION", re.I)
SKIP_TAGS = {"nbval-skip", "raises-exception", "skip-execution"}


def _source(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _read(path: Path):
    return nbformat.read(path, as_version=4)


# ---------------------------------------------------------------------------------------------- checks


def exercise_problems(nb) -> tuple[int, list[str]]:
    """(the number of well-formed "Try it" exercises, what is wrong with the notebook's exercises)."""
    cells = nb["cells"]
    good, problems = 0, []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        src = _source(cell)
        headings = TRY_IT.findall(src)
        if not headings:
            continue
        where = f"cell {i} {headings[0].strip()!r}"
        wrong = []
        if len(headings) > 1:
            wrong.append("one '### Try it' per markdown cell")
        if "⏱" not in src:
            wrong.append("no ⏱ time label")
        if not HINT.search(src):
            wrong.append("no <details><summary>Hint</summary> … </details> block")
        elif not HINT_BODY.search(src):
            wrong.append("no blank line after <summary>Hint</summary>: the hint's markdown would not be rendered")
        # The next two code cells (markdown may sit between them, not another exercise)
        following = []
        for j in range(i + 1, len(cells)):
            if cells[j]["cell_type"] == "markdown" and TRY_IT.search(_source(cells[j])):
                break
            if cells[j]["cell_type"] == "code":
                following.append(cells[j])
                if len(following) == 2:
                    break
        solution = following[0] if following else None
        check = following[1] if len(following) > 1 else None
        if solution is None or "solution" not in _tags(solution):
            wrong.append("the next code cell is not tagged 'solution'")
        elif solution.get("metadata", {}).get("jupyter", {}).get("source_hidden") is not True:
            wrong.append("the solution cell's metadata has no jupyter.source_hidden: true "
                         "(py:percent: `# %% tags=[\"solution\"] jupyter={\"source_hidden\": true}`)")
        if check is None or "check" not in _tags(check):
            wrong.append("the code cell after the solution is not tagged 'check'")
        for name, c in (("solution", solution), ("check", check)):
            if c is None:
                continue
            if not _source(c).strip():
                wrong.append(f"the {name} cell is empty")
            if SKIP.search(_source(c)) or SKIP_TAGS & set(_tags(c)):
                wrong.append(f"the {name} cell is skipped by nbval: nbval must run it")
        if wrong:
            problems.append(f"{where}: " + "; ".join(wrong))
        else:
            good += 1
    if good < MIN_EXERCISES:
        problems.append(f"{good} well-formed 'Try it' exercise(s), at least {MIN_EXERCISES} wanted")
    return good, problems


def problem_first_problems(nb) -> list[str]:
    """A `## The problem` heading, before the first display formula (`$$`) of any markdown cell."""
    heading = formula = None
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        src = _source(cell)
        if heading is None and (m := THE_PROBLEM.search(src)):
            heading = (i, m.start())
        if formula is None and (f := src.find("$$")) >= 0:
            formula = (i, f)
    if heading is None:
        return ["no '## The problem' section"]
    if formula is not None and formula < heading:
        return [f"the first display formula ($$, cell {formula[0]}) comes before '## The problem' (cell {heading[0]})"]
    return []


def png_dpi(data: bytes) -> float | None:
    """The resolution a PNG records in its pHYs chunk, in dots per inch (the lower of x and y); None
    when it records none (no pHYs before the image data, or one in unknown units)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", data[pos + 8:pos + 17])
            return min(x, y) * 0.0254 if unit == 1 else None  # unit 1: pixels per metre
        if kind in (b"IDAT", b"IEND"):  # pHYs must come before the image data
            return None
        pos += 12 + length
    return None


def figure_problems(nb) -> list[str]:
    """Every saved PNG output at ≥ MIN_DPI."""
    problems = []
    for i, cell in enumerate(nb["cells"]):
        for k, out in enumerate(cell.get("outputs", []) if cell["cell_type"] == "code" else []):
            png = out.get("data", {}).get("image/png")
            if png is None:
                continue
            data = base64.b64decode("".join(png) if isinstance(png, list) else png)
            dpi = png_dpi(data)
            if dpi is None:
                problems.append(f"cell {i}, output {k}: a PNG that records no resolution (no pHYs chunk); draw it "
                                "with matplotlib after readable_style() (labnorm.experiments.plots), which records it")
            elif round(dpi) < MIN_DPI:
                problems.append(f"cell {i}, output {k}: a PNG at {dpi:.0f} dpi, under {MIN_DPI} "
                                "(call labnorm.experiments.plots.readable_style() before drawing, then re-execute; report figures are drawn at 100 dpi)")
    return problems


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return []


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may hold `!!python/name:` and `!ENV` tags: read them as nothing."""


_Loader.add_multi_constructor("", lambda loader, suffix, node: None)


def mkdocs_config(path: Path = ROOT / "mkdocs.yml") -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


def heading_ids(markdown_text: str) -> list[str]:
    """The ids the site gives a page's headings: Python-Markdown with mkdocs.yml's attr_list and toc."""
    import markdown

    html = markdown.markdown(markdown_text, extensions=["attr_list", "md_in_html", "tables", "toc"])
    return re.findall(r'<h[1-6][^>]*\bid="([^"]+)"', html)


# ------------------------------------------------------------------------------------- the notebooks


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_checkable_exercises(ipynb):
    _, problems = exercise_problems(_read(ipynb))
    assert not problems, f"{ipynb.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shows_the_problem_before_the_formulas(ipynb):
    problems = problem_first_problems(_read(ipynb))
    assert not problems, f"{ipynb.name}: " + "; ".join(problems)


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_figures_are_saved_at_100_dpi(ipynb):
    problems = figure_problems(_read(ipynb))
    assert not problems, f"{ipynb.name}:\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------------------------------------- the site


def test_choose_and_glossary_are_in_the_nav():
    config = mkdocs_config()
    pages = _nav_pages(config["nav"])
    for page in ("choose.md", "glossary.md"):
        assert page in pages, f"{page} is not in mkdocs.yml's nav"
        assert (ROOT / "docs" / page).is_file(), f"docs/{page} is in the nav but does not exist"
    # "Which normalization should I use?" right after Home; the glossary near the end
    assert pages.index("choose.md") == pages.index("index.md") + 1
    assert pages.index("glossary.md") >= len(pages) - 3
    home = (ROOT / "docs" / "index.md").read_text()
    assert "](choose.md)" in home and "](glossary.md)" in home


def test_glossary_defines_every_anchor():
    ids = heading_ids((ROOT / "docs" / "glossary.md").read_text())
    missing = [a for a in GLOSSARY_ANCHORS if a not in ids]
    assert not missing, f"docs/glossary.md has no heading with the id(s) {missing}"


def test_glossary_links_name_a_defined_anchor():
    ids = set(heading_ids((ROOT / "docs" / "glossary.md").read_text()))
    link = re.compile(r"(?:labnorm\.github\.io/labnorm/glossary/|glossary\.md)#([\w-]+)")
    sources = [*NOTEBOOKS, *sorted((ROOT / "docs").glob("*.md"))]
    broken = sorted({f"{p.relative_to(ROOT)}: #{a}" for p in sources for a in link.findall(p.read_text()) if a not in ids})
    assert not broken, f"links to glossary anchors that do not exist: {broken}"


# A page as mkdocs-jupyter writes it: an outer and an inner <div> carry the cell's tags as classes
PAGE = """<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell"><div class="jp-RenderedMarkdown"><h3>Try it</h3></div></div>
<div class="jp-Cell jp-CodeCell jp-Notebook-cell celltag_solution">
<div class="jp-Cell jp-CodeCell jp-Notebook-cell celltag_solution" id="cell-id=a1">
<div class="jp-Cell-inputWrapper"><pre>x = 1 + 2  # &lt;div class="celltag_solution"&gt; in code stays text</pre></div>
<div class="jp-Cell-outputWrapper"><div class="jp-OutputArea"><pre>3</pre></div></div>
</div>
</div><div class="jp-Cell jp-CodeCell jp-Notebook-cell celltag_check">
<div class="jp-Cell jp-CodeCell jp-Notebook-cell celltag_check" id="cell-id=a2"><pre>assert x == 3</pre></div>
</div>"""


def test_hook_wraps_solution_cells_in_a_collapsed_block():
    html = mkdocs_hooks.wrap_solutions(PAGE)
    assert html.count('<details class="solution"><summary>Solution</summary>') == 1 and html.count("</details>") == 1
    opened, closed = html.index('<details class="solution">'), html.index("</details>")
    # The whole solution cell (both divs, input and output) is inside; the check cell is not
    assert opened < html.index("celltag_solution") and html.rindex("<pre>3</pre>") < closed < html.index("celltag_check")
    # Nothing is lost or reordered
    assert html.replace(mkdocs_hooks.SOLUTION_OPEN, "").replace(mkdocs_hooks.SOLUTION_CLOSE, "") == PAGE
    # No solution cell: unchanged; two: two blocks; a cell whose end is missing: left as it is
    assert mkdocs_hooks.wrap_solutions(PAGE.replace("celltag_solution", "celltag_other")) == PAGE.replace(
        "celltag_solution", "celltag_other")
    assert mkdocs_hooks.wrap_solutions(PAGE + PAGE).count('<details class="solution">') == 2
    assert mkdocs_hooks.wrap_solutions(PAGE[:PAGE.index("</div><div class=\"jp-Cell jp-CodeCell")]).count("<details") == 0


def test_hook_collapses_solutions_only_on_notebook_pages():
    class File:
        src_uri, dest_uri = "notebooks/01_x.ipynb", "notebooks/01_x/index.html"

    class Page:
        file = File()

    config = {"extra": {"annotated": {}}}
    assert '<details class="solution">' in mkdocs_hooks.on_page_content(PAGE, page=Page(), config=config, files=None)
    File.src_uri, File.dest_uri = "index.md", "index.html"
    assert mkdocs_hooks.on_page_content(PAGE, page=Page(), config=config, files=None) == PAGE


# ------------------------------------------------------------------- a notebook that follows the course

# Written as a helper writes a notebook: py:percent, read by jupytext (the .py side of every pair)
EXERCISE = '''
# %% [markdown]
# ### Try it: {title} (⏱ ~5 min)
#
# Compute it.
#
# <details><summary>Hint</summary>
#
# Use `+`.
#
# </details>

# %% tags=["solution"] jupyter={{"source_hidden": true}}
# Solution: replace this cell with your own code, then run the check below.
x = 1 + 2

# %% tags=["check"]
assert x == 3
print("✓ x is 3")
'''
COURSE_PY = '''# %% [markdown]
# # A tiny notebook
#
# The title block: a quote, inline math $x$ is fine.

# %%
import math

# %% [markdown]
# ## The problem
#
# What goes wrong without the technique.

# %%
print(math.pi)

# %% [markdown]
# ## The idea
#
# $$y = \\frac{x - \\mu}{\\sigma}$$
''' + EXERCISE.format(title="first") + EXERCISE.format(title="second")


def _png(dpi: int | None) -> str:
    """A small matplotlib figure as a notebook's base64 PNG, as the inline backend saves it (None: no pHYs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    with matplotlib.rc_context():
        fig = plt.figure(figsize=(2, 1), dpi=dpi or 100)
        fig.add_subplot().plot([0, 1])
        data = print_figure(fig, "png", bbox_inches="tight")
        plt.close(fig)
    if dpi is None:  # the same PNG without its pHYs chunk
        at = data.index(b"pHYs") - 4
        data = data[:at] + data[at + 12 + struct.unpack(">I", data[at:at + 4])[0]:]
    return base64.b64encode(data).decode()


@pytest.fixture
def course(tmp_path):
    """The tiny notebook, converted by jupytext from COURSE_PY, with a figure at 100 dpi."""
    import jupytext

    py = tmp_path / "00_tiny.py"
    py.write_text(COURSE_PY)
    nb = jupytext.read(py, fmt="py:percent")
    fig = next(c for c in nb.cells if c.cell_type == "code" and "math.pi" in c.source)
    fig.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(100), "text/plain": "<Figure>"})]
    path = tmp_path / "00_tiny.ipynb"
    nbformat.write(nb, path)
    return _read(path)


def test_the_course_cell_pattern_round_trips_through_jupytext(course):
    solutions = [c for c in course.cells if "solution" in _tags(c)]
    assert len(solutions) == 2
    assert all(c.metadata["jupyter"] == {"source_hidden": True} for c in solutions)
    import jupytext

    # Written back, the pair keeps the metadata (jupytext orders the keys: jupyter=..., then tags=...)
    back = jupytext.writes(course, fmt="py:percent")
    assert back.count('# %% jupyter={"source_hidden": true} tags=["solution"]') == 2
    first = course.cells.index(solutions[0])
    assert jupytext.reads(back, fmt="py:percent").cells[first].metadata == solutions[0].metadata


def test_checks_pass_on_a_notebook_that_follows_the_course(course):
    assert exercise_problems(course) == (2, [])
    assert problem_first_problems(course) == []
    assert figure_problems(course) == []


def _cell(nb, predicate):
    return next(c for c in nb.cells if predicate(c))


@pytest.mark.parametrize("breakage, expected", [
    ("hidden", "jupyter.source_hidden"),
    ("untagged solution", "not tagged 'solution'"),
    ("no check", "not tagged 'check'"),
    ("no time", "⏱"),
    ("no hint", "Hint"),
    ("hint not rendered", "blank line"),
    ("skipped", "skipped by nbval"),
    ("one exercise", "1 well-formed"),
])
def test_exercise_check_notices(course, breakage, expected):
    nb = copy.deepcopy(course)
    solution = _cell(nb, lambda c: "solution" in _tags(c))
    check = _cell(nb, lambda c: "check" in _tags(c))
    try_it = _cell(nb, lambda c: c.cell_type == "markdown" and TRY_IT.search(c.source))
    if breakage == "hidden":
        del solution.metadata["jupyter"]
    elif breakage == "untagged solution":
        solution.metadata["tags"] = []
    elif breakage == "no check":
        check.metadata["tags"] = []
    elif breakage == "no time":
        try_it.source = try_it.source.replace("⏱", "")
    elif breakage == "no hint":
        try_it.source = re.sub(r"<details>.*</details>", "", try_it.source, flags=re.S)
    elif breakage == "hint not rendered":
        try_it.source = re.sub(r"</summary>\s*", "</summary>\n", try_it.source)
    elif breakage == "skipped":
        check.source = "# NBVAL_SKIP\n" + check.source
    elif breakage == "one exercise":
        nb.cells = nb.cells[:nb.cells.index(try_it)] + nb.cells[nb.cells.index(check) + 1:]
    good, problems = exercise_problems(nb)
    assert good == 1 and any(expected in p for p in problems), problems


def test_problem_first_check_notices(course):
    nb = copy.deepcopy(course)
    problem = _cell(nb, lambda c: c.cell_type == "markdown" and THE_PROBLEM.search(c.source))
    problem.source = problem.source.replace("## The problem", "## Setting")
    assert problem_first_problems(nb) == ["no '## The problem' section"]
    nb = copy.deepcopy(course)
    nb.cells[0].source += "\n\n$$a = b$$"  # a formula in the title block
    assert "comes before '## The problem'" in problem_first_problems(nb)[0]


@pytest.mark.parametrize("dpi, expected", [(72, "at 72 dpi"), (None, "no pHYs")])
def test_figure_check_notices(course, dpi, expected):
    nb = copy.deepcopy(course)
    out = _cell(nb, lambda c: c.get("outputs")).outputs[0]
    out.data["image/png"] = _png(dpi)
    problems = figure_problems(nb)
    assert len(problems) == 1 and expected in problems[0], problems


def test_site_collapses_the_solution_of_a_built_notebook(tmp_path, course):
    """The tiny notebook through mkdocs-jupyter's own converter, then the hook: the solution cell in a
    collapsed block, the check cell after it and visible, the hint rendered as a <details> block."""
    nbconvert2 = pytest.importorskip("mkdocs_jupyter.nbconvert2")
    path = tmp_path / "built.ipynb"
    nbformat.write(course, path)
    html = mkdocs_hooks.wrap_solutions(nbconvert2.nb2html(str(path)))
    blocks = re.findall(r'<details class="solution"><summary>Solution</summary>(.*?)\n</details>', html, re.S)
    assert len(blocks) == 2
    assert all("Solution: replace this cell" in b and "celltag_check" not in b for b in blocks)
    assert html.count("celltag_check") == 4 and all('celltag_check' in html.split(b, 1)[1] for b in blocks)
    # The hint: HTML in the markdown cell, with markdown inside it rendered
    assert re.search(r"<details><summary>Hint</summary>\s*<p>Use <code>\+</code>\.</p>\s*</details>", html)


# ----------------------------------------------------------------------------------- readable figures


def test_readable_style_saves_100_dpi_with_9_pt_text():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure
    from matplotlib.font_manager import FontProperties

    from labnorm.experiments.plots import readable_style

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("error")
        readable_style()
        for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                    "legend.fontsize"):
            assert FontProperties(size=matplotlib.rcParams[key]).get_size_in_points() >= 9, key
        fig, ax = plt.subplots()
        ax.plot([0, 1], label="a")
        ax.legend()
        assert fig.get_layout_engine() is not None  # constrained layout
        fig.tight_layout()  # an explicit request still works, with no warning on stderr
        assert png_dpi(print_figure(fig, "png", bbox_inches="tight")) >= MIN_DPI - 0.01
        plt.close(fig)


def test_report_figures_are_100_dpi_with_no_text_under_9_pt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from labnorm.experiments.report import Figure

    def draw(fig):
        ax = fig.subplots()
        ax.plot([0, 1], label="a")
        ax.legend(fontsize=6)
        ax.set_yticks([0, 1], ["low", "high"], fontsize=7)
        ax.annotate("note", (0.5, 0.5), fontsize=5)

    figure = Figure("caption", draw, size=(3, 2))
    assert png_dpi(figure.png()) >= MIN_DPI - 0.01
    fig = figure.render(caption=True)
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]
    sizes += [t.get_fontsize() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert sizes and min(sizes) >= 9
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert png_dpi(buf.getvalue()) >= MIN_DPI - 0.01
    plt.close(fig)
