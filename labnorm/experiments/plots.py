r"""Interactive figures: what a reader would rather turn and hover than read, as plotly.js specs.

A `Plot` is a caption and a plotly.js figure, plain JSON (labnorm needs no plotting package for it).
The site draws it with the plotly.js it serves itself (`docs/javascripts/figures.js`, no CDN); in
Jupyter `Plot.show()` (a report's `explore()`) hands it to JupyterLab's plotly renderer, or plotly's
own in Colab; the report's matplotlib figure stays the static picture a saved notebook keeps.
Builders — every value from a record hovers with its 95% interval over seeds: `heatmap` (rows × columns
of one metric, the paired difference to the baseline row marked ▲/▼ where significant), `scatter` (two
metrics with interval error bars), `curves` (mean and seed band, toggled by legend), `surfaces` (2-D
slices to rotate, one at a time), `pooling_cubes` (which values of N × C × H·W each norm averages).
`readable_style()` sets matplotlib's defaults for the static figures a notebook saves (100 dpi, fonts ≥ 9 pt)."""

from __future__ import annotations

import html
import importlib.util
import json
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..stats import verdict
from ..figure_style import readable_style  # noqa: F401 (re-exported: notebooks import it from here)
from .runner import summary, values

__all__ = ["Plot", "heatmap", "scatter", "curves", "surfaces", "pooling_cubes", "CUBES", "readable_style"]

FONT = {"size": 13}  # readable ticks at the site's width

@dataclass
class Plot:
    """A caption and a plotly.js figure (`spec`: {"data": [...], "layout": {...}}), JSON-ready."""

    caption: str
    spec: dict[str, Any]

    def json(self) -> str:  # compact, and safe inside a <script> element (no "</")
        return json.dumps(self.spec, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")

    def html(self) -> str:
        """The figure as an HTML block: an element figures.js draws into, its spec as JSON inside it,
        and a line for a viewer that runs no script (the saved notebook, opened without plotly)."""
        return (f'<div class="labnorm-plot"><script type="application/json" class="labnorm-plot-spec">{self.json()}</script>'
                f'<p class="labnorm-plot-fallback">Interactive figure: {html.escape(self.caption)}. It is drawn on the '
                "site, in JupyterLab with plotly installed and in Colab.</p></div>")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {"application/vnd.plotly.v1+json": self.spec, "text/html": self.html(),
                "text/plain": f"[interactive figure] {self.caption}"}

    def show(self) -> None:
        """Draw it in a notebook: through plotly in Colab, else as a bundle JupyterLab's plotly renderer
        draws and the site's figures.js draws (the saved output stays a few kilobytes of JSON)."""
        if "google.colab" in sys.modules and importlib.util.find_spec("plotly") is not None:
            import plotly.graph_objects as go  # Colab has plotly, and draws it with plotly.js from the web

            return go.Figure(self.spec).show()
        from IPython.display import display

        display(self)


def _layout(title: str, x: str, y: str, **more) -> dict[str, Any]:
    return {"title": {"text": title}, "font": FONT, "margin": {"t": 60, "r": 20, "b": 60, "l": 80},
            "xaxis": {"title": {"text": x}, "automargin": True}, "yaxis": {"title": {"text": y}, "automargin": True},
            "hovermode": "closest", **more}


def _num(v: float | None, scale: float = 1.0, digits: int = 4) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v) * scale, digits)


