r"""A table of a report in its three forms: Markdown for the site, HTML for Jupyter, aligned text for a
terminal and for the text a notebook saves (what nbval reads). `report.Report.show()` displays each table
under IPython — both forms in one output, the notebook's viewer picks — and prints the text elsewhere."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

__all__ = ["Table"]


@dataclass
class Table:
    """A table: column names (each defined in `note` where not obvious) and rows of printable cells.

    Three forms of one table: `markdown()` for the site, `html()` for a notebook (Jupyter shows it
    through `_repr_html_`), `text()` for a terminal and for the text a notebook saves. A table that
    ranks (`ranked`; by default, one whose first column is "#") is marked so that the site's
    `docs/javascripts/tables.js` sorts it by any column a reader clicks."""

    header: list[str]
    rows: list[list[Any]]
    title: str = ""
    note: str = ""
    ranked: bool | None = None

    @property
    def ranks(self) -> bool:
        return self.ranked if self.ranked is not None else bool(self.header) and self.header[0] == "#"

    @property
    def css_class(self) -> str:
        return "labnorm-table ranked" if self.ranks else "labnorm-table"

    def markdown(self) -> str:
        lines = [f"**{self.title}**\n"] if self.title else []
        # In a <div markdown> (md_in_html): the table stays Markdown, the div carries the class
        lines += [f'<div class="{self.css_class}" markdown>\n']
        lines += ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in self.rows]
        lines.append("\n</div>")
        if self.note:
            lines.append(f"\n{self.note}")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """An HTML table (cells escaped), its title as the caption and its note below."""
        esc = html.escape
        head = "".join(f"<th>{esc(str(h))}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in self.rows)
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        note = f'<p class="labnorm-table-note">{esc(self.note)}</p>' if self.note else ""
        return (f'<table class="{self.css_class}">{caption}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>{note}")

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython's text/plain: the aligned text
        printer.text(self.text())

    def text(self) -> str:
        """Aligned plain text, for a notebook's output."""
        cells = [self.header] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        lines = [self.title] if self.title else []
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(len(lines) - len(self.rows), "  ".join("-" * w for w in widths))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _ipython_display():
    """IPython's `display` when running under an IPython kernel or shell, else None (a plain terminal)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None
