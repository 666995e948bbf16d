"""Reports in their three forms: Markdown for the site, HTML for Jupyter, aligned text for a terminal and
for what nbval reads; and the interactive figures (plotly.js specs) the site draws."""

import json
from pathlib import Path

import numpy as np
import pytest

from labnorm import experiments
from labnorm.experiments import Report, Table
from labnorm.experiments import plots, report as report_module

ROOT = Path(__file__).resolve().parent.parent
RANKED = Table(["#", "norm", "test acc."], [["1", "bn", "91.0% ± 0.5% (n=3)"], ["2", "<gn>", "90.0% ± 0.7% (n=3)"]],
               title="Batch 2 & more", note="test acc.: mean ± half-width")


def test_a_table_has_html_markdown_and_text_forms():
    html = RANKED.html()
    assert html.startswith('<table class="labnorm-table ranked"><caption>Batch 2 &amp; more</caption>')
    assert "<th>test acc.</th>" in html and "<td>&lt;gn&gt;</td>" in html  # cells escaped
    assert RANKED._repr_html_() == html
    md = RANKED.markdown()
    assert '<div class="labnorm-table ranked" markdown>' in md and "| 1 | bn | 91.0% ± 0.5% (n=3) |" in md
    # A table that does not rank is not marked sortable; `ranked` says so explicitly
    assert 'class="labnorm-table"' in Table(["norm", "x"], [["bn", 1]]).html()
    assert "ranked" in Table(["norm", "x"], [["bn", 1]], ranked=True).html()
    assert "ranked" not in Table(["#", "claim"], [[1, "a"]], ranked=False).html()


def test_jupyter_gets_both_forms_and_the_text_is_the_terminal_s():
    IPython = pytest.importorskip("IPython")
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(RANKED)
    assert data["text/plain"] == RANKED.text() and data["text/html"] == RANKED.html()
    assert IPython  # the same text nbval compares, whichever the notebook shows


def test_show_displays_tables_under_ipython_and_prints_them_elsewhere(monkeypatch, capsys):
    rep = Report({"provenance": {}}, [RANKED])
    monkeypatch.setattr(report_module._results, "provenance_line", lambda r: "provenance")
    monkeypatch.setattr(report_module, "implementation_line", lambda r: "implementation")
    shown = []
    monkeypatch.setattr(report_module, "_ipython_display", lambda: shown.append)
    rep.show()
    assert shown == [RANKED] and RANKED.text() not in capsys.readouterr().out
    monkeypatch.setattr(report_module, "_ipython_display", lambda: None)
    rep.show()
    assert RANKED.text() in capsys.readouterr().out


@pytest.fixture(scope="module")
def zoo_report():
    rec = experiments.load("norm_zoo_cifar", "cpu")
    if rec is None:
        pytest.skip("no norm_zoo_cifar record")
    return rec, experiments.get("norm_zoo_cifar").report(rec)


def test_heatmap_hovers_the_interval_and_the_paired_difference(zoo_report):
    rec, rep = zoo_report
    heat = next(p for p in rep.plots if p.spec["data"][0]["type"] == "heatmap")
    trace = heat.spec["data"][0]
    norms, batches = rec["config"]["norms"], sorted(rec["config"]["batch_sizes"])
    started = [b for b in batches if any(experiments.summary(rec, f"test_acc/{n}/b{b}").n for n in norms)]
    assert trace["y"] == norms and trace["x"] == [str(b) for b in started]  # the columns some unit has reached
    bn = experiments.summary(rec, f"test_acc/bn/b{batches[-1]}")
    assert trace["z"][norms.index("bn")][-1] == pytest.approx(bn.mean * 100, abs=0.01)
    # Every other norm with runs at the full batch hovers its interval and its paired difference to BN
    # (the record may be partial: it is saved unit by unit)
    others = [n for n in norms if n != "bn" and experiments.summary(rec, f"test_acc/{n}/b{batches[-1]}").n >= 2]
    for n in others:
        cell = trace["text"][norms.index(n)][-1]
        assert "±" in cell and "vs bn:" in cell, n
    marks = [m in t for row in trace["text"] for t in row for m in ("▲", "▼")]
    diffs = [experiments.summary(rec, f"test_acc/{n}/b{batches[-1]}") for n in others]
    if any(d.n >= 3 and abs(d.mean - bn.mean) > 0.05 for d in diffs):  # a 5-point gap over 3 seeds is marked
        assert any(marks)
    scatter = next(p for p in rep.plots if p.spec["data"][0]["type"] == "scatter")
    assert len(scatter.spec["data"]) == len(started) and all("error_x" in t for t in scatter.spec["data"])


def test_plots_are_small_json_safe_in_html(zoo_report):
    _, rep = zoo_report
    for plot in rep.plots:
        text = plot.json()
        assert "</" not in text and "NaN" not in text
        assert json.loads(text) == json.loads(json.dumps(plot.spec))
        bundle = plot._repr_mimebundle_()
        assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html", "text/plain"}
        assert 'class="labnorm-plot"' in bundle["text/html"]


def test_pooling_cubes_highlight_what_each_norm_averages():
    cube = plots.pooling_cubes()
    data = cube.spec["data"]
    assert len(data) == 3 * len(plots.CUBES)
    counts = {}
    for k, title in enumerate(plots.CUBES):
        first, second, other = data[3 * k: 3 * k + 3]
        assert len(first["x"]) + len(second["x"]) + len(other["x"]) == 4 * 6 * 4  # every value once
        counts[title] = (len(first["x"]), len(second["x"]))
    # [N=4, C=6, H·W=4]: BN pools one channel over N and H·W; GN (G=3) one sample's 2 channels; IN one map
    assert counts["Batch Norm / Batch Renorm"] == (16, 0) and counts["Group Norm (G=3)"] == (8, 0)
    assert counts["Instance Norm"] == (4, 0) and counts["Layer Norm (ln)"] == (24, 0)
    assert counts["EvoNorm-B0 (batch var; instance var inside)"] == (12, 4) and counts["Dynamic Tanh"] == (1, 0)
    # A notebook's own sets are drawn as given
    mask = np.zeros((2, 3, 2), dtype=bool)
    mask[0] = True
    mine = plots.pooling_cubes([("mine", mask, None)])
    assert [len(t["x"]) for t in mine.spec["data"]] == [6, 0, 6]


def test_no_page_ships_more_than_5_mb_of_figure_data():
    """The rendered results page (docs/results.md) holds every interactive figure's data inline."""
    page = (ROOT / "docs" / "results.md").read_text()
    specs = page.count('class="labnorm-plot-spec"')
    assert specs >= 4
    assert len(page.encode()) < 5_000_000
