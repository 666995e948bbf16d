"""The experiments package: registry, resumable seed loop, records with summaries, reports, CLI."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from labnorm import results
from labnorm.experiments import Experiment, Report, SeedResult, Table, runner
from labnorm.experiments import common, norm_zoo_cifar
from labnorm.experiments.migrate import migrate_units
from labnorm.experiments.units import missing_units, partial_summary
from labnorm.experiments.ws_bcn_vgg import dead_channel_fraction
from labnorm.scale import SCALES

PACKAGE = Path(runner.__file__).parent
ENV = {**os.environ, "LABNORM_SCALE": "smoke"}


def test_every_module_is_one_registered_experiment_of_at_most_250_lines():
    known = runner.experiments()
    helpers = {"__init__", "runner", "report", "common", "units", "plots", "tables", "_per_worker", "_zoo_changes", "migrate"}
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in helpers)
    assert sorted(known) == modules
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 250, path.name
    for exp in known.values():
        for scale in SCALES:
            config = exp.config(scale)
            assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen, (exp.name, scale)


def test_no_experiment_special_cases_a_scale():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert 'scale == "' not in text and "pick(" not in text, path.name


# ----------------------------------------------------------------------------- a fake experiment


@dataclasses.dataclass(frozen=True)
class _Config:
    n: int


def _fake(calls: list, fail_on: int | None = None, arrays: bool = False) -> Experiment:
    def run(config, seed, device):
        if seed == fail_on:
            raise KeyboardInterrupt  # as if the run were stopped during this seed
        calls.append(seed)
        extra = {"x": np.full(3, seed)} if arrays else {}
        return SeedResult({"value": seed + 0.5 * config.n}, "toy", extra)

    def report(record):
        return Report(record, [Table(["value"], [[runner.summary(record, "value").format()]])])

    return Experiment("fake", "a test", {s: _Config(n=1) for s in SCALES}, run,
                      lambda d: {"value": d["value"]}, report)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    runner.experiments()
    calls = []
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake(calls))
    return calls


def test_seeds_are_summarized_in_one_record(fake, tmp_path):
    rec = runner.run("fake", "smoke", seeds=3)
    saved = json.loads((tmp_path / "fake__smoke.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and fake == [0, 1, 2]
    assert saved["summary"]["value"]["mean"] == pytest.approx(1.5) and saved["summary"]["value"]["n"] == 3
    low, high = saved["summary"]["value"]["ci95"]
    assert low < 1.5 < high and "Student-t" in saved["summary"]["value"]["method"]
    assert {"commit", "commits", "torch", "device", "scale", "dataset", "seeds", "wall_time_s", "date"} <= set(
        saved["provenance"])
    for seed in ("0", "1", "2"):
        assert saved["per_seed"][seed]["provenance"]["seed"] == int(seed)
    assert runner.values(rec, "value") == [0.5, 1.5, 2.5]
    assert "seeds 0, 1, 2" in results.provenance_line(rec)


def test_an_interrupted_run_keeps_its_finished_seeds(fake, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake(calls, fail_on=1))
    with pytest.raises(KeyboardInterrupt):
        runner.run("fake", "smoke", seeds=3)
    assert json.loads((tmp_path / "fake__smoke.json").read_text())["seeds"] == [0]
    first = json.loads((tmp_path / "fake__smoke.json").read_text())["per_seed"]["0"]
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake(calls))
    rec = runner.run("fake", "smoke", seeds=3)
    assert calls == [0, 1, 2] and rec["seeds"] == [0, 1, 2]  # seed 0 ran once
    assert rec["per_seed"]["0"] == first


def test_a_record_from_another_config_is_refused_unless_fresh(fake, tmp_path, monkeypatch):
    runner.run("fake", "smoke", seeds=2)
    changed = dataclasses.replace(runner._REGISTRY["fake"], configs={s: _Config(n=2) for s in SCALES})
    monkeypatch.setitem(runner._REGISTRY, "fake", changed)
    with pytest.raises(ValueError, match=r"another smoke config of fake \(fields that differ: n\).*--fresh"):
        runner.run("fake", "smoke", seeds=3)
    assert runner.run("fake", "smoke", seeds=1, fresh=True)["seeds"] == [0]


def test_arrays_are_saved_per_seed_and_checked(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake([], arrays=True))
    runner.run("fake", "smoke", seeds=2)
    assert (tmp_path / "fake__smoke__seed1.npz").is_file()
    rec = runner.load("fake", "smoke")
    assert rec["arrays"]["1"]["x"].tolist() == [1, 1, 1]
    np.savez_compressed(tmp_path / "fake__smoke__seed1.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="checksum"):
        runner.load("fake", "smoke")


def test_load_or_run_prefers_the_saved_record(fake, tmp_path):
    live = runner.load_or_run("fake", "smoke")
    assert live["source"] == "live" and not list(tmp_path.glob("*.json")), "a live run is not saved"
    runner.run("fake", "smoke", seeds=2)
    saved = runner.load_or_run("fake", "smoke")
    assert saved["source"] == "saved" and saved["seeds"] == [0, 1]
    assert runner.load_or_run("fake", "smoke", rerun=True)["source"] == "live"
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        runner.run("nope", "smoke")


def test_a_one_seed_file_of_the_earlier_layout_is_read_and_absorbed(fake, tmp_path):
    prov = results.provenance(scale="smoke", seed=0, dataset="toy", device="cpu", wall_time_s=1.0)
    old = {"experiment": "fake", "description": "a test", "config": {"n": 1}, "metrics": {"value": 0.5},
           "provenance": prov}
    (tmp_path / "fake__smoke__seed0.json").write_text(json.dumps(old))
    rec = runner.load("fake", "smoke")
    assert rec["seeds"] == [0] and rec["summary"]["value"]["mean"] == 0.5
    rec = runner.run("fake", "smoke", seeds=2)
    assert rec["seeds"] == [0, 1] and not (tmp_path / "fake__smoke__seed0.json").exists()
    assert (tmp_path / "fake__smoke.json").is_file()


def test_report_renders_text_markdown_and_verdicts(fake):
    rec = runner.run("fake", "smoke", seeds=1)
    report = runner.get("fake").report(rec)
    assert "0.500 (n=1)" in report.tables[0].text() and "| value |" in report.markdown()


# ----------------------------------------------------------------------------- an experiment made of units


def _fake_units(calls: list, fail_on: tuple[str, int] | None = None) -> Experiment:
    def run_unit(config, seed, unit, device):
        if (unit, seed) == fail_on:
            raise KeyboardInterrupt  # as if the run were stopped during this unit
        calls.append((unit, seed))
        return SeedResult({"value": seed + {"a": 0.0, "b": 10.0, "c": 20.0}[unit]}, f"toy {unit}")

    def metrics(details):
        return {f"value/{u}": d["value"] for u, d in details["units"].items()}

    def report(record):
        return Report(record, [Table(["unit", "value"], [[u, runner.summary(record, f"value/{u}").format()]
                                                         for u in record["units"]])])

    return Experiment("fake", "a test", {s: _Config(n=1) for s in SCALES}, None, metrics, report,
                      units=lambda config: ["a", "b", "c"], run_unit=run_unit)


def test_a_unit_experiment_saves_every_unit_and_resumes_where_it_stopped(fake, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake_units(calls, fail_on=("b", 1)))
    with pytest.raises(KeyboardInterrupt):
        runner.run("fake", "smoke", seeds=2)
    # Unit by unit, each over the seeds: a and (b, seed 0) are saved, the interrupted one is not
    assert calls == [("a", 0), ("a", 1), ("b", 0)]
    saved = json.loads((tmp_path / "fake__smoke.json").read_text())
    assert saved["units"] == ["a", "b", "c"] and saved["seeds"] == [0, 1]
    assert list(saved["per_seed"]["0"]["details"]["units"]) == ["a", "b"]
    assert list(saved["per_seed"]["1"]["unit_provenance"]) == ["a"]
    partial = runner.load("fake", "smoke")
    assert missing_units(partial) == {0: ["c"], 1: ["b", "c"]}
    # Grouped for a reader: units a and b form one group, c another
    assert partial_summary(partial, lambda u: ("ab" if u in "ab" else "c", u)) == \
        "ab: 3 of 4 runs, missing b (seed 1); c: not run yet."
    assert partial["summary"]["value/a"]["n"] == 2 and partial["summary"]["value/b"]["n"] == 1
    assert "value/c" not in partial["summary"]
    assert "— (n=0" in runner.get("fake").report(partial).tables[0].text()  # a partial record still reports
    first = saved["per_seed"]["0"]["details"]["units"]["a"]

    calls.clear()
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake_units(calls))
    rec = runner.run("fake", "smoke", seeds=2)
    assert calls == [("b", 1), ("c", 0), ("c", 1)], "finished units are skipped, not rerun"
    assert missing_units(rec) == {} and rec["per_seed"]["0"]["details"]["units"]["a"] == first
    assert list(rec["per_seed"]["1"]["details"]["units"]) == ["a", "b", "c"]  # the experiment's order
    assert runner.values(rec, "value/c") == [20.0, 21.0]
    prov = rec["per_seed"]["1"]["provenance"]
    assert prov["seed"] == 1 and prov["dataset"] == "toy a / toy b / toy c"
    assert prov["wall_time_s"] == pytest.approx(sum(p["wall_time_s"] for p in rec["per_seed"]["1"]["unit_provenance"].values()))
    assert rec["provenance"]["seeds"] == [0, 1] and "seed" not in rec["provenance"]
    # A third seed runs all its units; the dry run's `run` is the units in turn
    assert runner.run("fake", "smoke", seeds=3)["seeds"] == [0, 1, 2] and calls[-3:] == [("a", 2), ("b", 2), ("c", 2)]
    whole = runner.get("fake").run(_Config(n=1), 5, torch.device("cpu"))
    assert whole.details == {"units": {"a": {"value": 5.0}, "b": {"value": 15.0}, "c": {"value": 25.0}}}
    copy = dataclasses.replace(runner.get("fake"), run_unit=lambda c, seed, u, d: SeedResult({"value": -1.0}, "toy"))
    assert copy.run(_Config(n=1), 0, torch.device("cpu")).details["units"]["a"] == {"value": -1.0}  # the copy's units


def test_migrate_units_renames_runs_and_takes_the_new_config_without_losing_a_run(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake_units([]))
    runner.run("fake", "smoke", seeds=2)
    before = json.loads((tmp_path / "fake__smoke.json").read_text())
    # The config changes: unit a's runs become the ablation a@old, and a new unit d joins the end
    changed = dataclasses.replace(_fake_units([]), configs={s: _Config(n=2) for s in SCALES},
                                  units=lambda config: ["a", "b", "c", "a@old", "d"])
    monkeypatch.setitem(runner._REGISTRY, "fake", changed)
    with pytest.raises(ValueError, match="two units renamed to one name"):
        migrate_units("fake", "smoke", {"a": "a@old", "b": "a@old"})
    rec = migrate_units("fake", "smoke", {"a": "a@old"}, fix=lambda u, d: d.update(tag=u))
    assert rec["config"] == {"n": 2} and rec["units"] == ["a", "b", "c", "a@old", "d"]
    for seed in ("0", "1"):
        entry, old = rec["per_seed"][seed], before["per_seed"][seed]
        assert list(entry["details"]["units"]) == list(entry["unit_provenance"]) == ["b", "c", "a@old"]
        assert entry["unit_provenance"]["a@old"] == old["unit_provenance"]["a"]  # the run's own provenance, kept
        assert entry["details"]["units"]["a@old"] == {**old["details"]["units"]["a"], "tag": "a@old"}
        assert "value/a@old" in entry["metrics"] and "value/a" not in entry["metrics"]
    assert missing_units(rec) == {0: ["a", "d"], 1: ["a", "d"]}
    assert json.loads((tmp_path / "fake__smoke.json").read_text())["units"] == rec["units"]  # saved
    # A run the new config has no unit for is refused, and the record is left as it was
    monkeypatch.setitem(runner._REGISTRY, "fake", dataclasses.replace(changed, units=lambda config: ["b", "c"]))
    with pytest.raises(ValueError, match=r"lacks: \['a@old'\]"):
        migrate_units("fake", "smoke")
    assert json.loads((tmp_path / "fake__smoke.json").read_text())["units"] == rec["units"]


def test_a_unit_experiment_needs_both_halves_and_saves_no_arrays(fake, monkeypatch):
    with pytest.raises(ValueError, match="give run, or units and run_unit"):
        Experiment("x", "", {s: _Config(n=1) for s in SCALES}, None, dict, Report)
    with pytest.raises(ValueError, match="give run, or units and run_unit"):
        Experiment("x", "", {s: _Config(n=1) for s in SCALES}, None, dict, Report, units=lambda c: ["a"])
    exp = dataclasses.replace(_fake_units([]), run_unit=lambda c, s, u, d: SeedResult({}, "toy", {"x": np.zeros(2)}))
    monkeypatch.setitem(runner._REGISTRY, "fake", exp)
    with pytest.raises(ValueError, match="unit 'a' returned arrays"):
        runner.run("fake", "smoke", save=False)


def test_ranking_orders_by_mean_and_marks_only_paired_significant_differences():
    from labnorm.experiments import ranking

    per_seed = {"base": [0.50, 0.40, 0.60], "up": [0.55, 0.46, 0.64],  # +4 to +6 points on every seed
                "noisy": [0.70, 0.30, 0.62], "down": [0.30, 0.20, 0.41], "absent": [None, None, None]}
    record = {"seeds": [0, 1, 2], "per_seed": {str(s): {"metrics": {k: v[s] for k, v in per_seed.items()}}
                                                for s in range(3)}}
    rows = ranking(record, {k: k for k in per_seed}, "base")
    assert [r[1] for r in rows] == ["up", "noisy", "base", "down", "absent"]
    by = {r[1]: r for r in rows}
    assert by["up"][3].startswith("+5.0 ± ") and by["up"][3].endswith("▲") and by["up"][4] == "best"
    assert not by["noisy"][3].endswith(("▲", "▼")) and by["noisy"][4] == "≈"  # a higher mean, but noise
    assert by["down"][3].endswith("▼") and by["down"][4] == ""  # significantly below the best
    assert by["base"][3] == "baseline" and by["absent"][2:] == ["not run yet", "", ""]


def test_norm_zoo_cifar_units_per_worker_batches_and_every_cpu_norm_in_the_fast_net():
    from labnorm.experiments import norm_zoo_cifar as zoo
    from labnorm.models import build_model

    cpu = zoo.CONFIGS["cpu"]
    assert cpu.model == "fast_cifar" and max(cpu.batch_sizes) == cpu.batch_size == 1024
    assert set(cpu.batch_sizes) == {2, 8, 32, 1024} and cpu.test_images == 10000 and cpu.train_images == 50000
    units = zoo.units(cpu)
    assert len(units) == len(set(units)) and units[0] == "bn/b1024"
    # The full batch first, for every norm; then 2, 8, 32 for the norms whose statistics are per worker
    assert units[:len(cpu.norms)] == [f"{n}/b1024" for n in cpu.norms]
    dependent = [n for n in cpu.norms if zoo.per_worker(n)]
    assert set(dependent) == {"bn", "brn:0.1", "ws+bn", "bcn:16", "ws+bcn:16", "sn", "evob0", "wn+mobn"}
    # Every norm of the registry, but torch's copies of bn and gn and SN with batch-average statistics (the doc)
    from labnorm.norms import available_norms
    assert set(available_norms()) - {n.split(":")[0] for n in cpu.norms} == {"torch-bn", "torch-gn", "sn-ba"}
    assert [u for u in units if u.endswith("/b2")] == [f"{n}/b2" for n in dependent]
    # Then the ablations of the learning-rate rule (uncapped; without the lowest point; BN's rate); the extras
    tail = [f"{n}/b1024@uncapped" for n in cpu.uncapped] + [f"{n}/b1024@div-only" for n in cpu.div_only] + \
        [f"{n}/b1024@shared-lr" for n in cpu.shared_lr]
    assert units[-len(tail) - 6:] == tail + ["brn:0.1/b1024@no-warmup+div-only", "brn/b1024@no-warmup+div-only",
                                             "wn/b1024@data-init", "frn/b1024@no-dirac", "wn/b1024@no-dirac",
                                             "wn+mobn/b1024@no-dirac"]
    assert cpu.lr_cap == zoo.CONFIGS["gpu"].lr_cap == 1.0
    assert zoo.virtual_batch("gbn") == 32 and zoo.virtual_batch("gbn:16") == 16 and zoo.virtual_batch("bn") is None
    assert {m.momentum for m in build_model("fast_cifar", "brn:0.1", width=0.125).modules() if hasattr(m, "r_max")} == {0.1}
    # Ghost BN (virtual batch 16) is its own computation only at per-worker batches of at least 16
    assert [zoo.same_at(cpu.batch_sizes, "gbn:16", b) for b in (2, 8, 32, 1024)] == [False, False, True, True]
    assert "gbn:16/b2" not in units and "gbn:16/b32" not in units
    assert zoo._parse("gn:16/b1024@shared-lr") == ("gn:16", 1024, "shared-lr")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for norm in cpu.norms:  # every cpu-scale norm builds at the cpu width and trains a step at batch 2
        model = build_model(cpu.model, norm, width=cpu.width)
        model(x).square().mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), norm


def test_norm_zoo_cifar_units_train_by_the_capped_rule_and_only_their_ablations_otherwise(monkeypatch):
    from types import SimpleNamespace

    from labnorm.experiments import fast_cifar, norm_zoo_cifar as zoo

    seen = {}

    def fake(config, norm, seed, device, **kw):
        seen[kw["desc"]] = kw
        return {"norm": norm, "lr": None, "never_left_chance": True}, None, SimpleNamespace(variant="fake")

    monkeypatch.setattr(fast_cifar, "train_norm", fake)
    cpu = zoo.CONFIGS["cpu"]
    for unit in ("gn:16/b1024", "bn/b2", "gn:16/b1024@uncapped", "frn/b1024@shared-lr"):
        out = zoo.run_unit(cpu, 0, unit, torch.device("cpu")).details
        assert out["test_acc"] == cpu.diverged_acc and out["variant"] == (unit.partition("@")[2] or "main")
    for unit in ("brn:0.1/b2", "brn:0.1/b1024@no-warmup+div-only", "brn:0.1/b1024@div-only", "gn:16/b1024@div-only"):
        zoo.run_unit(cpu, 0, unit, torch.device("cpu"))
    assert seen["brn:0.1/b2"]["prepare"] is not None and seen["brn:0.1/b1024@no-warmup+div-only"]["prepare"] is None
    assert seen["brn:0.1/b1024@div-only"]["prepare"] is not None  # the warm-up kept; only the rule's piece dropped
    assert seen["brn:0.1/b1024@div-only"]["lowest_tolerance"] is None
    assert seen["gn:16/b1024"]["prepare"] is None
    assert seen["brn:0.1/b2"]["lowest_tolerance"] == 3.0 and seen["brn:0.1/b1024@no-warmup+div-only"]["lowest_tolerance"] is None
    seen = {u: k for u, k in seen.items() if not u.startswith("brn")}
    assert [seen[u]["lr_cap"] for u in seen] == [1.0, 1.0, None, 1.0, 1.0]
    assert [seen[u]["lowest_tolerance"] for u in seen] == [3.0, 3.0, None, 3.0, None]
    assert [seen[u]["shared_lr"] for u in seen] == [False, False, False, True, False]
    assert seen["bn/b2"]["norm_batch"] == 2 and seen["gn:16/b1024"]["norm_batch"] is None
    assert all(k["model_kwargs"] is None for k in seen.values())  # the net as built, Dirac init and all
    zoo.run_unit(cpu, 0, "frn/b1024@no-dirac", torch.device("cpu"))  # FRN without it, by the main rule
    no_dirac = {k: seen["frn/b1024@no-dirac"][k] for k in ("model_kwargs", "lr_cap", "lowest_tolerance", "shared_lr")}
    assert no_dirac == {"model_kwargs": {"dirac": False}, "lr_cap": 1.0, "lowest_tolerance": 3.0, "shared_lr": False}
    assert all(k["range_prepare"] is None for k in seen.values())
    # WN's data-init unit: its range test starts from the init too, made on the range seed's images whatever the unit's
    made = []
    monkeypatch.setattr(zoo, "prepare", lambda config, norm, tags, seed, device: made.append((tags, seed)) or seed)
    zoo.run_unit(cpu, 2, "wn/b1024@data-init", torch.device("cpu"))
    assert seen["wn/b1024@data-init"]["range_prepare"] == ("data-init", cpu.range_seed)
    assert seen["wn/b1024@data-init"]["prepare"] == 2 and made == [({"data-init"}, 2), ({"data-init"}, cpu.range_seed)]


def test_norm_zoo_cifar_keeps_switchable_norm_s_learned_weights(monkeypatch):
    from types import SimpleNamespace

    from labnorm.experiments import fast_cifar, norm_zoo_cifar as zoo
    from labnorm.models import build_model

    model = build_model("fast_cifar", "sn", width=0.125)
    with torch.no_grad():
        next(m for m in model.modules() if hasattr(m, "mean_weight")).mean_weight.copy_(torch.tensor([2.0, 0.0, 0.0]))
    train = SimpleNamespace(variant="fake", images=torch.zeros(64, 3, 32, 32, dtype=torch.uint8),
                            labels=torch.zeros(64, dtype=torch.long))
    monkeypatch.setattr(fast_cifar, "train_norm", lambda *a, **k: (
        {"norm": "sn", "lr": 1.5, "test_acc": 0.5, "test_acc_tta": 0.5, "bf16": False, "diverged_at_step": None},
        model, train))
    monkeypatch.setattr(zoo, "step_ratio", lambda *a, **k: (1.0, 0.01))
    out = zoo.run_unit(zoo.CONFIGS["smoke"], 0, "sn/b64", torch.device("cpu")).details
    layers = sum(hasattr(m, "mean_weight") for m in model.modules())
    assert len(out["importance"]) == layers and all(abs(sum(w["var"]) - 1) < 1e-6 for w in out["importance"])
    assert out["importance"][0]["mean"][0] == pytest.approx(torch.softmax(torch.tensor([2.0, 0, 0]), 0)[0].item())


def test_norm_zoo_cifar_wn_data_init_unit_starts_wn_from_salimans_and_kingma_s_init():
    # wn/bB@data-init: every WN conv's pre-activation on the init images has per-channel mean 0 and std 1 at the start;
    # plain wn/bB keeps PyTorch's init
    from labnorm.experiments import fast_cifar, norm_zoo_cifar as zoo
    from labnorm.models import build_model
    from labnorm.train.fast import normalize

    smoke, cpu = zoo.CONFIGS["smoke"], torch.device("cpu")
    assert zoo.prepare(smoke, "wn", {""}, 0, cpu) is None
    images = normalize(fast_cifar.train_split(smoke, 0).images[:smoke.init_images])
    model = build_model("fast_cifar", "wn", width=0.125)
    model.init_whitening(images)
    zoo.prepare(smoke, "wn", {"data-init"}, 0, cpu)(model)
    outputs = []
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m is not model.whiten]
    assert len(convs) == 6 and all(hasattr(m, "parametrizations") for m in convs)
    for conv in convs:  # each sees the output of the already-initialized layers before it
        conv.register_forward_hook(lambda m, i, o: outputs.append(o))
    with torch.no_grad():
        model(images)
    for out in outputs:
        var, mean = torch.var_mean(out, dim=(0, 2, 3), correction=0)
        assert mean.abs().max() < 1e-4 and (var - 1).abs().max() < 1e-3


@pytest.mark.parametrize("norm", norm_zoo_cifar.CONFIGS["cpu"].norms)
def test_norm_zoo_cifar_a_batch_independent_norm_is_the_same_computation_at_every_per_worker_batch(norm):
    # Why a norm the zoo trains once stands for every column: a net of it gives, on the whole batch, the outputs
    # and summed gradients that workers of b images each would give (float64, train mode); a per-worker norm does not
    from labnorm.experiments import norm_zoo_cifar as zoo
    from labnorm.models import build_model

    cpu = zoo.CONFIGS["cpu"]
    torch.manual_seed(0)
    model = build_model(cpu.model, norm, width=0.125).double().train()
    x = torch.randn(64, 3, 32, 32, dtype=torch.float64)
    for b in sorted(set(cpu.batch_sizes) - {max(cpu.batch_sizes)}):
        whole = model(x)
        g_whole = torch.autograd.grad(whole.square().sum(), [p for p in model.parameters() if p.requires_grad])
        parts = [model(x[i:i + b]) for i in range(0, len(x), b)]
        g_parts = torch.autograd.grad(sum(o.square().sum() for o in parts),
                                      [p for p in model.parameters() if p.requires_grad])
        same = torch.allclose(whole, torch.cat(parts), atol=1e-9) and all(
            torch.allclose(a, c, atol=1e-7) for a, c in zip(g_whole, g_parts))
        assert same == zoo.same_at(cpu.batch_sizes, norm, b), (norm, b)


# ----------------------------------------------------------------------------- committed records


def test_committed_records_are_complete_and_their_summaries_recompute():
    for path in sorted(results.results_dir().glob("*.json")):
        raw = json.loads(path.read_text())
        assert {"experiment", "scale", "config", "seeds", "per_seed", "summary", "provenance"} <= set(raw), path.name
        assert path.name == f"{raw['experiment']}__{raw['scale']}.json"
        rec = runner.load(raw["experiment"], raw["scale"])
        assert rec["summary"] == raw["summary"], f"{path.name}: summary does not match its seeds"
        for seed, entry in raw["per_seed"].items():
            prov = entry["provenance"]
            for key in ("commit", "torch", "device", "scale", "dataset", "seed", "wall_time_s", "date"):
                assert prov.get(key) not in (None, ""), f"{path.name} seed {seed}: {key}"
            assert prov["commit_dirty"] is False, f"{path.name} seed {seed} was run from uncommitted code"
        report = runner.get(raw["experiment"]).report(rec)
        assert report.tables and report.figures, path.name


# ----------------------------------------------------------------------------- shared helpers


def test_blow_up_rule_is_the_range_tests_divergence_rule():
    assert common.blow_up_step([2.3] * 200) is None
    assert common.blow_up_step([2.3] * 39 + [50.0] * 10) == 43  # the smoothed loss passes 4x its best 4 steps later
    assert common.blow_up_step([2.3, 2.2, float("inf")]) == 3
    assert common.blow_up_step([5.0] * 5 + [100.0]) is None or common.blow_up_step([5.0] * 5 + [100.0]) > 10


def test_every_saved_comparison_prints_its_baseline_accuracy():
    # #19: a verdict is read beside its baseline's test accuracy, so every report that judges arms by
    # accuracy-trained networks says what that baseline reached
    from labnorm.experiments import reference

    for name, exp in runner.experiments().items():
        rec = reference(name)
        if rec is None:
            continue
        rep = exp.report(rec)
        if rep.verdicts and any(k.startswith("test_acc/") for k in rec["summary"]):
            assert any(n.startswith("Baseline test accuracy:") for n in rep.notes), name


def test_baseline_note_gives_the_accuracy_and_warns_below_the_level():
    from labnorm.experiments.report import baseline_note

    def rec(accs):
        seeds = list(range(len(accs)))
        return {"seeds": seeds, "summary": {"test_acc/bn": {}},
                "per_seed": {str(s): {"metrics": {"test_acc/bn": a}} for s, a in zip(seeds, accs)}}

    low, high = baseline_note(rec([0.54, 0.55, 0.53]), [("bn", "test_acc/bn")]), \
        baseline_note(rec([0.91, 0.92, 0.92]), [("bn", "test_acc/bn")])
    assert low[0].startswith("Baseline test accuracy: bn 54.0%") and "Under 85%" in low[0]
    assert high[0].startswith("Baseline test accuracy: bn 91.7%") and "Under" not in high[0]
    assert baseline_note(rec([0.5]), [("gn", "test_acc/gn")]) == []  # no such metric: no note


def test_never_learned_means_every_run_stayed_at_the_uniform_guess_loss():
    flat = {"loss_curve": [[1, 2.3026], [50, 2.3031], [100, 2.2995]]}
    learning = {"loss_curve": [[1, 2.3026], [50, 2.1], [100, 1.7]]}
    assert common.never_learned([flat, flat]) and not common.never_learned([flat, learning])
    assert not common.never_learned([])  # no runs: nothing to say
    assert common.never_learned([{"loss_curve": [[1, 0.693]]}], classes=2)


def test_dead_channel_count_leaves_the_mode_alone():
    # 4 channels, one of them pushed negative everywhere: a quarter of the channels is dead
    conv = torch.nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.weight.fill_(0.0)
        conv.bias.copy_(torch.tensor([1.0, 1.0, 1.0, -1.0]))
    model = torch.nn.Sequential(conv, torch.nn.ReLU()).train()
    assert dead_channel_fraction(model, torch.randn(3, 1, 5, 5)) == 0.25
    assert model.training


# ----------------------------------------------------------------------------- the command line


def test_cli_lists_experiments(tmp_path):
    out = subprocess.run([sys.executable, "-m", "labnorm", "list"], capture_output=True, text=True, check=True,
                         env={**ENV, "LABNORM_RESULTS": str(tmp_path)}).stdout
    assert "bn_gn_batch_size" in out and "saved: none" in out


def test_cli_runs_three_seeds_and_a_killed_run_resumes(tmp_path):
    """`python -m labnorm run bn_gn_batch_size --scale smoke --seeds 3`, killed after its first seed, then again."""
    env = {**ENV, "LABNORM_RESULTS": str(tmp_path)}
    cmd = [sys.executable, "-m", "labnorm", "run", "bn_gn_batch_size", "--scale", "smoke", "--seeds", "3"]
    record = tmp_path / "bn_gn_batch_size__smoke.json"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not record.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = json.loads(record.read_text())
    assert first["seeds"] == [0], "killed during seed 1: seed 0 is saved"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    done = json.loads(record.read_text())
    assert "seeds 0, 1, 2" in out and done["seeds"] == [0, 1, 2]
    assert done["per_seed"]["0"] == first["per_seed"]["0"], "the finished seed was kept, not rerun"
    for metric in ("test_acc/bn/b2", "test_acc/gn:8/b32"):
        s = done["summary"][metric]
        assert s["n"] == 3 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
