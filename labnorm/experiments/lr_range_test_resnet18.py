r"""The LR range test of a CIFAR ResNet-18 with BN, GN and no norm (notebook 07).

Smith's range test (`labnorm.LRFinder`) at batch 64, SGD with Nesterov momentum: where the
smoothed loss falls fastest (the suggestion) and where it turns up, per normalization. A
normalized network is expected to tolerate a larger learning rate than an unnormalized one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import DeviceBatches, load_cifar10
from ..models import build_model
from ..train.fit import make_optimizer
from .common import range_test
from .claims import verdicts
from .plots import curves
from .report import Figure, Report, Table, bands, cell, log_axis, seed_details
from .runner import Experiment, SeedResult


@dataclass(frozen=True)
class Config:
    width: float
    batch_size: int
    num_iter: int
    model: str = "resnet18"
    start_lr: float = 1e-5
    end_lr: float = 10.0
    step_mode: str = "exp"
    smooth_f: float = 0.05
    diverge_th: float = 5.0
    norms: tuple[str, ...] = ("bn", "gn", "none")
    optimizer: str = "SGD, Nesterov momentum 0.9, weight decay 5e-4"


CONFIGS = {
    "smoke": Config(width=0.125, batch_size=16, num_iter=20),
    "cpu": Config(width=0.25, batch_size=64, num_iter=100),
    "gpu": Config(width=1.0, batch_size=64, num_iter=200),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    train = load_cifar10("train")
    curves = []
    for norm in config.norms:
        torch.manual_seed(seed)
        model = build_model(config.model, norm, width=config.width).to(device)
        opt = make_optimizer(model.parameters(), "sgd", config.start_lr, 0.9, 5e-4)
        batches = DeviceBatches(train, config.batch_size, train=True, device=device, seed=seed)
        curves.append({"norm": norm, **range_test(model, opt, batches, start_lr=config.start_lr, end_lr=config.end_lr,
                                                  num_iter=config.num_iter, step_mode=config.step_mode,
                                                  smooth_f=config.smooth_f, diverge_th=config.diverge_th, device=device)})
    return SeedResult({"curves": curves}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for c in details["curves"]:
        i = min(range(len(c["loss"])), key=lambda k: c["loss"][k])
        out[f"lowest_loss/{c['norm']}"] = c["loss"][i]
        # Learning rates are compared on a log scale: log10 of the lr at the lowest loss
        out[f"log10_lr_at_lowest/{c['norm']}"] = _log10(c["lr"][i])
        out[f"log10_suggested_lr/{c['norm']}"] = None if c["suggested_lr"] is None else _log10(c["suggested_lr"])
        out[f"steps/{c['norm']}"] = c["stopped_at"]
    return out


def _log10(x: float) -> float:
    import math

    return math.log10(x)


def report(record: dict) -> Report:
    norms = [c["norm"] for c in seed_details(record)[0]["curves"]]
    rows = [[n, cell(record, f"lowest_loss/{n}"), cell(record, f"log10_lr_at_lowest/{n}", 2),
             cell(record, f"log10_suggested_lr/{n}", 2), cell(record, f"steps/{n}", 0)] for n in norms]
    table = Table(["norm", "lowest smoothed loss", "log10 lr at lowest", "log10 steepest-descent lr", "steps run"],
                  rows, note="lowest smoothed loss: the minimum of the smoothed range-test curve; steps run: the test "
                             "stops when the smoothed loss exceeds 5x its minimum.")

    def draw(fig):
        ax = fig.subplots()
        details = seed_details(record)
        for k, n in enumerate(norms):
            bands(ax, [list(zip(d["curves"][k]["lr"], d["curves"][k]["loss"])) for d in details], cut=False,
                  color=f"C{k}", label=n)
        first = [d["curves"][k] for d in details for k in range(len(norms))]
        low, high = min(min(c["loss"]) for c in first), max(c["loss"][0] for c in first)
        ax.set(xlabel="learning rate (log scale)", ylabel="smoothed training loss",
               ylim=(low - 0.1 * (high - low), high + 0.6 * (high - low)))
        log_axis(ax, "x")
        ax.legend()

    details = seed_details(record)
    first = [d["curves"][k] for d in details for k in range(len(norms))]  # the same y range as the static figure
    low, high = min(min(c["loss"]) for c in first), max(c["loss"][0] for c in first)
    plot = curves({n: [list(zip(d["curves"][k]["lr"], d["curves"][k]["loss"])) for d in details] for k, n in enumerate(norms)},
                  x_label="learning rate", y_label="smoothed training loss", log_x=True,
                  y_range=(low - 0.1 * (high - low), high + 0.6 * (high - low)),
                  title="LR range test, every norm (line: mean over seeds; band: lowest to highest seed)")
    return Report(record, [table], [Figure("LR range test (line: mean over seeds; band: lowest to highest seed)", draw)],
                  verdicts(record), plots=[plot])


EXPERIMENT = Experiment(
    name="lr_range_test_resnet18",
    description="LR range test (exponential, smoothed) of a CIFAR ResNet-18 at batch 64 with BN, GN and no norm, "
                "SGD with Nesterov momentum 0.9.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
