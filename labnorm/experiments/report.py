r"""What an experiment shows: tables, figures and verdicts, the same in its notebook and on the site.

An experiment's `report(record)` returns a `Report`. In a notebook, `report.show()` shows its tables
(HTML and text, `tables.Table`) and verdicts and draws its figures, `report.explore()` its interactive
figures (`plots.Plot`); the results page writes the same report as Markdown with PNG figures and the
interactive ones (`report.markdown()`). Nothing is written twice. Verdicts: its claims judged on the record.

Helpers, from a record's seeds: `cell` — "mean ± half-width (n=seeds)"; `judge` — a verdict on the paired
difference of two arms (`labnorm.stats.verdict`); `ranking` — rows that rank arms and mark significant
differences (paired intervals), so a table never ranks noise; `bands` — a curve per arm with its spread over
seeds; `log_axis` — a log axis whose tick labels do not overlap; `baseline_note` — the baseline's level."""

from __future__ import annotations

import html
import io
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .. import results as _results
from ..figure_style import DPI, MIN_FONT_PT, floor_fonts
from ..stats import METHOD, Verdict, verdict
from .claims import TRAINED_LEVEL
from .common import implementation_line
from .runner import summary, values
from .tables import Table, _ipython_display

__all__ = ["Table", "Figure", "Report", "cell", "judge", "ranking", "bands", "interval_errors", "seed_details",
           "log_axis", "baseline_note", "floor_fonts"]


@dataclass
class Figure:
    """A figure drawn on demand: `draw(fig)` fills a matplotlib figure of `size` inches."""

    caption: str
    draw: Callable[[Any], None]
    size: tuple[float, float] = (6.4, 3.4)

    def render(self, dpi: int = DPI, caption: bool = False):
        """The drawn figure; with `caption`, the caption as its title. At `dpi`, constrained layout, no text
        under `MIN_FONT_PT` (`labnorm.figure_style`): the same figure in a notebook and on the results page."""
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=self.size, dpi=dpi, layout="constrained")
        self.draw(fig)
        if caption:  # wrapped to the figure's width (about 13 characters per inch at 9 pt)
            fig.suptitle(textwrap.fill(self.caption, max(40, int(self.size[0] * 13))), fontsize=MIN_FONT_PT)
        floor_fonts(fig)
        return fig

    def png(self, dpi: int = DPI) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = self.render(dpi)
        buf = io.BytesIO()
        # No "Software" entry: the same drawing gives the same bytes under another matplotlib version
        fig.savefig(buf, format="png", metadata={"Software": None})
        plt.close(fig)
        return buf.getvalue()


@dataclass
class Report:
    """Tables, figures and verdicts of one record, with the record's provenance line."""

    record: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    verdicts: list[Any] = field(default_factory=list)  # claims.Assessment: prints 'word: test — figure (why)'
    notes: list[str] = field(default_factory=list)
    plots: list[Any] = field(default_factory=list)  # plots.Plot: interactive figures (the site; `explore()`)

    @property
    def provenance(self) -> str:
        return _results.provenance_line(self.record)

    @property
    def implementation(self) -> str:
        return implementation_line(self.record)

    def show(self) -> None:
        """Print the tables and verdicts and draw the figures. In Jupyter each table is displayed as an
        object with both forms, HTML and the aligned text (what nbval and a terminal read)."""
        import matplotlib.pyplot as plt

        display = _ipython_display()
        print(self.provenance)
        print(self.implementation)
        print(f"intervals: {METHOD}")
        for note in self.notes:
            print(note)
        for table in self.tables:
            print()
            if display:
                display(table)
            else:
                print(table.text())
        if self.verdicts:
            print()
        for v in self.verdicts:
            print(v)
        for figure in self.figures:
            figure.render(caption=True)
            plt.show()

    def explore(self) -> None:
        """Show the interactive figures (`plots`) in a notebook; `show()` draws the static ones a saved notebook keeps."""
        for plot in self.plots:
            plot.show()

    def html(self) -> str:
        """The report as HTML: provenance, notes, tables and verdicts (the figures are drawn by `show()`)."""
        esc = html.escape
        lines = [self.provenance, self.implementation, f"intervals: {METHOD}", *self.notes]
        parts = [f"<p>{esc(line)}</p>" for line in lines]
        parts += [t.html() for t in self.tables]
        if self.verdicts:
            parts.append("<ul>" + "".join(f"<li>{esc(str(v))}</li>" for v in self.verdicts) + "</ul>")
        return '<div class="labnorm-report">' + "".join(parts) + "</div>"

    def _repr_html_(self) -> str:
        return self.html()

    def markdown(self, figure_names: Sequence[str] = ()) -> str:
        """The report as Markdown; figure `i` is linked as `figure_names[i]` (PNG files beside the page)."""
        parts = [f"Intervals: {METHOD}; the seeds are listed in the provenance line.\n", f"{self.implementation}\n"]
        parts += [f"{note}\n" for note in self.notes]
        parts += [t.markdown() for t in self.tables]
        if self.verdicts:
            parts.append("\n".join(f"- **{v.word}** — {str(v).split(': ', 1)[1]}" for v in self.verdicts) + "\n")
        # The interactive figures first (raw HTML blocks; figures.js draws them), then the static ones
        parts += [f"{plot.html()}\n" for plot in self.plots]
        for figure, name in zip(self.figures, figure_names):
            parts.append(f"![{figure.caption}]({name})\n\n*{figure.caption}*\n")
        return "\n".join(parts)


