"""Derive every notebook's Colab badge and set-up cell from one setting: `repo_url` in mkdocs.yml.

    python scripts/notebook_links.py --write   # rewrite badges + set-up cells, re-pair the .ipynb
    python scripts/notebook_links.py --check   # exit 1 if any notebook disagrees (the tests call this)

In each `notebooks/NN_name.py` (jupytext py:percent) the badge is the markdown line
that starts with `[![Open In Colab]`, and the set-up cell is the code cell whose
first line is `# labnorm set-up`. Both are replaced whole.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BRANCH = "main"
SETUP_MARK = "# labnorm set-up"


def repo_url() -> str:
    """The project's public home, read from mkdocs.yml (the one place it is written)."""
    text = (ROOT / "mkdocs.yml").read_text()
    m = re.search(r"^repo_url:\s*(\S+)\s*$", text, re.M)
    if not m:
        raise SystemExit("mkdocs.yml has no repo_url")
    return m.group(1).rstrip("/")


def colab_url(notebook: str) -> str:
    """Colab opens a notebook straight from its GitHub path."""
    slug = repo_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def badge_line(notebook: str) -> str:
    return (
        f"# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)})"
        f" · [download the notebook]({repo_url()}/raw/{BRANCH}/notebooks/{notebook}.ipynb)"
    )


def setup_cell() -> str:
    """Installs labnorm only when it is missing (Colab); never touches torch."""
    return f'''{SETUP_MARK}: on Colab, or wherever labnorm is missing, fetch the repository
# (code + saved reference results) and install labnorm from it. Its dependencies are
# lower bounds that Colab already meets, so pip leaves torch as it is.
import importlib
import importlib.util
import os
import subprocess
import sys

REPO = "{repo_url()}"
if importlib.util.find_spec("labnorm") is None:
    subprocess.run(["git", "clone", "--depth", "1", REPO, "labnorm-repo"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "./labnorm-repo"], check=True)
    os.environ.setdefault("LABNORM_RESULTS", os.path.abspath("labnorm-repo/results"))
    importlib.invalidate_caches()'''


def _cells(text: str) -> list[str]:
    # py:percent: every cell starts with a line "# %%"
    return re.split(r"(?m)^(?=# %%)", text)


def expected(path: Path) -> str:
    name = path.stem
    out = []
    for cell in _cells(path.read_text()):
        header, _, body = cell.partition("\n")
        if header.startswith("# %%") and body.startswith(SETUP_MARK):
            tail = "\n\n" if cell.endswith("\n\n") else "\n"
            cell = f"{header}\n{setup_cell()}{tail}"
        cell = re.sub(r"(?m)^# \[!\[Open In Colab\]\(.*$", lambda _: badge_line(name), cell)
        out.append(cell)
    return "".join(out)


def problems() -> list[str]:
    found = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        text = path.read_text()
        if badge_line(path.stem) not in text:
            found.append(f"{path.name}: no Colab badge for {colab_url(path.stem)}")
        if f"# %%\n{setup_cell()}\n" not in text:
            found.append(f"{path.name}: no set-up cell matching repo_url {repo_url()}")
        if expected(path) != text:
            found.append(f"{path.name}: badge or set-up cell out of date")
    return found


def main(argv: list[str]) -> int:
    if "--write" in argv:
        for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
            new = expected(path)
            if new != path.read_text():
                path.write_text(new)
                print(f"updated {path.name}")
            # Keep the .ipynb pair in step (outputs are kept).
            subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(path)], check=True)
        return 0
    found = problems()
    for p in found:
        print(p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
