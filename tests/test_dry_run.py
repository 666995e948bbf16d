"""The dry run: every registered experiment builds its real gpu-scale models and data pipeline and
takes 2 training steps and 1 evaluation batch per arm, so that no gpu config can break unseen;
the projection follows its stated rule; nothing is saved; normal runs are untouched."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from labnorm.__main__ import main
from labnorm.experiments import Experiment, SeedResult, runner
from labnorm.experiments.common import cifar_subsets, dry_run, format_dry_run, train_run
from labnorm.scale import SCALES
from labnorm.train.dry import dry, dry_batch, dry_cut, dry_mode

# The splits are cut to 64 images and every dry step to 2 images: the models are the gpu scale's,
# full width, but a step costs a fraction of a second on a CPU.
IMAGES, BATCH = 64, 2


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", sorted(runner.experiments()))
def test_every_experiment_dry_runs_at_gpu_scale(name, results):
    out = dry_run(name, "gpu", device="cpu", images=IMAGES, batch=BATCH)
    assert out["parts"], name
    for part in out["parts"]:
        assert math.isfinite(part["projected_s"]) and part["projected_s"] > 0, part
        assert part["steps"] is None or part["steps"] > 0, part  # device round trips of the full part
        if "step_s" in part:  # a training arm or a range test: two timed steps
            assert len(part["step_s"]) == 2 and all(s > 0 for s in part["step_s"]), part
            assert part["step_images"] <= BATCH
    assert out["projected_s"] == pytest.approx(sum(p["projected_s"] for p in out["parts"]))
    assert out["peak_memory_bytes"] > 0 and "RSS" in out["peak_memory"]
    text = format_dry_run(out)
    assert "projected full run" in text and "peak memory" in text and "steps" in text
    assert list(results.iterdir()) == []  # a dry run writes no record
    assert dry() is None


# ----------------------------------------------------------------------------- the projection rule


@dataclasses.dataclass(frozen=True)
class _Config:
    epochs: int
    batch_size: int = 64
    train_images: int = 50000


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


def _run(config, seed, device):
    train, test = cifar_subsets(config.train_images, 10000, seed)
    _, record = train_run(_tiny, train, test, batch_size=config.batch_size, seed=seed, device=device,
                          epochs=config.epochs, lr=0.1, labels={"arm": "tiny"})
    return SeedResult({"steps": record["steps"], "epochs": len(record["epochs"])}, train.variant)


@pytest.fixture
def tiny(results, monkeypatch):
    runner.experiments()
    exp = Experiment("tiny", "a test", {s: _Config(epochs=3) for s in SCALES}, _run, lambda d: {}, lambda r: None)
    monkeypatch.setitem(runner._REGISTRY, "tiny", exp)
    return exp


def test_projection_counts_the_real_split_and_follows_the_rule(tiny):
    out = dry_run("tiny", "gpu", device="cpu", images=IMAGES, batch=BATCH)
    (part,) = out["parts"]
    steps = 50000 // 64  # the real split, although the dry run trained on 64 images
    assert part["full"].startswith(f"3 epochs x {steps} steps of 64") and part["steps"] == 3 * steps
    per_image = part["step_s"][-1] / part["step_images"]
    eval_per_image = part["eval_s"] / part["eval_images"]
    assert part["eval_images"] == BATCH
    assert part["projected_s"] == pytest.approx(per_image * 3 * steps * 64 + eval_per_image * 3 * 10000
                                                + part["once_s"])


def test_cli_dry_run_prints_the_projection_and_saves_nothing(tiny, results, capsys):
    assert main(["run", "tiny", "--scale", "gpu", "--dry-run", "--dry-batch", "8", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "dry run of tiny at gpu scale on cpu, at most 8 images per step" in text
    assert "3 epochs x 781 steps of 64 + 3 x 10000 test images" in text and "projected full run" in text
    assert "peak memory" in text and "(peak RSS of the whole process (CPU))" in text
    assert list(results.iterdir()) == []
    with pytest.raises(SystemExit):
        main(["run", "tiny", "--dry-batch", "8"])


def test_outside_a_dry_run_nothing_changes(tiny):
    config = _Config(epochs=1)
    assert dry() is None and dry_batch(512) == 512 and dry_cut(config, epochs=9) is config
    with dry_mode(batch=4) as d:
        assert dry() is d and dry_batch(512) == 4 and dry_batch(2) == 2 and dry_cut(config, epochs=9).epochs == 9
    assert dry() is None
    with pytest.raises(ValueError, match="dry_mode: batch must be >= 2"):
        with dry_mode(batch=1):
            pass
    # A normal run trains every step of every epoch
    torch.manual_seed(0)
    details = _run(_Config(epochs=2, batch_size=100, train_images=1000), 0, torch.device("cpu")).details
    assert details == {"steps": 2 * 1000 // 100, "epochs": 2}