def heatmap(record: dict, rows: Sequence[str], cols: Sequence[Any], metric: str, baseline: str, *,
            row_label: str = "norm", col_label: str = "batch", z_label: str = "test accuracy", percent: bool = True,
            title: str = "") -> Plot:
    """Rows × columns of `metric` (a name with `{row}` and `{col}`, e.g. "test_acc/{row}/b{col}"), the mean over
    seeds; hovering a cell gives the mean ± its interval, the seeds, and the paired difference to the `baseline`
    row in the same column, ▲/▼ when its 95% interval lies wholly above/below 0 (unmarked: not significant)."""
    scale, unit = (100.0, " points") if percent else (1.0, "")
    z, text = [], []
    for r in rows:
        zr, tr = [], []
        for c in cols:
            name, base = metric.format(row=r, col=c), metric.format(row=baseline, col=c)
            s = summary(record, name)
            zr.append(_num(s.mean, scale, 2) if s.n else None)
            line = s.format(1 if percent else 3, percent) if s.n else "not run"
            if s.n and r != baseline and summary(record, base).n:
                v = verdict(values(record, name), values(record, base), claim="")
                d = v.difference
                if d.mean is not None:
                    half = "" if d.low is None else f" ± {(d.high - d.low) / 2 * scale:.1f}"
                    mark = {"supported": " ▲", "contradicted": " ▼"}.get(v.word, " (not significant)")
                    line += f"<br>vs {baseline}: {d.mean * scale:+.1f}{half}{unit}{mark}"
            tr.append(line)
        z, text = z + [zr], text + [tr]
    x = [str(c) for c in cols]
    trace = {"type": "heatmap", "x": x, "y": list(rows), "z": z, "text": text, "colorscale": "Viridis",
             "hovertemplate": f"{row_label} %{{y}}, {col_label} %{{x}}<br>{z_label}: %{{text}}<extra></extra>",
             "colorbar": {"title": {"text": z_label + (" (%)" if percent else "")}}, "xgap": 1, "ygap": 1}
    layout = _layout(title or f"{z_label}: {row_label} × {col_label} (mean over seeds; hover for the interval)",
                     col_label, row_label, height=max(420, 26 * len(rows) + 160))
    layout["xaxis"]["type"] = "category"
    layout["yaxis"].update(type="category", autorange="reversed")
    return Plot(layout["title"]["text"], {"data": [trace], "layout": layout})


def scatter(record: dict, rows: Sequence[str], cols: Sequence[Any], x_metric: str, y_metric: str, *,
            x_label: str, y_label: str, col_label: str = "batch", percent_y: bool = True, title: str = "",
            x_line: float | None = 1.0) -> Plot:
    """`y_metric` against `x_metric` (names with `{row}` and `{col}`), one point per row and one trace (legend
    entry) per column, error bars from the 95% intervals over seeds; hovering a point names it. A dotted
    vertical line marks `x_line` (a ratio's 1: as fast as the baseline)."""
    data = []
    for c in cols:
        pts = [(r, summary(record, x_metric.format(row=r, col=c)), summary(record, y_metric.format(row=r, col=c)))
               for r in rows]
        pts, ys = [(r, sx, sy) for r, sx, sy in pts if sx.mean is not None and sy.mean is not None], 100.0 if percent_y else 1.0
        if not pts:
            continue

        def err(s, k):
            return {"type": "data", "symmetric": False, "thickness": 1, "width": 2,
                    "array": [_num(0 if v.high is None else v.high - v.mean, k) for v in s],
                    "arrayminus": [_num(0 if v.low is None else v.mean - v.low, k) for v in s]}

        data.append({"type": "scatter", "mode": "markers", "name": f"{col_label} {c}",
                     "x": [_num(sx.mean) for _, sx, _ in pts], "y": [_num(sy.mean, ys, 2) for _, _, sy in pts],
                     "text": [f"{r}<br>{x_label}: {sx.format(2)}<br>{y_label}: {sy.format(1 if percent_y else 3, percent_y)}"
                              for r, sx, sy in pts],
                     "hovertemplate": "%{text}<extra>" + f"{col_label} {c}</extra>",
                     "error_x": err([sx for _, sx, _ in pts], 1.0), "error_y": err([sy for _, _, sy in pts], ys),
                     "marker": {"size": 8}})
    layout = _layout(title or f"{y_label} against {x_label} (error bars: 95% intervals over seeds)", x_label,
                     y_label + (" (%)" if percent_y else ""), height=480, legend={"title": {"text": "click to hide / show"}})
    layout["xaxis"]["zeroline"] = False
    if x_line is not None:
        layout["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": x_line, "x1": x_line, "y0": 0, "y1": 1,
                             "line": {"dash": "dot", "width": 1, "color": "black"}}]
    return Plot(layout["title"]["text"], {"data": data, "layout": layout})