def cell(record: dict[str, Any], metric: str, digits: int = 3, percent: bool = False) -> str:
    """`metric` over the record's seeds as 'mean ± half-width (n=…)'; '—' when absent."""
    if metric not in record["summary"]:
        return "—"
    return summary(record, metric).format(digits, percent)


def baseline_note(record: dict[str, Any], arms: Sequence[tuple[str, str]], level: float = TRAINED_LEVEL) -> list[str]:
    """A note giving the baseline arms' test accuracy (`arms`: (name, metric) pairs), to read beside every
    comparison; below `level` it says what that limits. Empty when the record has none of the metrics."""
    shown = [f"{name} {cell(record, metric, 1, percent=True)}" for name, metric in arms if metric in record["summary"]]
    if not shown:
        return []
    low = any((summary(record, m).mean or 0.0) < level for _, m in arms if m in record["summary"])
    return [f"Baseline test accuracy: {'; '.join(shown)}." + (
        f" Under {level:.0%}, the level of a trained CIFAR-10 network: these networks are early in training, so every "
        "classification claim judged on them is inconclusive at this scale, whatever its interval says." if low else "")]


def judge(record: dict[str, Any], a: str, b: str, *, direction: str = "higher", margin: float = 0.0,
          claim: str = "") -> Verdict:
    """The verdict on "metric `a` is `direction` than metric `b`" from the record's paired seeds."""
    return verdict(values(record, a), values(record, b), direction=direction, margin=margin,
                   claim=claim or f"{a} {direction} than {b}")


def ranking(record: dict[str, Any], arms: dict[str, str], baseline: str, *, scale: float = 100.0,
            digits: int = 1, percent: bool = True) -> list[list[str]]:
    """Rows that rank arms (label -> metric, higher is better) by their mean over seeds, best first.

    Each row: rank, label, 'mean ± half-width (n)', the paired difference to the `baseline` arm (×
    `scale`: accuracy points by default) marked ▲ / ▼ when its 95% interval lies wholly above / below
    0 (unmarked: not significant), and "≈" when the paired interval against the best arm does not lie
    wholly below 0 (the arm is not significantly below the best). Arms without a value come last."""
    done = sorted((a for a in arms if summary(record, arms[a]).n), key=lambda a: -summary(record, arms[a]).mean)
    rows = []
    for rank, arm in enumerate(done, 1):
        v = judge(record, arms[arm], arms[baseline]) if baseline in done else None
        d = v.difference if v is not None else None
        vs = "—" if d is None or d.mean is None else f"{d.mean * scale:+.{digits}f}" + (
            "" if d.low is None else f" ± {(d.high - d.low) / 2 * scale:.{digits}f}") + {
            "supported": " ▲", "contradicted": " ▼"}.get(v.word, "")
        below = judge(record, arms[done[0]], arms[arm]).word == "supported"
        rows.append([str(rank), arm, summary(record, arms[arm]).format(digits, percent),
                     "baseline" if arm == baseline else vs, "best" if rank == 1 else "" if below else "≈"])
    return rows + [["—", a, "not run yet", "", ""] for a in arms if a not in done]


def seed_details(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each seed's details, in seed order."""
    return [record["per_seed"][str(s)]["details"] for s in record["seeds"]]


def bands(ax, curves: Sequence[Sequence[tuple[float, float]]], *, cut: bool = True, **style) -> None:
    """Plot the mean over seeds of (x, y) curves, with a band from the lowest to the highest seed.

    Curves are cut to the shortest (a diverged seed stops early); with `cut=False` they run to the
    longest instead, the mean and band taken over the seeds that are still running (an LR range
    test that stops at divergence)."""
    curves = [c for c in curves if len(c)]
    if not curves:
        return
    longest = max(curves, key=len)
    n = min(len(c) for c in curves) if cut else len(longest)
    x = np.array([p[0] for p in longest[:n]], dtype=float)
    y = np.array([[p[1] if i < len(c) and p[1] is not None else np.nan
                   for i, p in enumerate(list(c[:n]) + [(None, None)] * (n - len(c)))] for c in curves], dtype=float)
    with warnings.catch_warnings():  # a point where no seed has a value stays empty
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, low, high = np.nanmean(y, 0), np.nanmin(y, 0), np.nanmax(y, 0)
    line, = ax.plot(x, mean, **style)
    if len(curves) > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)


def interval_errors(summaries) -> list[list[float]]:
    """matplotlib's `yerr` for summaries: the distance from each mean down and up to its interval
    (0 where there is no interval, i.e. one seed)."""
    return [[0.0 if x.low is None else x.mean - x.low for x in summaries],
            [0.0 if x.high is None else x.high - x.mean for x in summaries]]


def log_axis(ax, axis: str = "x", ticks: Sequence[float] | None = None) -> None:
    """Make `axis` ("x" or "y") of `ax` logarithmic with readable, non-overlapping tick labels.

    matplotlib labels the *minor* ticks of a log axis that spans less than a decade or so, and
    those labels run into the major ones. Here minor ticks are unlabelled; the labelled ticks are
    `ticks` if given, else powers of ten (an axis spanning over two decades) or 1, 2, 3, 5 × 10^k,
    written plainly ("0.5", "2", "300")."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_minor_formatter(NullFormatter())
    if ticks is not None:
        target.set_major_locator(FixedLocator(list(ticks)))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        return
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    if low > 0 and high / low > 100:
        target.set_major_locator(LogLocator(base=10))
        target.set_major_formatter(LogFormatterSciNotation())
    else:
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
