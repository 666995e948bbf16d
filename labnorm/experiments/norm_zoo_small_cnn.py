r"""The normalization zoo in one small CNN at batch 2 and 128 (notebook 09).

A first look at every normalization of labnorm side by side: the same `SmallCNN` (three
conv → norm → activation → max-pool stages) is trained with each `norm=` name at batch 2 and
at batch 128, with one-cycle SGD (Nesterov momentum) and the learning rate scaled linearly with
the batch (Goyal et al. 2017: $\eta = 0.1 \cdot B / 64$). Every arm of a seed starts from the
same seed and sees the same images in the same order; both batch sizes see the same number of
images (so batch 2 takes 64 times as many steps).

The questions are the small-batch ones the papers ask: does a norm whose statistics do not
depend on the batch (GN, FRN, EvoNorm-S0) or one that corrects BN's batch statistics (Batch
Renorm) beat BN at batch 2? Ghost BN with virtual batches of 32 is plain BN at batch 2 (one
virtual batch): its row there is a check that two implementations of BN train alike. Batch
Renorm runs with the paper's final limits ($r_{\max}=3$, $d_{\max}=5$) from the first step, without
the paper's warm-up. Seconds per epoch are wall time on a shared machine, not a benchmark
(`benchmarks/bench_zoo.py` measures speed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import SmallCNN
from .common import cifar_subsets, train_run
from .claims import verdicts
from .plots import pooling_cubes
from .report import Figure, Report, Table, bands, baseline_note, cell, interval_errors, seed_details
from .runner import Experiment, SeedResult, summary

# Every norm of labnorm's zoo, with BN, GN and WS+GN; GN, WS+GN and EvoNorm-S0 use the same 8 groups,
# Ghost BN virtual batches of 32 samples.
NORMS = ("none", "bn", "gn:8", "ln", "in", "ws+gn:8", "rms", "ln2d", "frn", "evob0", "evos0:8", "brn", "gbn:32",
         "dyt", "grn")


@dataclass(frozen=True)
class Config:
    width: int
    epochs: int
    train_images: int
    test_images: int
    model: str = "SmallCNN"
    batch_sizes: tuple[int, ...] = (2, 128)
    norms: tuple[str, ...] = NORMS
    # Linear scaling rule: lr = base_lr_at_64 * batch / 64 (0.003125 at batch 2, 0.2 at batch 128)
    lr_rule: str = "lr = base_lr_at_64 * batch / 64 (linear scaling, Goyal et al. 2017)"
    base_lr_at_64: float = 0.1
    optimizer: str = "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)"
    augmentation: str = "random crop (pad 4) + horizontal flip"
    baseline: str = "bn"
    # The norms judged against BN at the smallest batch
    challengers: tuple[str, ...] = ("gn:8", "frn", "evos0:8", "brn")


CONFIGS = {
    # Smoke: batch 16 at the top, so that 96 images still give the one-cycle warm-up more than one step
    "smoke": Config(width=8, epochs=1, train_images=96, test_images=128, batch_sizes=(2, 16)),
    "cpu": Config(width=16, epochs=2, train_images=8000, test_images=10000),
    "gpu": Config(width=64, epochs=15, train_images=50000, test_images=10000),
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
        key = f"{r['norm']}/b{r['batch_size']}"
        out[f"test_acc/{key}"] = r["final_test_acc"]
        out[f"test_loss/{key}"] = r["final_test_loss"]
        out[f"seconds_per_epoch/{key}"] = r["seconds"] / len(r["epochs"])
        # 1 if the loss stopped being finite, else 0: its mean over seeds is the divergence rate
        out[f"diverged/{key}"] = float(r["diverged_at_step"] is not None)
    return out


def report(record: dict) -> Report:
    config = record["config"]
    norms, batches = list(config["norms"]), sorted(config["batch_sizes"])
    small = batches[0]
    base = config["baseline"]
    n_seeds = len(record["seeds"])

    def diverged(norm: str, bs: int) -> str:
        count = sum(1 for d in seed_details(record) for r in d["runs"]
                    if (r["norm"], r["batch_size"]) == (norm, bs) and r["diverged_at_step"] is not None)
        return f"{count}/{n_seeds}"

    rows = [[norm] + [x for bs in batches for x in (cell(record, f"test_acc/{norm}/b{bs}", 1, percent=True),
                                                    diverged(norm, bs))]
            + [cell(record, f"seconds_per_epoch/{norm}/b{bs}", 1) for bs in batches] for norm in norms]
    header = (["norm"] + [x for bs in batches for x in (f"test acc. b{bs}", f"diverged b{bs}")]
              + [f"s/epoch b{bs}" for bs in batches])
    lrs = ", ".join(f"{config['base_lr_at_64'] * bs / 64:g} at batch {bs}" for bs in batches)
    table = Table(header, rows, title=f"Final test accuracy of {config['model']} (width {config['width']}) per norm",
                  note="test acc. bB: after the last epoch at batch B, on the test images, eval mode; mean ± half-width "
                       "of the 95% interval over seeds (n = seeds with a finite result). diverged bB: seeds whose "
                       "training loss stopped being finite. s/epoch bB: wall time of one epoch (training and test), "
                       f"on a shared machine, not a benchmark. Learning rate: {lrs}.")
    notes = [f"Ghost BN (gbn:V) with V >= {small} is one virtual batch at batch {small}, i.e. plain BN: its batch-{small} "
             "row is a check that two implementations of BN train alike, not another technique."]

    def accuracy(fig):
        ax = fig.subplots()
        y = list(range(len(norms)))
        for k, (bs, marker) in enumerate(zip(batches, "os^v")):
            s = [summary(record, f"test_acc/{n}/b{bs}") for n in norms]
            ax.errorbar([100 * x.mean if x.mean is not None else float("nan") for x in s],
                        [v + 0.15 * (k - 0.5) for v in y], xerr=[[100 * e for e in side] for side in interval_errors(s)],
                        fmt=marker, capsize=3, label=f"batch {bs}")
        for k, bs in enumerate(batches):
            level = summary(record, f"test_acc/{base}/b{bs}").mean
            if level is not None:
                ax.axvline(100 * level, color=f"C{k}", lw=0.8, ls=":")
        ax.set_yticks(y, norms)
        ax.invert_yaxis()
        ax.set(xlabel=f"final test accuracy, % (dotted: {base} at each batch)", ylabel="norm")
        ax.legend(fontsize=9)

    def coarse(points, k=4):
        # the saved curve averaged over k consecutive points: batch-2 losses are noisy
        return [(points[min(i + k, len(points)) - 1][0], sum(v for _, v in points[i:i + k]) / len(points[i:i + k]))
                for i in range(0, len(points), k)]

    def losses(fig):
        ax = fig.subplots()
        for norm in [base, *config["challengers"]]:
            curves = [coarse([(s * small, v) for s, v in next(r for r in d["runs"]
                                                              if (r["norm"], r["batch_size"]) == (norm, small))["loss_curve"]])
                      for d in seed_details(record)]
            bands(ax, curves, label=norm)
        ax.set(xlabel="training images seen", ylabel="training loss")
        ax.legend(fontsize=9)

    figures = [Figure("Final test accuracy per norm (error bars: 95% interval over seeds)", accuracy, (6.4, 5.0)),
               Figure(f"Training loss at batch {small}, smoothed (line: mean over seeds; band: lowest to highest seed)",
                      losses)]
    # What each layer pools, to turn while reading the table (notebook 09's cubes)
    return Report(record, [table], figures, verdicts(record), baseline_note(record, [("bn at batch 128", "test_acc/bn/b128")]) + notes,
                  [pooling_cubes()])


EXPERIMENT = Experiment(
    name="norm_zoo_small_cnn",
    description="Every normalization of labnorm in one SmallCNN on CIFAR-10 at batch 2 and 128: one-cycle SGD "
                "(Nesterov), learning rate scaled linearly with the batch size; test accuracy and seconds per epoch.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