def curves(series: Mapping[str, Sequence[Sequence[tuple[float, float]]]], *, x_label: str, y_label: str,
           title: str, log_x: bool = False, y_range: Sequence[float] | None = None) -> Plot:
    """One curve per name: the mean over seeds of its (x, y) curves (run to the longest; the mean over the seeds
    still running) and a band from the lowest to the highest seed; a click on the legend hides or shows both."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    data = []
    for k, (name, per_seed) in enumerate(series.items()):
        per_seed = [c for c in per_seed if len(c)]
        if not per_seed:
            continue
        longest = max(per_seed, key=len)
        x = np.array([p[0] for p in longest], dtype=float)
        y = np.full((len(per_seed), len(x)), np.nan)
        for i, c in enumerate(per_seed):
            y[i, :len(c)] = [np.nan if p[1] is None else p[1] for p in c]
        with warnings.catch_warnings():  # a point where no seed has a value stays empty
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = np.nanmean(y, 0), np.nanmin(y, 0), np.nanmax(y, 0)
        color, xs = palette[k % len(palette)], [_num(v, digits=6) for v in x]
        if len(per_seed) > 1:
            data.append({"type": "scatter", "x": xs + xs[::-1], "y": [_num(v) for v in high] + [_num(v) for v in low[::-1]],
                         "fill": "toself", "fillcolor": color, "opacity": 0.2, "line": {"width": 0}, "legendgroup": name,
                         "showlegend": False, "hoverinfo": "skip", "name": f"{name} (seeds)"})
        data.append({"type": "scatter", "mode": "lines", "x": xs, "y": [_num(v) for v in mean], "name": name,
                     "legendgroup": name, "line": {"color": color, "width": 2},
                     "hovertemplate": f"{name}<br>{x_label}: %{{x:.3g}}<br>{y_label}: %{{y:.3f}} "
                                      f"(mean of {len(per_seed)} seed{'s' if len(per_seed) > 1 else ''})<extra></extra>"})
    layout = _layout(title, x_label, y_label, height=480, legend={"title": {"text": "click to hide / show"}})
    if log_x:
        layout["xaxis"].update(type="log", exponentformat="power")
    if y_range is not None:
        layout["yaxis"]["range"] = [float(v) for v in y_range]
    return Plot(title, {"data": data, "layout": layout})


def surfaces(grid: Sequence[float], slices: Mapping[str, np.ndarray], *, z_label: str, title: str,
             axis_labels: tuple[str, str] = ("α (direction 1)", "β (direction 2)"), log_z: bool = True) -> Plot:
    """2-D slices z[i, j] over `grid` × `grid` as surfaces to rotate, one shown at a time (a menu picks it);
    with `log_z` the height is log10 of z, the hover gives z itself."""
    grid, data, names = [_num(v, digits=6) for v in grid], [], list(slices)
    for k, (name, z) in enumerate(slices.items()):
        z = np.asarray(z, dtype=float)
        height = np.log10(np.maximum(z, 1e-12)) if log_z else z
        data.append({"type": "surface", "x": grid, "y": grid, "z": [[_num(v) for v in row] for row in height],
                     "customdata": [[_num(v) for v in row] for row in z], "name": name, "visible": k == 0,
                     "colorscale": "Viridis", "showscale": False, "contours": {"z": {"show": True, "usecolormap": True,
                                                                                     "project": {"z": True}}},
                     "hovertemplate": f"{name}<br>{axis_labels[0]}: %{{x:.2f}}<br>{axis_labels[1]}: %{{y:.2f}}<br>"
                                      f"{z_label}: %{{customdata:.3f}}<extra></extra>"})
    buttons = [{"label": n, "method": "update",
                "args": [{"visible": [j == k for j in range(len(names))]}, {"title.text": f"{title}: {n}"}]}
               for k, n in enumerate(names)]
    zt = f"log10 {z_label}" if log_z else z_label
    layout = {"title": {"text": f"{title}: {names[0]}" if names else title}, "font": FONT, "height": 560,
              "margin": {"t": 60, "r": 10, "b": 10, "l": 10},
              "scene": {"xaxis": {"title": {"text": axis_labels[0]}}, "yaxis": {"title": {"text": axis_labels[1]}},
                        "zaxis": {"title": {"text": zt}}, "camera": {"eye": {"x": 1.5, "y": -1.5, "z": 1.0}}},
              "updatemenus": [{"type": "dropdown", "buttons": buttons, "x": 0.0, "y": 1.0, "xanchor": "left",
                               "yanchor": "top", "showactive": True}]}
    return Plot(title, {"data": data, "layout": layout})


# Notebook 09's drawing (N=4 samples, C=6 channels, H·W=4 positions, G=3 groups, ghost batches of V=2): for
# each layer, the block of values pooled with x[0, 0, 0] as (samples, channels, positions), and a second set.
_A, _1 = slice(None), slice(0, 1)
CUBES = {"Batch Norm / Batch Renorm": ((_A, _1, _A), None), "Ghost BN (V=2)": ((slice(0, 2), _1, _A), None),
         "Layer Norm (ln)": ((_1, _A, _A), None), "Group Norm (G=3)": ((_1, slice(0, 2), _A), None),
         "Instance Norm": ((_1, _1, _A), None), "Layer Norm 2d / RMSNorm 2d": ((_1, _A, _1), None),
         "Filter Response Norm (mean square)": ((_1, _1, _A), None), "EvoNorm-S0 (G=3, var)": ((_1, slice(0, 2), _A), None),
         "EvoNorm-B0 (batch var; instance var inside)": ((_A, _1, _A), (_1, _1, _A)), "Dynamic Tanh": ((_1, _1, _1), None)}


def pooling_cubes(sets: Sequence[tuple[str, np.ndarray, np.ndarray | None]] | None = None) -> Plot:
    """Every value of an [N, C, H·W] map as a cube, one layer at a time (a menu picks it): highlighted, the values
    that share one set of statistics with the first value (orange: a second set inside it). `sets`: (title, boolean
    mask, second mask or None), as notebook 09 defines them; by default `CUBES`."""
    if sets is None:
        sets = []
        for title, blocks in CUBES.items():
            masks = [None if b is None else np.zeros((4, 6, 4), dtype=bool) for b in blocks]
            for m, b in zip(masks, blocks):
                if m is not None:
                    m[b] = True
            sets.append((title, *masks))
    data = []
    for k, (title, mask, second) in enumerate(sets):
        second = np.zeros_like(mask) if second is None else second
        for name, where, style in [("pooled", mask & ~second, (13, 1.0, "#1f77b4")), ("second set", second, (13, 1.0, "#ff7f0e")),
                                   ("other values", ~(mask | second), (7, 0.25, "#999999"))]:
            n, c, p = np.nonzero(where)
            data.append({"type": "scatter3d", "mode": "markers", "visible": k == 0, "name": name, "x": n.tolist(),
                         "y": c.tolist(), "z": p.tolist(), "showlegend": bool(len(n)),
                         "marker": {"symbol": "square", "size": style[0], "opacity": style[1], "color": style[2]},
                         "hovertemplate": f"{title}<br>n %{{x}}, c %{{y}}, position %{{z}}: {name}<extra></extra>"})
    buttons = [{"label": t, "method": "update", "args": [{"visible": [j // 3 == k for j in range(3 * len(sets))]},
                                                          {"title.text": f"Pooled by {t}"}]} for k, (t, _, _) in enumerate(sets)]
    axes = {a: {"title": {"text": t}, "dtick": 1} for a, t in zip(("xaxis", "yaxis", "zaxis"), ("N", "C", "H·W"))}
    layout = {"title": {"text": f"Pooled by {sets[0][0]}"}, "font": FONT, "height": 560, "margin": {"t": 60, "r": 10, "b": 10, "l": 10},
              "scene": {**axes, "aspectmode": "data", "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 1.1}}},
              "updatemenus": [{"type": "dropdown", "buttons": buttons, "x": 0.0, "y": 1.0, "xanchor": "left", "yanchor": "top"}]}
    return Plot("Which values of an [N, C, H, W] map share one set of statistics with the first value, per layer",
                {"data": data, "layout": layout})
