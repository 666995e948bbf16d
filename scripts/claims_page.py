"""Build the site's Claims page from `labnorm.claims` and the saved records.

Called by `scripts/render_pages.py` (`make pages`): returns the page's Markdown, which it commits
as `docs/claims.md` (the site builds without torch). Every claim of the five sources is listed once, with its quote, what
we test, our run (from the record's config and provenance), our number ± its 95% interval and
the computed verdict; where several experiments test one claim, each test is listed and the one
that decides is marked. Records are read from `labnorm.results.results_dir()` (`$LABNORM_RESULTS`
when set), the largest scale first. `python scripts/claims_page.py` prints the page.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from labnorm import claims
from labnorm.experiments import Table
from labnorm.experiments.claims import TRAINED_LEVEL
from labnorm.stats import METHOD


def _cell(text: str) -> str:
    # One table cell: no line breaks (they would end the row)
    return " ".join(str(text).split())


def _verdict(a) -> str:
    return f"**{a.word}**" + (f": {a.reason}" if a.reason else "")


def _row(number: int, j: claims.Judged) -> list:
    quote = _cell(f"“{j.quote}” ({j.where})")
    if not j.tests:
        return [number, quote, _cell(j.untested.tests), "—", "—", _cell(f"**not run**: {j.untested.why}")]
    many = len(j.tests) > 1
    parts = {"tests": [], "runs": [], "figures": [], "verdicts": []}
    for k, a in enumerate(j.tests):
        tag = ("*decides* — " if k == 0 else "*also* — ") if many else ""
        parts["tests"].append(tag + a.claim.tests + (f" — *partial: {a.partial}*" if a.partial else "")
                              + f" (`{a.experiment}`)")
        parts["runs"].append(tag + a.run)
        parts["figures"].append(tag + a.figure)
        parts["verdicts"].append(tag + _verdict(a))
    return [number, quote, *(_cell("<br>".join(parts[k])) for k in ("tests", "runs", "figures", "verdicts"))]


def build(root: Path | None = None, repo_url: str = "") -> str:
    """Markdown of claims.md (`root` and `repo_url` are accepted for symmetry with the results page)."""
    judged = claims.assess_all()
    parts = [
        # Front matter: no table of contents on the right (docs/stylesheets/claims.css widens the column)
        "---\nhide:\n  - toc\n---\n",
        "# Claims\n",
        '<div class="claims-page"></div>\n',
        "Every concrete claim of the five sources labnorm reproduces, and the [notebooks' own questions](#own) of "
        "other papers, with the runs that test them and the verdict computed from their saved records — generated from them, like the "
        "[Results](results.md) page, so no number here is typed by hand.\n",
        f"**How a verdict is computed.** Our number is the mean over seeds ± the half-width of its {METHOD}. "
        "A claim comparing two arms is judged on their *paired* per-seed difference (`labnorm.verdict`): "
        "**supported** when its interval lies on the claimed side, **contradicted** when it lies on the other "
        "side, otherwise **inconclusive at this scale** — always so with one seed. Rules computed from the record "
        "come first (`labnorm.experiments.claims`): a comparison that uses an arm that never learned (its accuracy "
        "or loss at chance), or whose measure sits at a bound in both arms, is **not testable here**; a "
        f"classification claim whose baseline is under {TRAINED_LEVEL:.0%} test accuracy, or a claim about a later "
        "phase of training than the run reaches, is **inconclusive at this scale** whatever its interval says. "
        "**not run** means no experiment tests the claim, and says why. Where several experiments test one claim, "
        "all are shown and the run closest to the source's setting among those that can show the claim *decides* "
        "(`labnorm.claims.decide`): a run held back by one of those rules, by a single seed or by runs still to come "
        "decides only where every run is. *Partial* "
        f"notes say where our run differs from the source's. All runs train on {claims.DATASET}. Statements about "
        "which software existed when a source was written are not listed.\n",
    ]
    counts = Counter((j.source, j.word) for j in judged)
    rows = [[f"[{s.title}](#{key})", *(counts[(key, w)] for w in claims.WORDS),
             sum(counts[(key, w)] for w in claims.WORDS)] for key, s in claims.SOURCES.items()]
    rows.append(["**all**", *(sum(counts[(k, w)] for k in claims.SOURCES) for w in claims.WORDS), len(judged)])
    parts.append(Table(["source", *claims.WORDS, "claims"], rows,
                       note="Each claim counted once, under the word of the run that decides it.").markdown())
    number = 0
    for key, source in claims.SOURCES.items():
        notebooks = ", ".join(f"[{nb.replace('_', ' ', 1)}](notebooks/{nb}.ipynb)" for nb in source.notebooks)
        parts.append(f'## {source.title} {{ #{key} }}\n\n*{source.kind}* — redone in {notebooks}.\n')
        rows = []
        for j in (j for j in judged if j.source == key):
            number += 1
            rows.append(_row(number, j))
        parts.append(Table(["#", "claim", "what we test", "our run", "our number (95% interval)", "verdict"],
                           rows).markdown())
    parts += _own_questions()
    return "\n".join(parts)


def _own_questions() -> list[str]:
    """The notebooks' own questions (`labnorm.claims.own_claims`): claims of papers that are not one of the five
    sources, by experiment, numbered Q1, Q2, ... (the sources' claims keep the plain numbers)."""
    own = claims.own_claims()
    parts = ["## The notebooks' own questions { #own }\n",
             "Beyond the five sources, the notebooks ask what the papers behind their techniques claim — Wu & He's "
             "Group Normalization, the Transformer papers of notebook 12, and others, each cited beside its quote "
             "with the paper's own setting. They are judged by the same rules, on the record of the experiment that "
             "asks them; our runs are far smaller than the papers', which each *partial* note says.\n"]
    counts = [[f"[`{name}`](#own-{name.replace('_', '-')})", *(sum(a.word == w for a in tests) for w in claims.WORDS),
               len(tests)] for name, tests in own]
    parts.append(Table(["experiment", *claims.WORDS, "questions"], counts).markdown())
    number = 0
    for name, tests in own:
        parts.append(f"### `{name}` {{ #own-{name.replace('_', '-')} }}\n")
        rows = []
        for a in tests:
            number += 1
            rows.append(_row(f"Q{number}", claims.Judged("", a.claim.where, a.claim.quote, (a,))))
        parts.append(Table(["#", "claim", "what we test", "our run", "our number (95% interval)", "verdict"],
                           rows).markdown())
    return parts


if __name__ == "__main__":
    print(build())
