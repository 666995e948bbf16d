r"""Switchable Normalization's moving averages against the batch average (notebook 05).

The keras-switchnorm example's toy CNN with SN, its BN statistics for evaluation kept as a
running average with the Keras momenta 0.98, 0.99 and 0.997 — or recomputed as the SN paper's
**batch average** over K training batches before each evaluation — and plain BN for reference.
The learned importance weights of mean and variance (IN / LN / BN) are kept per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import DeviceBatches
from ..models import build_model
from ..switch_norm import finalize_batch_average, importance_weights
from .common import cifar_subsets, train_run
from .claims import verdicts
from .report import Figure, Report, Table, bands, baseline_note, cell, seed_details
from .runner import Experiment, SeedResult


@dataclass(frozen=True)
class Config:
    width: float
    epochs: int
    train_images: int
    test_images: int
    batch_average_batches: int
    model: str = "switchnorm_cnn"
    batch_size: int = 128
    optimizer: str = "Adam, no weight decay, OneCycleLR (pct_start 0.25)"
    max_lr: float = 3e-3
    # (label, norm spec): "sn:M" is SN with the Keras momentum M (PyTorch momentum 1 - M)
    runs: tuple[tuple[str, str], ...] = (("sn 0.98", "sn:0.98"), ("sn 0.99", "sn:0.99"), ("sn 0.997", "sn:0.997"),
                                         ("sn batch average", "sn-ba"), ("bn", "bn"))


CONFIGS = {
    "smoke": Config(width=0.125, epochs=2, train_images=512, test_images=256, batch_average_batches=2),
    "cpu": Config(width=0.25, epochs=12, train_images=8000, test_images=10000, batch_average_batches=20),
    "gpu": Config(width=1.0, epochs=25, train_images=50000, test_images=10000, batch_average_batches=50),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    runs = []
    for label, norm in config.runs:
        before_eval = None
        if norm == "sn-ba":
            # Fresh pooled BN statistics of K training batches (un-augmented) before every evaluation
            def before_eval(m):
                finalize_batch_average(m, DeviceBatches(train, config.batch_size, train=False, device=device),
                                       config.batch_average_batches)
        model, record = train_run(lambda: build_model(config.model, norm, width=config.width), train, test,
                                  batch_size=config.batch_size, seed=seed, device=device, epochs=config.epochs,
                                  lr=config.max_lr, labels={"label": label, "norm": norm}, optimizer="adam",
                                  weight_decay=0.0, before_eval=before_eval)
        record["importance"] = importance_weights(model)
        runs.append(record)
    return SeedResult({"runs": runs}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for r in details["runs"]:
        out[f"test_acc/{r['label']}"] = r["final_test_acc"]
        accs = [e.get("test_acc") for e in r["epochs"] if e.get("test_acc") is not None]
        out[f"best_test_acc/{r['label']}"] = max(accs) if accs else None
    return out


def report(record: dict) -> Report:
    labels = [r["label"] for r in seed_details(record)[0]["runs"]]
    rows = [[label, cell(record, f"test_acc/{label}", 1, percent=True), cell(record, f"best_test_acc/{label}", 1, percent=True)]
            for label in labels]
    table = Table(["run", "final test accuracy", "best test accuracy over epochs"], rows,
                  note="eval mode: SN's BN statistics from its moving average, or from the batch average.")

    def draw(fig):
        ax = fig.subplots()
        for k, label in enumerate(labels):
            bands(ax, [[(e["epoch"], e.get("test_acc") and 100 * e["test_acc"]) for e in d["runs"][k]["epochs"]]
                       for d in seed_details(record)], marker="o", label=label)
        ax.set(xlabel="epoch", ylabel="test accuracy (%)")
        ax.legend(fontsize=9)

    def importance(fig):
        # The first SN run's learned weights (the same in every SN run: momentum only changes evaluation)
        runs = [next(r for r in d["runs"] if r["norm"].startswith("sn")) for d in seed_details(record)]
        axes = fig.subplots(1, 2, sharey=True)
        layers = list(range(1, len(runs[0]["importance"]) + 1))
        for ax, kind in zip(axes, ("mean", "var")):
            bottom = [0.0] * len(layers)
            for k, name in enumerate(("IN", "LN", "BN")):
                vals = [sum(r["importance"][i][kind][k] for r in runs) / len(runs) for i in range(len(layers))]
                ax.bar(layers, vals, bottom=bottom, label=name)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set(title=f"importance weights of the {kind}s", xlabel="layer")
        axes[0].set_ylabel("softmax weight (mean over seeds)")
        axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # not on the bars

    return Report(record, [table], [Figure("Test accuracy per epoch (line: mean over seeds; band: lowest to highest seed)", draw),
                                    Figure("SN's learned importance of IN / LN / BN per layer (mean over seeds)", importance, (9, 3.4))],
                  verdicts(record), baseline_note(record, [("bn", "test_acc/bn")]))


EXPERIMENT = Experiment(
    name="switch_norm_cifar",
    description="The keras-switchnorm toy CIFAR-10 CNN with Switchable Norm: running-average momentum "
                "(Keras-equivalent 0.98 / 0.99 / 0.997) against the batch average, and plain BN; importance weights "
                "per layer.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
