r"""Batch Norm vs Group Norm as the batch shrinks (notebook 01).

The GN paper's claim (Wu & He, 2018): BN's error grows as the batch per device shrinks, GN's
does not. Here a `SmallCNN` is trained with BN and with GN at batch 2, 8 and 64, with one-cycle
SGD (Nesterov momentum) and the learning rate scaled linearly with the batch
(Goyal et al. 2017: $\eta = 0.1 \cdot B / 64$). Every arm of a seed sees the same images in the
same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import SmallCNN
from .common import cifar_subsets, train_run
from .claims import verdicts
from .report import Figure, Report, Table, bands, baseline_note, cell, interval_errors, log_axis, seed_details
from .runner import Experiment, SeedResult, summary


@dataclass(frozen=True)
class Config:
    width: int
    epochs: int
    train_images: int
    test_images: int
    model: str = "SmallCNN"
    batch_sizes: tuple[int, ...] = (2, 8, 64)
    norms: tuple[str, ...] = ("bn", "gn:8")
    # Linear scaling rule: lr = base_lr_at_64 * batch / 64
    base_lr_at_64: float = 0.1
    optimizer: str = "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)"
    augmentation: str = "random crop (pad 4) + horizontal flip"


CONFIGS = {
    # Smoke: batch 32 at the top, so that 192 images still give the one-cycle warm-up more than one step
    "smoke": Config(width=8, epochs=1, train_images=192, test_images=128, batch_sizes=(2, 8, 32)),
    "cpu": Config(width=32, epochs=4, train_images=10000, test_images=10000),
    "gpu": Config(width=64, epochs=20, train_images=50000, test_images=10000),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    runs = []
    for norm in config.norms:
        for bs in config.batch_sizes:
            lr = config.base_lr_at_64 * bs / 64
            _, record = train_run(lambda: SmallCNN(norm=norm, width=config.width), train, test, batch_size=bs,
                                  seed=seed, device=device, epochs=config.epochs, lr=lr,
                                  labels={"norm": norm, "batch_size": bs, "lr": lr})
            runs.append(record)
    return SeedResult({"runs": runs}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for r in details["runs"]:
        out[f"test_acc/{r['norm']}/b{r['batch_size']}"] = r["final_test_acc"]
        out[f"test_loss/{r['norm']}/b{r['batch_size']}"] = r["final_test_loss"]
    return out


def report(record: dict) -> Report:
    first = seed_details(record)[0]["runs"]
    arms = [(r["norm"], r["batch_size"], r["lr"]) for r in first]
    rows = [[norm, bs, f"{lr:.4g}", cell(record, f"test_acc/{norm}/b{bs}", 1, percent=True), cell(record, f"test_loss/{norm}/b{bs}")]
            for norm, bs, lr in arms]
    table = Table(["norm", "batch", "lr", "test accuracy", "test loss"], rows,
                  note="test accuracy / loss: after the last epoch, on the test images, eval mode; "
                       "mean ± half-width of the 95% interval over seeds (n = seeds with a finite result).")
    norms = list(dict.fromkeys(a[0] for a in arms))
    batches = sorted({a[1] for a in arms})
    bn = norms[0]

    def accuracy(fig):
        ax = fig.subplots()
        for norm, marker in zip(norms, "os^v"):
            s = [summary(record, f"test_acc/{norm}/b{b}") for b in batches]
            ax.errorbar(batches, [x.mean for x in s], yerr=interval_errors(s), marker=marker, capsize=3, label=norm)
        ax.set(xlabel="batch size (log scale)", ylabel="final test accuracy")
        log_axis(ax, "x", batches)
        ax.legend()

    def losses(fig):
        ax = fig.subplots()
        for norm, bs, _ in arms:
            curves = [[(s * bs, v) for s, v in next(r for r in d["runs"] if r["norm"] == norm and r["batch_size"] == bs)
                       ["loss_curve"]] for d in seed_details(record)]
            bands(ax, curves, ls="-" if norm == bn else "--", label=f"{norm} batch {bs}")
        ax.set(xlabel="training images seen", ylabel="training loss")
        ax.legend(fontsize=7, ncol=2)

    return Report(record, [table], [Figure("Final test accuracy vs batch size (error bars: 95% interval over seeds)", accuracy),
                                    Figure("Training loss (line: mean over seeds; band: lowest to highest seed)", losses)],
                  verdicts(record), baseline_note(record, [(f"bn at batch {b}", f"test_acc/bn/b{b}")
                                                   for b in [max(record["config"]["batch_sizes"])]]))


EXPERIMENT = Experiment(
    name="bn_gn_batch_size",
    description="Batch Norm vs Group Norm on CIFAR-10 as the batch shrinks (2, 8, 64): SmallCNN, one-cycle SGD "
                "(Nesterov), learning rate scaled linearly with the batch size.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
