"""The guide "Which normalization should I use?": `labnorm.choose` and `scripts/choose_page.py` (docs/choose.md)."""

import json
import sys
from pathlib import Path

import pytest

from labnorm import choose
from labnorm.norms import available_norms
from labnorm.stats import paired_difference

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import choose_page  # noqa: E402
import render_pages  # noqa: E402


@pytest.fixture(scope="module")
def page():
    return choose_page.build()


def test_choose_page_is_up_to_date(page):
    """docs/choose.md is what `make pages` renders from the saved records now: a new record, a changed claim or a
    new norm fails here until the page is rendered again (`python scripts/render_pages.py`)."""
    committed = (ROOT / "docs" / "choose.md").read_text()
    assert committed == render_pages._with_banner(page), "stale docs/choose.md: run `make pages`"


def test_render_pages_renders_and_checks_the_guide():
    import inspect

    assert "choose.md" in inspect.getsource(render_pages.render)
    assert "choose.md" in render_pages.committed()


def test_anatomy_of_known_norms():
    a = {x.name: x for x in choose.anatomies()}
    assert set(a) == set(available_norms())
    assert a["bn"].over == ("N", "H·W") and a["bn"].running == "running average" and a["bn"].batch == choose.PER_WORKER
    assert a["torch-bn"].batch == choose.WHOLE_BATCH
    assert a["gbn"].batch.startswith("its virtual batches")
    assert a["gn"].over == ("C/G", "H·W") and not a["gn"].needs_batch and a["gn"].running == ""
    assert a["ln"].over == ("C", "H·W")
    assert a["ln2d"].over == a["rms"].over == ("C",)
    assert a["in"].over == a["frn"].over == ("H·W",)
    assert a["dyt"].over == a["none"].over == a["wn"].over == ()
    # Batch Renorm's forward equals its running statistics' until r or d clips: the batch shows in the backward
    assert a["brn"].needs_batch and a["brn"].batch == choose.PER_WORKER
    assert a["sn"].over == ("N", "C", "H·W") and a["sn-ba"].running == "batch average after training"
    assert a["frn"].fuses_activation and a["evos0"].fuses_activation and not a["gn"].fuses_activation
    assert a["ws+gn"].in_conv == "Weight Standardization" and a["wn"].in_conv == "weight normalization"
    assert a["ws+gn"].over == a["gn"].over


def test_a_norm_needs_a_running_average_exactly_when_it_needs_a_batch():
    for a in choose.anatomies():
        assert bool(a.running) == a.needs_batch, a


def test_layer_costs_match_a_benchmark_row_by_class():
    bench = {"rows": [{"layer": "EvoNorm2dS0(32)", "batch": 2, "labnorm_over_bn": 4.0, "compiled_over_bn": 1.5},
                      {"layer": "EvoNorm2dS0(32)", "batch": 128, "labnorm_over_bn": 7.0, "compiled_over_bn": 1.0}]}
    assert choose.layer_costs(bench, choose.anatomy("evos0").layer) == {"batch": 128, "eager": 7.0, "compiled": 1.0,
                                                                        "row": "EvoNorm2dS0(32)"}
    assert choose.layer_costs(bench, "GroupNorm") is None


def _record(batch_sizes, per_seed_acc, batch_size=None):
    """A grand comparison record: {norm: {batch: [acc per seed]}}."""
    norms = list(per_seed_acc)
    seeds = range(len(next(iter(per_seed_acc["bn"].values()))))
    config = {"norms": norms, "batch_sizes": batch_sizes, "baseline": "bn"}
    if batch_size is not None:
        config["batch_size"] = batch_size
    return {"experiment": "norm_zoo_cifar", "config": config, "seeds": list(seeds),
            "per_seed": {str(s): {"metrics": {f"test_acc/{n}/b{b}": accs[s] for n, cols in per_seed_acc.items()
                                              for b, accs in cols.items()}} for s in seeds}}


