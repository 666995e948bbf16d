"""mkdocs hooks of the labnorm site (named in mkdocs.yml under `hooks:`).

1. **Notebooks.** The notebooks live in `notebooks/` at the top of the repository, not in
   `docs/`. `on_files` adds every `notebooks/NN_*.ipynb` to the site under the same path,
   before mkdocs-jupyter looks at the files (hence the high priority), so the plugin
   renders the committed outputs (no execution at build time) and the nav can name them.
2. **MathJax, served by the site.** The site must render math with no network (no CDN), so
   MathJax comes from the npm package (`npm ci` installs it from package.json) and is
   published under `assets/mathjax/`. Without it the build warns, and a strict build fails.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.labnorm")
ROOT = Path(__file__).resolve().parent.parent
MATHJAX = ROOT / "node_modules" / "mathjax" / "es5"
# The parts of MathJax's es5 folder that the tex-mml-chtml component loads.
MATHJAX_PARTS = ["tex-mml-chtml.js", "a11y", "ui", "input/tex/extensions", "output/chtml"]


def _add(files: Files, src_dir: Path, path: str, config) -> None:
    files.append(File(path, str(src_dir), config["site_dir"], config["use_directory_urls"]))


@event_priority(100)
def on_files(files: Files, config, **kwargs) -> Files:
    # (1) notebooks/NN_name.ipynb from the repository root
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        _add(files, ROOT, f"notebooks/{nb.name}", config)
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
