r"""Weight normalization against its alternatives on one small CNN (notebook 02).

The same `SmallCNN` with no norm, weight norm (WN), WN with Salimans & Kingma's data-dependent
init, WN with mean-only batch norm, and batch norm, each trained with Adam and with SGD
(one-cycle). The post's question: does WN, with the right init, get close to BN?
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data import DeviceBatches
from ..models import SmallCNN
from ..weight_norm import data_dependent_init
from .common import cifar_subsets, train_run
from .claims import verdicts
from .report import Figure, Report, Table, bands, baseline_note, cell, interval_errors, seed_details
from .runner import Experiment, SeedResult, summary


@dataclass(frozen=True)
class Config:
    width: int
    epochs: int
    train_images: int
    test_images: int
    model: str = "SmallCNN"
    batch_size: int = 64
    variants: tuple[str, ...] = ("none", "wn", "wn+init", "wn+mobn", "bn")
    optimizers: dict = field(default_factory=lambda: {"adam": {"lr": 3e-3, "weight_decay": 0.0},
                                                      "sgd": {"lr": 0.05, "weight_decay": 5e-4}})
    schedule: str = "OneCycleLR, pct_start 0.25; SGD with Nesterov momentum 0.9"
    # Salimans & Kingma's init on one un-augmented batch of training images
    init_batch: int = 500


CONFIGS = {
    "smoke": Config(width=8, epochs=1, train_images=512, test_images=256),
    "cpu": Config(width=32, epochs=3, train_images=10000, test_images=10000),
    "gpu": Config(width=64, epochs=20, train_images=50000, test_images=10000),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    init_x, _ = next(iter(DeviceBatches(train, config.init_batch, train=False, device=device)))
    runs = []
    for opt_name, opt in config.optimizers.items():
        for variant in config.variants:
            norm = "wn" if variant == "wn+init" else variant
            prepare = (lambda m: data_dependent_init(m, init_x)) if variant == "wn+init" else None
            _, record = train_run(lambda: SmallCNN(norm=norm, width=config.width), train, test,
                                  batch_size=config.batch_size, seed=seed, device=device, epochs=config.epochs,
                                  lr=opt["lr"], labels={"optimizer": opt_name, "variant": variant}, prepare=prepare,
                                  optimizer=opt_name, weight_decay=opt["weight_decay"])
            runs.append(record)
    return SeedResult({"runs": runs}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for r in details["runs"]:
        key = f"{r['optimizer']}/{r['variant']}"
        out[f"test_acc/{key}"] = r["final_test_acc"]
        out[f"test_loss/{key}"] = r["final_test_loss"]
        out[f"epoch1_test_acc/{key}"] = r["epochs"][0].get("test_acc")
    return out


def report(record: dict) -> Report:
    arms = [(r["optimizer"], r["variant"]) for r in seed_details(record)[0]["runs"]]
    rows = [[o, v, cell(record, f"test_acc/{o}/{v}", 1, percent=True), cell(record, f"test_loss/{o}/{v}"),
             cell(record, f"epoch1_test_acc/{o}/{v}", 1, percent=True)] for o, v in arms]
    table = Table(["optimizer", "variant", "test accuracy", "test loss", "test accuracy after epoch 1"], rows,
                  note="after the last epoch unless stated, eval mode; mean ± half-width of the 95% interval over seeds.")

    def draw(fig):
        ax = fig.subplots()
        variants = list(dict.fromkeys(v for _, v in arms))
        for k, opt in enumerate(dict.fromkeys(o for o, _ in arms)):
            s = [summary(record, f"test_acc/{opt}/{v}") for v in variants]
            ax.bar([i + 0.4 * k for i in range(len(variants))], [x.mean or 0 for x in s], width=0.4,
                   yerr=interval_errors(s),
                   capsize=3, label=opt)
        ax.set_xticks([i + 0.2 for i in range(len(variants))], variants)
        ax.set(xlabel="variant", ylabel="final test accuracy")
        ax.legend()

    def per_epoch(fig):
        optimizers = list(dict.fromkeys(o for o, _ in arms))
        axes = fig.subplots(1, len(optimizers), sharey=True, squeeze=False)[0]
        for ax, opt in zip(axes, optimizers):
            for k, variant in enumerate(("wn", "wn+init")):
                curves = [[(e["epoch"], e.get("test_acc")) for e in _run(d, opt, variant)["epochs"]]
                          for d in seed_details(record)]
                bands(ax, curves, marker="o", color=f"C{k}", label=variant)
            ax.set(title=opt, xlabel="epoch")
            ax.set_xticks([e["epoch"] for e in _run(seed_details(record)[0], opt, "wn")["epochs"]])
            ax.legend(fontsize=8)
        axes[0].set_ylabel("test accuracy")

    return Report(record, [table], [
        Figure("Final test accuracy (error bars: 95% interval over seeds)", draw),
        Figure("WN with and without data-dependent init, test accuracy per epoch (line: mean over seeds; band: lowest "
               "to highest seed)", per_epoch, (8, 3.2))], verdicts(record),
        baseline_note(record, [("bn with Adam", "test_acc/adam/bn"), ("bn with SGD", "test_acc/sgd/bn")]))


def _run(details: dict, optimizer: str, variant: str) -> dict:
    return next(r for r in details["runs"] if (r["optimizer"], r["variant"]) == (optimizer, variant))


EXPERIMENT = Experiment(
    name="weight_norm_cifar",
    description="The same small CIFAR-10 CNN with no norm, weight norm, WN + data-dependent init, WN + mean-only BN "
                "and batch norm, trained with Adam and with SGD (Nesterov; one-cycle).",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
