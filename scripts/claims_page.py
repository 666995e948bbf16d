"""Build the site's Claims page from `labnorm.claims` and the saved records.

Called by `scripts/mkdocs_hooks.py` at build time: returns the page's Markdown; nothing is
written to the repository. Every claim of the five sources is listed with its quote, what we
test, our run (from the record's config and provenance), our number ± its 95% interval and the
computed verdict. Records are read from `labnorm.results.results_dir()` (`$LABNORM_RESULTS`
when set), the largest scale first. `python scripts/claims_page.py` prints the page.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from labnorm import claims
from labnorm.experiments import Table
from labnorm.stats import METHOD


def _cell(text: str) -> str:
    # One table cell: no line breaks (they would end the row)
    return " ".join(str(text).split())


def build(root: Path | None = None, repo_url: str = "") -> str:
    """Markdown of claims.md (`root` and `repo_url` are accepted for symmetry with the results page)."""
    assessed = claims.assess_all()
    parts = [
        # Front matter: no table of contents on the right (docs/stylesheets/claims.css widens the column)
        "---\nhide:\n  - toc\n---\n",
        "# Claims\n",
        '<div class="claims-page"></div>\n',
        "Every concrete claim of the five sources labnorm reproduces, with the run that tests it and the "
        "verdict computed from its saved record — generated when the site is built, like the "
        "[Results](results.md) page, so no number here is typed by hand.\n",
        f"**How a verdict is computed.** Our number is the mean over seeds ± the half-width of its {METHOD}. "
        "A claim comparing two arms is judged on their *paired* per-seed difference (`labnorm.verdict`): "
        "**supported** when its interval lies on the claimed side, **contradicted** when it lies on the other "
        "side, otherwise **inconclusive at this scale** — always so with one seed. A run too small to reach "
        "the claim's setting is inconclusive whatever its numbers say; **not run** means no experiment "
        "tests the claim, and says why. *Partial* notes say where our run differs from the source's. All runs "
        f"train on {claims.DATASET}. Statements about which software existed when a source was written are "
        "not listed.\n",
    ]
    counts = Counter((a.claim.source, a.word) for a in assessed)
    rows = [[f"[{s.title}](#{key})", *(counts[(key, w)] for w in claims.WORDS),
             sum(counts[(key, w)] for w in claims.WORDS)] for key, s in claims.SOURCES.items()]
    rows.append(["**all**", *(sum(counts[(k, w)] for k in claims.SOURCES) for w in claims.WORDS), len(assessed)])
    parts.append(Table(["source", *claims.WORDS, "claims"], rows).markdown())
    number = 0
    for key, source in claims.SOURCES.items():
        notebooks = ", ".join(f"[{nb.replace('_', ' ', 1)}](notebooks/{nb}.ipynb)" for nb in source.notebooks)
        parts.append(f'## {source.title} {{ #{key} }}\n\n*{source.kind}* — redone in {notebooks}.\n')
        rows = []
        for a in (a for a in assessed if a.claim.source == key):
            number += 1
            c = a.claim
            tested = c.tests + (f" — *partial: {a.partial}*" if a.partial else "")
            experiment = f" (`{c.experiment}`)" if c.experiment else ""
            verdict = f"**{a.word}**" + (f": {a.reason}" if a.reason else "")
            rows.append([number, _cell(f"“{c.quote}” ({c.where})"), _cell(tested + experiment), _cell(a.run),
                         _cell(a.figure), _cell(verdict)])
        parts.append(Table(["#", "claim", "what we test", "our run", "our number (95% interval)", "verdict"],
                           rows).markdown())
    return "\n".join(parts)


if __name__ == "__main__":
    print(build())