def test_grid_reads_its_columns_and_pairs_by_seed():
    rec = _record([2, 8, 1024], {"bn": {1024: [0.9, 0.92, 0.91], 2: [0.5, 0.6, 0.55]},
                                 "gn:16": {1024: [0.88, 0.9, 0.9], 8: [0.88, 0.9, 0.9], 2: [0.6, 0.7, 0.66]}},
                  batch_size=1024)
    assert choose.columns(rec) == [1024, 8, 2]
    g = choose.grid(rec)
    assert set(g["bn"]) == {1024, 2} and set(g["gn:16"]) == {1024, 8, 2}  # a column without a value is left out
    assert g["bn"][2].diff is None
    cell = g["gn:16"][2]
    assert cell.diff == paired_difference([0.6, 0.7, 0.66], [0.5, 0.6, 0.55]) and cell.mark == "▲"
    assert g["gn:16"][8].diff.n == 0  # BN has no batch-8 run: no pair
    assert choose.batch_meaning(rec)["per_worker"] and choose.batch_meaning(rec)["optimizer_batch"] == 1024
    del rec["config"]["batch_size"]
    assert not choose.batch_meaning(rec)["per_worker"]


def test_page_covers_every_norm_the_flow_and_the_three_notebooks(page):
    for name in available_norms():
        assert f"| `{name}` |" in page
    assert "## The short answer: a decision flow" in page and "→ **BN**" in page and "→ **GN**" in page
    for notebook in ("01_batch_and_group_norm", "09_normalization_zoo", "10_which_normalization"):
        assert f"(notebooks/{notebook}.ipynb)" in page
    assert "true batch-2 SGD" in page and "per-worker batch" in page
    assert "benchmarks/results/zoo__cpu.json" in page and "results/norm_zoo_cifar__cpu.json" in page
    from labnorm import experiments

    zoo = experiments.reference("norm_zoo_cifar")
    if zoo is not None and not choose.trained(zoo):  # the project's rule, stated beside the record's rows
        assert "**Early in training: these rows cannot decide.**" in page


def test_a_trained_per_worker_record_changes_the_page_without_code_changes(tmp_path, monkeypatch):
    """The grand comparison saved later on trained networks at per-worker batches (the same metrics, other columns):
    the page reads its columns, calls its rows trained and lets it decide the batch-2 question."""
    for path in (ROOT / "results").iterdir():
        if path.is_file():
            (tmp_path / path.name).symlink_to(path)
    old = json.loads((ROOT / "results" / "norm_zoo_cifar__cpu.json").read_text())
    full, new = max(old["config"]["batch_sizes"]), dict(old)
    new["config"] = {**old["config"], "batch_sizes": [2, 8, 32, 1024], "batch_size": 1024}
    new["scale"] = "gpu"
    new["per_seed"] = {}
    for seed, entry in old["per_seed"].items():
        metrics = {}
        for key, value in entry["metrics"].items():
            if key.endswith(f"/b{full}"):
                key = key[: -len(f"/b{full}")] + "/b1024"
            if key.startswith("test_acc/") and value is not None:
                value = min(1.0, value + 0.45)  # trained: BN near 93% at the full batch
            metrics[key] = value
        new["per_seed"][seed] = {**entry, "metrics": metrics}
    (tmp_path / "norm_zoo_cifar__gpu.json").write_text(json.dumps(new))
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    md = choose_page.build()
    assert "results/norm_zoo_cifar__gpu.json" in md
    grand = md[md.index("### The grand comparison"):md.index("## What our runs show: Transformers")]
    assert "**Trained** by the project's rule" in grand and "Early in training" not in grand
    assert "full batch (1,024)" in grand and "per-worker batch 2" in grand and "batch 128" not in grand
    assert "▲" in grand or "▼" in grand
    assert "**The answer that decides** is notebook 10's" in md
