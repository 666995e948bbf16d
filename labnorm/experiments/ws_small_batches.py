r"""The WS-on-ResNet post redone: range tests and one-cycle Adam at batch 2, 64 and 256 (notebook 04).

The post trained a ResNet-18 with BN and one with WS+BN (every conv standardized) using fastai's
`lr_find` and `fit_one_cycle`: LR range tests (Adam) at batch 64 and 256, then one-cycle Adam
training at batch 64, 2 and 256, and GN / WS+GN at batch 2. Its claims: at batch 2 BN alone
blows up and WS keeps it training; at batch 64 the two end level; WS costs time per epoch.
Where a run blows up is the LR range test's divergence rule applied to its step losses
(`common.blow_up_step`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import DeviceBatches, load_cifar10
from ..models import build_model
from ..train.fit import make_optimizer
from ..train.lr_finder import DivergenceRule
from .common import cifar_subsets, range_test, train_run
from .claims import verdicts
from .report import Figure, Report, Table, bands, baseline_note, cell, log_axis, seed_details
from .runner import Experiment, SeedResult

_POST_RUNS = (("bn", 64), ("ws+bn", 64), ("bn", 256), ("ws+bn", 256), ("bn", 2), ("ws+bn", 2), ("gn", 2), ("ws+gn", 2))


@dataclass(frozen=True)
class Config:
    width: float
    epochs: int
    train_images: int
    test_images: int
    range_num_iter: int
    # batch 2 as the post's own batch-2 lr_find ("BN alone diverges after ~40 iterations"), 64 and 256
    range_batch_sizes: tuple[int, ...] = (2, 64, 256)
    runs: tuple[tuple[str, int], ...] = _POST_RUNS
    model: str = "resnet18"
    # fastai's defaults, as the post used them: Adam, lr_find from 1e-7 to 10 over 100 steps,
    # fit_one_cycle's max lr 3e-3, pct_start 0.25. (fastai's decoupled weight decay 0.01 shrinks
    # the weights by lr * 0.01 <= 3e-5 per step; left out rather than replaced by Adam's L2.)
    optimizer: str = "Adam, no weight decay, OneCycleLR pct_start 0.25"
    max_lr: float = 3e-3
    range_start_lr: float = 1e-7
    range_end_lr: float = 10.0
    range_step_mode: str = "exp"
    range_smooth_f: float = 0.05
    range_diverge_th: float = 5.0
    range_norms: tuple[str, ...] = ("bn", "ws+bn")
    blow_up_rule: str = "smoothed loss (factor 0.05) above 4x its best so far from step 10 on, or not finite"


CONFIGS = {
    # Smoke: small batches only, so that an epoch is a handful of steps
    "smoke": Config(width=0.125, epochs=1, train_images=256, test_images=256, range_num_iter=15,
                    range_batch_sizes=(16, 32),
                    runs=(("bn", 16), ("ws+bn", 16), ("bn", 2), ("ws+bn", 2), ("gn", 2), ("ws+gn", 2))),
    "cpu": Config(width=0.25, epochs=2, train_images=5000, test_images=10000, range_num_iter=100),
    "gpu": Config(width=1.0, epochs=5, train_images=50000, test_images=10000, range_num_iter=100),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    full_train = load_cifar10("train")
    curves = []
    for bs in config.range_batch_sizes:
        for norm in config.range_norms:
            torch.manual_seed(seed)
            model = build_model(config.model, norm, width=config.width).to(device)
            opt = make_optimizer(model.parameters(), "adam", config.range_start_lr, 0.9, 0.0)
            batches = DeviceBatches(full_train, bs, train=True, device=device, seed=seed)
            curves.append({"norm": norm, "batch_size": bs, **range_test(
                model, opt, batches, start_lr=config.range_start_lr, end_lr=config.range_end_lr,
                num_iter=config.range_num_iter, step_mode=config.range_step_mode, smooth_f=config.range_smooth_f,
                diverge_th=config.range_diverge_th, device=device)})
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    runs = []
    for norm, bs in config.runs:
        _, record = train_run(lambda: build_model(config.model, norm, width=config.width), train, test,
                              batch_size=bs, seed=seed, device=device, epochs=config.epochs, lr=config.max_lr,
                              labels={"norm": norm, "batch_size": bs}, keep_first_steps=200, optimizer="adam",
                              weight_decay=0.0)
        runs.append(record)
    return SeedResult({"range_tests": curves, "runs": runs}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for t in details["range_tests"]:
        # Where the range test stopped: its loss passed the divergence threshold (or it ran to the end)
        out[f"range_stopped_at/{t['norm']}/b{t['batch_size']}"] = float(t["stopped_at"])
    for r in details["runs"]:
        key = f"{r['norm']}/b{r['batch_size']}"
        out[f"test_acc/{key}"] = r["final_test_acc"]
        out[f"test_loss/{key}"] = r["final_test_loss"]
        out[f"seconds_per_epoch/{key}"] = r["seconds"] / len(r["epochs"])
        # 1 if the run blew up (divergence rule), else 0: its mean over seeds is the blow-up rate
        out[f"blew_up/{key}"] = float(r["blow_up_step"] is not None)
    return out


def report(record: dict) -> Report:
    arms = [(r["norm"], r["batch_size"]) for r in seed_details(record)[0]["runs"]]
    rows = []
    for n, b in arms:
        steps = [next(r for r in d["runs"] if (r["norm"], r["batch_size"]) == (n, b))["blow_up_step"]
                 for d in seed_details(record)]
        rows.append([n, b, cell(record, f"test_acc/{n}/b{b}", 1, percent=True), cell(record, f"test_loss/{n}/b{b}"),
                     ", ".join("none" if s is None else str(s) for s in steps),
                     cell(record, f"seconds_per_epoch/{n}/b{b}", 1)])
    table = Table(["norm", "batch", "test accuracy", "test loss", "blow-up step per seed", "s/epoch"], rows,
                  note="blow-up step: first step where the smoothed training loss exceeds 4x its best so far "
                       "(from step 10 on) or is not finite; s/epoch: wall time on a shared machine, not a benchmark.")
    batches = sorted({b for _, b in arms})
    small = batches[0]

    def draw(fig):
        ax = fig.subplots()
        details = seed_details(record)
        for k, c in enumerate(details[0]["range_tests"]):
            bands(ax, [list(zip(d["range_tests"][k]["lr"], d["range_tests"][k]["loss"])) for d in details], cut=False,
                  color=f"C{k}", label=f"{c['norm']}, batch {c['batch_size']}")
        # The curves end by exploding: show the part where they differ, not the explosion
        tests = [t for d in details for t in d["range_tests"]]
        low, start = min(min(t["loss"]) for t in tests), max(t["loss"][0] for t in tests)
        ax.set(xlabel="learning rate (log scale)", ylabel="smoothed loss (LR range test)",
               ylim=(low - 0.1 * (start - low), start + 1.5 * (start - low)))
        log_axis(ax, "x")
        ax.legend(fontsize=8)

    def first_steps(fig):
        ax = fig.subplots()
        for k, (n, b) in enumerate(a for a in arms if a[1] == small):
            curves = []
            for d in seed_details(record):
                losses = next(r for r in d["runs"] if (r["norm"], r["batch_size"]) == (n, b))["first_steps_loss"]
                rule = DivergenceRule(smooth_f=0.05, threshold=4.0, warmup=10)  # blow_up_step's rule
                curves.append([(i + 1, rule.update(v)) for i, v in enumerate(losses)])
            bands(ax, curves, color=f"C{k}", lw=1, label=n)
        ax.set(xlabel="training step", ylabel="smoothed training loss")
        log_axis(ax, "y")
        ax.legend(fontsize=8)

    return Report(record, [table], [Figure("LR range tests (Adam) (line: mean over seeds; band: lowest to highest seed)", draw),
                                    Figure(f"Batch {small}: the first steps of training, loss smoothed as the blow-up rule smooths it "
                                           "(line: mean over seeds; band: lowest to highest seed)",
                                           first_steps)], verdicts(record),
                  baseline_note(record, [(f"bn at batch {b}", f"test_acc/bn/b{b}") for b in sorted(  # the claims' is 64
                      int(k.rsplit("/b", 1)[1]) for k in record["summary"] if k.startswith("test_acc/bn/b"))]))


EXPERIMENT = Experiment(
    name="ws_small_batches",
    description="The WS-on-ResNet post: LR range tests (Adam) of ResNet-18 with BN and with WS+BN at batch 64 and "
                "256, then one-cycle Adam training of BN / WS+BN at batch 64, 2 and 256 and of GN / WS+GN at batch 2.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
