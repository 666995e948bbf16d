r"""labml's Weight Standardization experiment: VGG-16 with BN, WS+BN, GN, WS+GN, WS+BCN (notebook 03).

The WS paper's claims on a small scale: WS helps GN close its gap to BN, and WS+BCN is the best
of the five; WS keeps the network away from elimination singularities, the first kind of which
is a dead ReLU channel (`dead_channel_fraction`). After training, the WS variants of other
implementations are compared with the paper's on the trained WS+BN weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import DeviceBatches
from ..models import build_model
from ..weight_std import VARIANTS, WSConv2d, weight_standardization
from .common import EVAL_BATCH, cifar_subsets, train_run
from .claims import verdicts
from .report import Figure, Report, Table, bands, baseline_note, cell, seed_details
from .runner import Experiment, SeedResult


@dataclass(frozen=True)
class Config:
    width: float
    epochs: int
    train_images: int
    test_images: int
    model: str = "vgg16"
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)"
    norms: tuple[str, ...] = ("bn", "ws+bn", "gn", "ws+gn", "ws+bcn")
    dead_channel_rule: str = "ReLU channel positive on < 1% of positions of 500 test images"


CONFIGS = {
    "smoke": Config(width=0.125, epochs=1, train_images=512, test_images=256),
    "cpu": Config(width=0.25, epochs=4, train_images=8000, test_images=10000),
    "gpu": Config(width=1.0, epochs=30, train_images=50000, test_images=10000),
}


def dead_channel_fraction(model: nn.Module, x: torch.Tensor, threshold: float = 0.01) -> float:
    """Fraction of ReLU channels that are positive on fewer than `threshold` of their positions for
    the batch `x`, in eval mode (a dead channel is the WS paper's first elimination singularity)."""
    alive = []
    handles = [m.register_forward_hook(lambda _m, _i, out: alive.append((out > 0).float().mean((0, 2, 3))))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return (torch.cat(alive) < threshold).float().mean().item()


def variant_gaps(model: nn.Module) -> dict[str, dict[str, float]]:
    """How far each named WS variant is from the paper's on a model's WS conv weights (float64)."""
    weights = [m.weight.detach().double() for m in model.modules() if isinstance(m, WSConv2d)]
    gaps = {}
    for variant in VARIANTS:
        diffs = [(weight_standardization(w, variant=variant) - weight_standardization(w)).abs() for w in weights]
        gaps[variant] = {"max_abs": max(d.max().item() for d in diffs),
                         "mean_abs": sum(d.sum().item() for d in diffs) / sum(d.numel() for d in diffs)}
    return gaps


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    probe, _ = next(iter(DeviceBatches(test, EVAL_BATCH, train=False, device=device)))
    runs, gaps = [], {}
    for norm in config.norms:
        model, record = train_run(lambda: build_model(config.model, norm, width=config.width), train, test,
                                  batch_size=config.batch_size, seed=seed, device=device, epochs=config.epochs,
                                  lr=config.lr, labels={"norm": norm})
        record["dead_channel_fraction"] = dead_channel_fraction(model, probe)
        runs.append(record)
        if norm == "ws+bn":
            gaps = variant_gaps(model)
    return SeedResult({"runs": runs, "variant_gaps_on_trained_ws_bn": gaps}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for r in details["runs"]:
        out[f"test_acc/{r['norm']}"] = r["final_test_acc"]
        out[f"test_loss/{r['norm']}"] = r["final_test_loss"]
        out[f"dead_channels/{r['norm']}"] = r["dead_channel_fraction"]
    for variant, gap in details.get("variant_gaps_on_trained_ws_bn", {}).items():
        out[f"ws_variant_max_gap/{variant}"] = gap["max_abs"]
    return out


def report(record: dict) -> Report:
    norms = [r["norm"] for r in seed_details(record)[0]["runs"]]
    rows = [[n, cell(record, f"test_acc/{n}", 1, percent=True), cell(record, f"test_loss/{n}"), cell(record, f"dead_channels/{n}")]
            for n in norms]
    table = Table(["norm", "test accuracy", "test loss", "dead ReLU channels (fraction)"], rows,
                  note="dead ReLU channel: positive on < 1% of its positions over 500 test images (eval mode).")
    variants = list(seed_details(record)[0].get("variant_gaps_on_trained_ws_bn", {}))
    gaps = Table(["variant", "largest |difference| from the paper's WS on the trained WS+BN weights"],
                 [[v, cell(record, f"ws_variant_max_gap/{v}", 4)] for v in variants],
                 note="variant: how an implementation standardizes a filter (biased or unbiased variance, eps inside "
                      "or added to the std, its eps) — the table in labnorm.weight_std; the difference is between "
                      "standardized weights, largest over all entries of all convs of the trained WS+BN model.")

    def draw(fig):
        ax = fig.subplots()
        for k, n in enumerate(norms):
            bands(ax, [d["runs"][k]["loss_curve"] for d in seed_details(record)], label=n)
        ax.set(xlabel="training step", ylabel="training loss")
        ax.legend()

    return Report(record, [table, gaps], [Figure("Training loss (line: mean over seeds; band: lowest to highest seed)",
                                                 draw)],
                  verdicts(record), baseline_note(record, [("bn", "test_acc/bn")]))


EXPERIMENT = Experiment(
    name="ws_bcn_vgg",
    description="labml's Weight Standardization experiment: the VGG-16 layout on CIFAR-10 with BN, WS+BN, GN, WS+GN "
                "and WS+BCN, one-cycle SGD (Nesterov) at batch 64; dead ReLU channels and the WS variants' gaps on "
                "the trained weights.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
