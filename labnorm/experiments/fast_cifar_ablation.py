r"""What each piece of the fast recipe buys: BN in `fast_cifar`'s net, one piece removed at a time (notebook 11).

One run per unit, each the BN net of `fast_cifar` (at cpu scale a quarter-width net for 5 epochs, so
that the eight runs take minutes) trained by
`labnorm.train.fast.train_fast` with one field of `FastRecipe` changed:

| unit | what is removed |
|---|---|
| `full` | nothing: the whole recipe (its test accuracy without TTA is the "no TTA" row) |
| `no-whitening` | the fixed patch-whitening filters: the first 2×2 conv is trained from PyTorch's init (`whiten=False`) |
| `random-flip` | the alternating flip: each image flipped with probability 1/2 in every epoch (`flip="random"`) |
| `no-translate` | the random translation by up to 2 pixels (`translate=0`) |
| `no-lookahead` | the lookahead average of the weights (`lookahead=False`) |
| `no-label-smoothing` | label smoothing (`label_smoothing=0`) |
| `no-shift-lr` | the larger learning rate of the norm shifts (`bias_lr_scale=1`) |
| `trained-scale` | the frozen norm scales: BN's $\gamma$ is trained (`freeze_norm_scale=False`) |

BN trains at the recipe's learning rate (the rule of `fast_cifar` gives BN exactly that). At cpu
scale one seed: an ablation reads large effects only, and the record says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..models import build_model
from ..train.dry import dry, dry_batch, dry_part
from ..train.fast import FastRecipe, train_fast
from ..train.kernels import describe_norms, use_torch_kernels
from .common import curve
from .fast_cifar import _data
from .report import Figure, Report, Table, cell
from .runner import Experiment, SeedResult, summary

# unit -> the recipe fields it changes
REMOVALS = {"full": {}, "no-whitening": {"whiten": False}, "random-flip": {"flip": "random"},
            "no-translate": {"translate": 0}, "no-lookahead": {"lookahead": False},
            "no-label-smoothing": {"label_smoothing": 0.0}, "no-shift-lr": {"bias_lr_scale": 1.0},
            "trained-scale": {"freeze_norm_scale": False}}


@dataclass(frozen=True)
class Config:
    width: float
    epochs: float
    train_images: int
    test_images: int
    batch_size: int = 1024
    lr: float = 1.5
    weight_decay: float = 2e-3
    norm: str = "bn"
    model: str = "fast_cifar"
    seeds_note: str = "one seed per unit at cpu scale: large effects only"


CONFIGS = {
    "smoke": Config(width=0.125, epochs=1, train_images=256, test_images=100, batch_size=64),
    "cpu": Config(width=0.25, epochs=5, train_images=50000, test_images=10000),
    "gpu": Config(width=1.0, epochs=10, train_images=50000, test_images=10000),
}


def units(config: Config) -> list[str]:
    return list(REMOVALS)


def run_unit(config: Config, seed: int, unit: str, device: torch.device) -> SeedResult:
    train, test = _data(config, seed)
    recipe = replace(FastRecipe(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                                weight_decay=config.weight_decay), **REMOVALS[unit])
    full_steps = math.ceil(recipe.epochs * (config.train_images // recipe.batch_size))
    if dry():  # two steps of the dry batch, projected to the run's steps
        recipe = replace(recipe, batch_size=dry_batch(recipe.batch_size), tta=0)
        recipe = replace(recipe, epochs=2 / (len(train) // recipe.batch_size))
    torch.manual_seed(seed)
    model = build_model(config.model, config.norm, width=config.width)
    swapped = use_torch_kernels(model)
    with dry_part(f"{unit}: {full_steps:,} training steps + evaluation", full_steps, 2, device, full_steps):
        hist = train_fast(model, train.images, train.labels, test.images, test.labels, recipe=recipe, seed=seed,
                          device=device, desc=unit)
    out = {k: hist.get(k) for k in ("test_acc", "test_acc_tta", "test_loss", "bf16", "diverged_at_step", "wall_seconds")}
    out.update(unit=unit, removed=REMOVALS[unit], loss_curve=curve(hist["step_loss"], 60),
               implementation={"torch_kernels": swapped, **describe_norms(model), "channels_last": recipe.channels_last})
    return SeedResult(out, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    return {f"{k}/{u}": r.get(k) for u, r in details["units"].items() for k in ("test_acc", "test_acc_tta", "wall_seconds")}


def report(record: dict) -> Report:
    def diff(unit: str) -> str:
        a, b = record["summary"].get(f"test_acc_tta/{unit}"), record["summary"].get("test_acc_tta/full")
        return "—" if not a or not b or a.get("mean") is None or b.get("mean") is None else \
            f"{(a['mean'] - b['mean']) * 100:+.1f}"

    rows = [[u, ", ".join(f"{k}={v}" for k, v in REMOVALS[u].items()) or "—", cell(record, f"test_acc_tta/{u}", 1, percent=True),
             diff(u), cell(record, f"wall_seconds/{u}", 0)] for u in REMOVALS]
    rows.insert(1, ["no TTA (the full run, evaluated without it)", "tta=0", cell(record, "test_acc/full", 1, percent=True),
                    "—", "—"])
    config = record["config"]
    table = Table(["run", "recipe change", "test acc. (TTA)", "vs full (points)", "wall time (s)"], rows,
                  note=f"BN, {config['model']} at width {config['width']:g}, {config['epochs']:g} epochs of "
                       f"{config['train_images']:,} images at batch {config['batch_size']}; test accuracy on "
                       f"{config['test_images']:,} test images with test-time augmentation (flips and 1-pixel "
                       f"translations). {config['seeds_note']}: with one seed a difference under about a point is "
                       "within seed-to-seed noise.")
    def bars(fig):
        ax = fig.subplots()
        done = [u for u in REMOVALS if summary(record, f"test_acc_tta/{u}").n]
        ax.barh(range(len(done)), [summary(record, f"test_acc_tta/{u}").mean * 100 for u in done], color="C0")
        if "full" in done:
            ax.axvline(summary(record, "test_acc_tta/full").mean * 100, color="k", ls=":", lw=1, label="full recipe")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_yticks(range(len(done)), done)
        ax.invert_yaxis()
        lows = [summary(record, f"test_acc_tta/{u}").mean * 100 for u in done]
        if lows:
            ax.set_xlim(min(lows) - 3, max(lows) + 2)
        ax.set(xlabel="test accuracy with TTA (%), one seed")

    figure = Figure("Test accuracy (TTA) of BN with one piece of the recipe removed (one seed per bar; dotted: the "
                    "full recipe)", bars, (6.4, 3.4))
    return Report(record, [table], [figure])


EXPERIMENT = Experiment(
    name="fast_cifar_ablation",
    description="What each piece of the fast CPU recipe buys: BN in fast_cifar's quick configuration with one piece "
                "removed at a time (whitening, alternating flip, translation, lookahead, label smoothing, shift LR, "
                "frozen scale).",
    configs=CONFIGS, run=None, metrics=metrics, report=report, units=units, run_unit=run_unit,
)
