"""mkdocs hooks of the labnorm site (named in mkdocs.yml under `hooks:`).

1. **Notebooks.** The notebooks live in `notebooks/` at the top of the repository, not in
   `docs/`. `on_files` adds every `notebooks/NN_*.ipynb` to the site under the same path,
   before mkdocs-jupyter looks at the files (hence the high priority), so the plugin
   renders the committed outputs (no execution at build time) and the nav can name them.
2. **MathJax, served by the site.** The site must render math with no network (no CDN), so
   MathJax comes from the npm package (`npm ci` installs it from package.json) and is
   published under `assets/mathjax/`. Without it the build warns, and a strict build fails.
3. **Annotated source.** For every module listed under `extra.annotated` in mkdocs.yml
   (module → the notebooks that build it), `scripts/annotate.py` generates
   `source/<module>.md`: notes and code side by side, linked to the notebooks; each of those
   notebook pages gets a link back at its top (`on_page_content`).
4. **plotly.js, served by the site**, for the interactive figures (`docs/javascripts/figures.js`
   loads it on the pages that have one): `node_modules/plotly.js-dist-min/plotly.min.js`,
   published as `assets/plotly/plotly.min.js`. Without it the build warns.
5. **Results and Claims** are plain files under `docs/` (`results.md`, `results/*.png`,
   `claims.md`), rendered ahead from the saved runs by `scripts/render_pages.py` (`make pages`),
   which needs torch; this hook imports no labnorm, so the site builds with the docs toolchain
   alone (`requirements-docs.txt`). A test fails when the rendering is stale.
6. **Exercise solutions, one click away.** A notebook code cell tagged `solution` (the worked answer of
   a "Try it" exercise; `jupyter.source_hidden` collapses it in JupyterLab) is wrapped on its page in
   a collapsed `<details class="solution"><summary>Solution</summary>…</details>` block
   (`wrap_solutions`, from `on_page_content`). nbconvert writes a cell's tags as classes of the
   cell's `<div>` (`celltag_solution`); mkdocs-jupyter's template nests a second such `<div>` inside
   the first, and the outer one is wrapped, input and output together.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import annotate  # noqa: E402

log = logging.getLogger("mkdocs.hooks.labnorm")
ROOT = Path(__file__).resolve().parent.parent
MATHJAX = ROOT / "node_modules" / "mathjax" / "es5"
# The parts of MathJax's es5 folder that the tex-mml-chtml component loads.
MATHJAX_PARTS = ["tex-mml-chtml.js", "a11y", "ui", "input/tex/extensions", "output/chtml"]
PLOTLY = ROOT / "node_modules" / "plotly.js-dist-min"


def _add(files: Files, src_dir: Path, path: str, config) -> None:
    files.append(File(path, str(src_dir), config["site_dir"], config["use_directory_urls"]))


@event_priority(100)
def on_files(files: Files, config, **kwargs) -> Files:
    # (1) notebooks/NN_name.ipynb from the repository root
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        _add(files, ROOT, f"notebooks/{nb.name}", config)
    # (3) annotated source pages
    for module, notebooks in _annotated(config).items():
        files.append(File.generated(config, _source_page(module), content=_annotated_page(module, notebooks, config)))
    # (4) plotly.js under assets/plotly/, from node_modules
    if (PLOTLY / "plotly.min.js").is_file():
        files.append(File("plotly.min.js", str(PLOTLY), str(Path(config["site_dir"]) / "assets" / "plotly"), False))
    else:
        log.warning("plotly.js is not installed (node_modules/plotly.js-dist-min): run `npm ci`; "
                    "interactive figures will not draw")
    # (2) MathJax under assets/mathjax/, from node_modules
    if not (MATHJAX / "tex-mml-chtml.js").is_file():
        log.warning("MathJax is not installed (node_modules/mathjax): run `npm ci`; math will not render")
        return files
    for part in MATHJAX_PARTS:
        src = MATHJAX / part
        for f in [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()):
            rel = f.relative_to(MATHJAX).as_posix()
            files.append(
                File(rel, str(MATHJAX), str(Path(config["site_dir"]) / "assets" / "mathjax"), False)
            )
    return files


def _annotated(config) -> dict[str, list[str]]:
    """{module path: [notebook stems]} from mkdocs.yml's `extra.annotated`."""
    return dict(config["extra"].get("annotated", {}))


def _source_page(module: str) -> str:
    # labnorm/train/lr_finder.py -> source/train/lr_finder.md
    return "source/" + module.removeprefix("labnorm/").removesuffix(".py") + ".md"


def _annotated_page(module: str, notebooks: list[str], config) -> str:
    page_path = Path(_source_page(module))
    links = []
    for stem in notebooks:
        rel = Path("../" * (len(page_path.parts) - 1)) / "notebooks" / f"{stem}.ipynb"
        links.append((stem.replace("_", " ", 1), rel.as_posix()))
    url = f"{config['repo_url'].rstrip('/')}/blob/main/{module}"
    return annotate.page(module, (ROOT / module).read_text(), url, links)


# The opening tag of a <div> whose class list has `celltag_solution`, and any <div> tag, opening or closing
_SOLUTION_DIV = re.compile(r"""<div\b[^>]*\bclass\s*=\s*["'][^"']*\bcelltag_solution\b[^"']*["'][^>]*>""", re.I)
_DIV_TAG = re.compile(r"<(/?)div\b[^>]*>", re.I)
SOLUTION_OPEN = '<details class="solution"><summary>Solution</summary>\n'
SOLUTION_CLOSE = "\n</details>"


def wrap_solutions(html: str) -> str:
    """Wrap each cell tagged `solution` (a `<div>` with the class `celltag_solution`, with all it holds)
    in a collapsed `<details class="solution">` block whose summary reads "Solution".

    The `<div>`s inside a cell are counted to find where it ends (the text of code and outputs is
    HTML-escaped, so no `<div` in it is a tag); a `<div>` inside a wrapped one is left as it is. A cell
    whose end cannot be found (unbalanced HTML) is left unwrapped, with a warning."""
    out, pos = [], 0
    while m := _SOLUTION_DIV.search(html, pos):
        depth, end = 0, None
        for tag in _DIV_TAG.finditer(html, m.start()):
            depth += -1 if tag.group(1) else 1
            if depth == 0:
                end = tag.end()
                break
        if end is None:
            log.warning("a cell tagged 'solution' has no closing </div>: left unwrapped")
            break
        out += [html[pos:m.start()], SOLUTION_OPEN, html[m.start():end], SOLUTION_CLOSE]
        pos = end
    return "".join(out) + html[pos:]


def on_page_content(html: str, page, config, files, **kwargs) -> str:
    """On each notebook page: collapse the exercise solutions (`wrap_solutions`), and put a link to
    the annotated source of its modules at the top."""
    src = page.file.src_uri
    if not (src.startswith("notebooks/") and src.endswith(".ipynb")):
        return html
    html = wrap_solutions(html)
    stem = Path(src).stem
    depth = len(Path(page.file.dest_uri).parts) - 1
    links = [
        f'<a href="{"../" * depth}{_source_page(m).removesuffix(".md")}/"><code>{m}</code></a>'
        for m, stems in _annotated(config).items() if stem in stems
    ]
    if not links:
        return html
    return f'<p class="annotated-link">Annotated source: {" · ".join(links)}</p>\n' + html
