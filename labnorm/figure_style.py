"""Readable static figures: the resolution, font sizes and layout of every figure labnorm saves.

A notebook's saved PNG is the figure a reader sees on the site and on GitHub; at the 72 dpi the notebooks
used to save, a legend came out 7–8 pixels tall. `readable_style()` sets matplotlib's defaults for a
notebook; `floor_fonts(fig)` raises any text a figure's code drew smaller than `MIN_FONT_PT`
(the report figures of `labnorm.experiments.report` call it).
"""

from __future__ import annotations

import warnings

__all__ = ["DPI", "MIN_FONT_PT", "readable_style", "floor_fonts"]

# The smallest font a saved static figure may use, in points (issue 34: legends and labels ≥ 9 pt)
MIN_FONT_PT = 9.0
# The resolution of a saved static figure (issue 34: ≥ 100 dpi, where 72 made 7–8 px legends)
DPI = 100


def readable_style(dpi: int = DPI, font_size: float = 10.0) -> None:
    """Set matplotlib's defaults for static figures a reader can read once saved in a notebook.

    A notebook's saved PNG is the figure a reader sees on the site and on GitHub. At the 72 dpi these
    notebooks used to save, a legend at matplotlib's default size came out 7–8 pixels tall (issue 34),
    so this sets: `figure.dpi` and `savefig.dpi` to `dpi` (100); the base font to `font_size` (10 pt),
    titles and axis labels at that size, tick labels and legends at `max(9, font_size - 1)`; and
    `figure.constrained_layout.use`, so tick labels, titles and legends are not clipped. A figure that
    still calls `fig.tight_layout()` switches itself to the tight layout, as it asked (matplotlib's
    warning that it did so is silenced, so a saved notebook keeps no stderr for it); a call to
    `fig.subplots_adjust()` is ignored, with a warning: leave it out, or pass `layout="none"` to
    `plt.subplots` for a figure laid out by hand.

    Call it once at the top of a notebook, after importing pyplot:
    `from labnorm.experiments.plots import readable_style; readable_style()`. A report's figures
    (`labnorm.experiments.report.Figure`) set their own resolution, layout and font floor."""
    import matplotlib as mpl  # here, not at the top: the module needs no matplotlib otherwise

    small = max(MIN_FONT_PT, font_size - 1)
    mpl.rcParams.update({
        "figure.dpi": dpi, "savefig.dpi": dpi,
        "font.size": font_size, "axes.titlesize": font_size, "axes.labelsize": font_size,
        "figure.titlesize": font_size + 1, "xtick.labelsize": small, "ytick.labelsize": small,
        "legend.fontsize": small, "legend.title_fontsize": font_size,
        "figure.constrained_layout.use": True,
    })
    # An explicit `fig.tight_layout()` is a request: do it without a warning on stderr
    warnings.filterwarnings("ignore", message="The figure layout has changed to tight", category=UserWarning)


def floor_fonts(fig, size: float = MIN_FONT_PT) -> None:
    """Raise every text of `fig` smaller than `size` points to `size`: titles, labels, legends,
    annotations, and tick labels (through `tick_params`, so ticks drawn later follow)."""
    from matplotlib.text import Text

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for which, labels in (("major", axis.get_majorticklabels()), ("minor", axis.get_minorticklabels())):
                if any(t.get_fontsize() < size for t in labels):
                    axis.set_tick_params(which=which, labelsize=size)
    for text in fig.findobj(Text):
        if text.get_fontsize() < size:
            text.set_fontsize(size)
