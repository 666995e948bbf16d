r"""One-cycle training of the fast ResNet with BN (notebook 07).

`OneCycleLR` over the whole run with SGD (Nesterov momentum) and label smoothing 0.2, as in
the fast CIFAR-10 training recipes: the accuracy reached per epoch and the learning-rate
schedule that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import build_model
from .common import cifar_subsets, train_run
from .report import Figure, Report, Table, bands, cell, seed_details
from .runner import Experiment, SeedResult


@dataclass(frozen=True)
class Config:
    width: float
    epochs: int
    batch_size: int
    train_images: int
    test_images: int
    model: str = "fast_resnet"
    norm: str = "bn"
    max_lr: float = 0.2
    label_smoothing: float = 0.2
    weight_decay: float = 5e-4
    pct_start: float = 0.25
    optimizer: str = "SGD, Nesterov momentum 0.9, OneCycleLR"


CONFIGS = {
    "smoke": Config(width=0.125, epochs=1, batch_size=64, train_images=512, test_images=256),
    "cpu": Config(width=0.5, epochs=4, batch_size=128, train_images=8000, test_images=10000),
    "gpu": Config(width=1.0, epochs=10, batch_size=512, train_images=50000, test_images=10000),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    _, record = train_run(lambda: build_model(config.model, config.norm, width=config.width), train, test,
                          batch_size=config.batch_size, seed=seed, device=device, epochs=config.epochs,
                          lr=config.max_lr, labels={"norm": config.norm}, keep_lr=True,
                          label_smoothing=config.label_smoothing, weight_decay=config.weight_decay,
                          pct_start=config.pct_start)
    return SeedResult(record, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {"final_test_acc": details["final_test_acc"]}
    for e in details["epochs"]:
        out[f"test_acc/epoch{e['epoch']}"] = e.get("test_acc")
        out[f"images_per_s/epoch{e['epoch']}"] = e.get("images_per_s")
    return out


def report(record: dict) -> Report:
    epochs = [e["epoch"] for e in seed_details(record)[0]["epochs"]]
    rows = [[e, cell(record, f"test_acc/epoch{e}", 1, percent=True), cell(record, f"images_per_s/epoch{e}", 0)] for e in epochs]
    table = Table(["epoch", "test accuracy", "training images/s"], rows,
                  note="test accuracy after each epoch (eval mode); images/s: training throughput of that epoch on "
                       "the run's device (a shared machine: not a benchmark).")

    def draw(fig):
        acc, lr = fig.subplots(1, 2)
        details = seed_details(record)
        bands(acc, [[(e["epoch"], e.get("test_acc")) for e in d["epochs"]] for d in details], marker="o")
        acc.set(xlabel="epoch", ylabel="test accuracy")
        acc.set_xticks([e["epoch"] for e in details[0]["epochs"]])
        lr.plot(details[0]["lr"])
        lr.set(xlabel="step (subsampled)", ylabel="learning rate")

    return Report(record, [table], [Figure("Test accuracy per epoch (line: mean over seeds; band: lowest to highest "
                                           "seed) and the one-cycle schedule", draw,
                                           (8, 3.2))])


EXPERIMENT = Experiment(
    name="one_cycle_fast_resnet",
    description="One-cycle training (OneCycleLR, SGD Nesterov, label smoothing 0.2) of the fast ResNet with BN on "
                "CIFAR-10.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
