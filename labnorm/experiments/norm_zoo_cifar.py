r"""Which normalization, at which batch size? Every norm × batch 2, 8, 32, 128 in one harness (notebook 10).

One network — the fast ResNet of `labnorm.models` (prep conv, three conv stages with pooling, two
residual stages), thinned by `width` at cpu scale — is trained with every `norm=` name of labnorm
and with none, at batch 2, 8, 32 and 128, over seeds, all by one recipe:

- **Learning rate**, one rule for every norm: the one-cycle peak is scaled linearly with the batch
  (Goyal et al. 2017), $\eta_B = \eta_{128} \cdot B / 128$ with $\eta_{128} = 0.2$ — the same
  step per image at every batch; SGD with Nesterov momentum 0.9, weight decay $5 \cdot 10^{-4}$,
  `OneCycleLR` over the run. No norm is tuned.
- **Budget**, one rule for every batch: each run sees the same `epochs × train_images` images, but
  takes at most `max_steps` steps — past it, fewer epochs first, then a smaller (class-balanced)
  subset of the training images. At cpu scale batch 2 therefore sees 6,000 images in 3,000 steps and
  the other batches 20,000 (`budget()`; the report prints it beside each table).
- **Test accuracy** on `test_images` images (all 10,000 at cpu and gpu scale) in eval mode after the last
  step; a run whose loss stopped being finite scores chance, 0.10, and counts under "blew up".
- **Step time ÷ BN**: after each run, fresh nets with the norm and with BN train `timing_steps` steps
  of the run's batch through `labnorm.train.fit`, alternating, `timing_rounds` times after a warm-up
  round; the ratio of the fastest rounds: a same-moment ratio on a shared machine, not a benchmark
  (`benchmarks/bench_zoo.py` is). The dry run leaves it out.

Every run of a seed starts from the same seed and sees the same images in the same order, so two norms are
compared through their paired difference over seeds. The table is made of units (`labnorm.experiments.units`),
one per `norm/bB`, saved as each finishes, batch 128 and 2 first.
**Cost at cpu scale**: the whole table, 216 runs (18 norms × 4 batch sizes × 3 seeds, before `grn` joined), took
88 min of runs (one thread each on 2 shared cores); the dry run had projected about 4.2 hours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..data import DeviceBatches
from ..models import build_model
from ..train.dry import dry
from ..train.fit import fit
from .common import cifar_subsets, never_learned, train_run
from .claims import verdicts
from .plots import heatmap, scatter
from .report import Figure, Report, Table, bands, baseline_note, cell, interval_errors, ranking, seed_details
from .runner import Experiment, SeedResult, summary, values
from .units import missing_units, partial_summary

# Every norm of labnorm; {G}: the config's group count; Ghost BN's virtual batches of 16 make it BN at batch <= 16
ZOO = ("bn", "brn", "gbn:16", "ws+bn", "bcn:{G}", "sn", "evob0", "gn:{G}", "ws+gn:{G}", "ln", "ln2d", "in", "rms",
       "frn", "evos0:{G}", "grn", "wn", "dyt", "none")
FAMILIES = {"batch statistics": ("bn", "brn", "gbn", "ws+bn", "bcn", "sn", "evob0"),  # for the figure
            "per-sample statistics": ("gn", "ws+gn", "ln", "ln2d", "in", "rms", "frn", "evos0", "grn"),
            "no statistics": ("wn", "dyt", "none")}


def zoo(groups: int) -> tuple[str, ...]:
    return tuple(n.format(G=groups) for n in ZOO)


@dataclass(frozen=True)
class Config:
    width: float
    train_images: int
    epochs: int
    max_steps: int
    test_images: int
    norms: tuple[str, ...]
    batch_sizes: tuple[int, ...] = (2, 8, 32, 128)
    model: str = "fast_resnet"
    lr_rule: str = "lr = base_lr * batch / base_batch (linear scaling, Goyal et al. 2017), the one-cycle peak"
    base_lr: float = 0.2
    base_batch: int = 128
    budget_rule: str = ("epochs x train_images images at every batch, at most max_steps steps: fewer epochs first, "
                        "then a smaller class-balanced subset of the training images")
    optimizer: str = "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)"
    augmentation: str = "random crop (pad 4) + horizontal flip"
    baseline: str = "bn"
    diverged_acc: float = 0.1
    timing_steps: int = 5
    timing_rounds: int = 2
    challengers: tuple[str, ...] = ()  # judged against the baseline at the smallest batch


CONFIGS = {
    # Smoke: three norms at two batch sizes (16 at the top, so one-cycle's warm-up has more than one step)
    "smoke": Config(width=0.125, train_images=80, epochs=1, max_steps=10, test_images=100, batch_sizes=(2, 16),
                    norms=("bn", "gn:4", "frn"), challengers=("gn:4", "frn"), timing_rounds=1),
    "cpu": Config(width=0.125, train_images=20000, epochs=1, max_steps=3000, test_images=10000, norms=zoo(4),
                  challengers=("gn:4", "ws+gn:4", "frn", "evos0:4", "brn")),
    "gpu": Config(width=1.0, train_images=50000, epochs=10, max_steps=10000, test_images=10000, norms=zoo(32),
                  challengers=("gn:32", "ws+gn:32", "frn", "evos0:32", "brn")),
}


def budget(config: Config, batch: int) -> tuple[int, int]:
    """(epochs, training images) of a run at `batch` (see the module doc)."""
    epochs, images, cap = config.epochs, config.train_images, config.max_steps
    per_epoch = images // batch
    if epochs * per_epoch <= cap:
        return epochs, images
    return (cap // per_epoch, images) if per_epoch <= cap else (1, cap * batch)


def lr_at(config: Config, batch: int) -> float:
    return config.base_lr * batch / config.base_batch


_SPLITS: dict = {}


def _subsets(images: int, test_images: int, seed: int):
    """`cifar_subsets`, kept for the next unit with the same sizes (within one dry run, if in one)."""
    key = (images, test_images, seed)
    if _SPLITS.get("key") != key or _SPLITS.get("dry") is not dry():
        _SPLITS.update(key=key, dry=dry(), splits=cifar_subsets(images, test_images, seed))
    return _SPLITS["splits"]


def units(config: Config) -> list[str]:
    big, small = max(config.batch_sizes), min(config.batch_sizes)
    order = [big, small] + sorted(set(config.batch_sizes) - {big, small}, reverse=True)
    return [f"{norm}/b{bs}" for bs in order for norm in config.norms]


def step_ratio(config: Config, norm: str, bs: int, train, seed: int, device: torch.device) -> tuple[float, float]:
    """(step time of `norm` ÷ step time of the baseline, seconds per step of `norm`) at batch `bs`."""
    k = config.timing_steps * bs
    batches = DeviceBatches(replace(train, images=train.images[:k], labels=train.labels[:k]), bs, train=True,
                            device=device, seed=seed)
    torch.manual_seed(seed)
    models = {n: build_model(config.model, n, width=config.width) for n in (norm, config.baseline)}
    best = {n: float("inf") for n in models}
    for r in range(config.timing_rounds + 1):  # round 0 warms up
        for n, model in models.items():
            hist = fit(model, batches, None, epochs=1, lr=lr_at(config, bs), device=device, progress=False)
            if r:
                best[n] = min(best[n], hist["epochs"][0]["seconds"] / len(hist["step_loss"]))
    return best[norm] / best[config.baseline], best[norm]


def run_unit(config: Config, seed: int, unit: str, device: torch.device) -> SeedResult:
    norm, bs = unit.rsplit("/b", 1)[0], int(unit.rsplit("/b", 1)[1])
    epochs, images = budget(config, bs)
    train, test = _subsets(images, config.test_images, seed)
    lr = lr_at(config, bs)
    _, r = train_run(lambda: build_model(config.model, norm, width=config.width), train, test, batch_size=bs,
                     seed=seed, device=device, epochs=epochs, lr=lr, labels={"norm": norm, "batch_size": bs, "lr": lr})
    r["loss_curve"] = r["loss_curve"][:: max(1, len(r["loss_curve"]) // 30)]  # the record holds hundreds of runs
    r["test_acc"] = r["final_test_acc"] if r["final_test_acc"] is not None else config.diverged_acc
    r["train_step_s"] = sum(e["seconds"] for e in r["epochs"]) / max(r["steps"], 1)
    r["step_ratio"], r["timed_step_s"] = (1.0, None) if norm == config.baseline or dry() else \
        step_ratio(config, norm, bs, train, seed, device)
    return SeedResult(r, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    return {f"{k}/{unit}": v for unit, r in details["units"].items() for k, v in (
        ("test_acc", r["test_acc"]), ("blew_up", float(r["blow_up_step"] is not None or r["diverged_at_step"] is not None)),
        ("step_ratio", r["step_ratio"]), ("train_step_s", r["train_step_s"]))}


def report(record: dict) -> Report:
    config = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()})
    norms, batches, base = list(config.norms), sorted(config.batch_sizes), config.baseline
    details = seed_details(record)
    tables = []
    started = [bs for bs in batches if any(summary(record, f"test_acc/{n}/b{bs}").n for n in norms)]
    for bs in started:  # a batch size no run has reached is named by the partial-record note, without a table
        rows = ranking(record, {n: f"test_acc/{n}/b{bs}" for n in norms}, base)
        for row in rows:
            runs = [d["units"][f"{row[1]}/b{bs}"] for d in details if f"{row[1]}/b{bs}" in d["units"]]
            blown = [r["blow_up_step"] or r["diverged_at_step"] for r in runs
                     if r["blow_up_step"] is not None or r["diverged_at_step"] is not None]
            row += [f"{len(blown)}/{len(runs)}" + (f" (step {min(blown)})" if blown else ""),
                    cell(record, f"step_ratio/{row[1]}/b{bs}", 2)] if runs else ["", ""]
        epochs, images = budget(config, bs)
        tables.append(Table(["#", "norm", "test acc.", f"vs {base} (points)", "≈ best", "blew up", f"step time ÷ {base}"],
                            rows, title=f"Batch {bs}: {epochs} epoch(s) of {images:,} training images = "
                                        f"{epochs * (images // bs):,} steps, peak lr {lr_at(config, bs):g}; {base}: "
                                        f"{cell(record, f'test_acc/{base}/b{bs}', 1, percent=True)}"))
    notes = [f"{config.model} at width {config.width:g}; learning rate: {config.lr_rule}, {config.base_lr:g} at batch "
             f"{config.base_batch}; budget: {config.budget_rule} ({config.epochs} x {config.train_images:,} images, "
             f"at most {config.max_steps:,} steps); test accuracy on {config.test_images:,} test images, eval mode.",
             f"test acc.: mean ± half-width of the 95% interval over seeds (a run whose loss stopped being finite "
             f"scores {config.diverged_acc:g}, chance). vs {base}: the paired difference over the same seeds, ▲/▼ when "
             "its 95% interval lies wholly above/below 0, unmarked when not significant. ≈ best: not significantly "
             "below the top row (paired). blew up: seeds whose smoothed loss passed 4x its best or stopped being "
             f"finite (first such step). step time ÷ {base}: interleaved timing in the same run, not a benchmark."]
    notes += [f"Ghost BN ({n}) is plain BN at a batch no larger than its virtual batch: its rows there measure the "
              "noise between two implementations of BN." for n in norms if n.startswith("gbn")]
    steps = sorted(e * (i // bs) for bs in batches for e, i in [budget(config, bs)])
    notes += ["Batch Renorm (brn) runs with the paper's final limits r_max 3, d_max 5 from the first step (no BN "
              "warm-up: the paper's is 5,000 steps) and moving averages at momentum 0.01, so their starting values "
              f"(mean 0, variance 1) still weigh {0.99 ** steps[0]:.0%} after the {steps[0]:,} steps of the shortest run, "
              f"{0.99 ** steps[-1]:.0%} after the longest's {steps[-1]:,}." for n in norms if n == "brn"]
    flat = [f"{n} at batch {bs}" for bs in started for n in norms
            if never_learned([d["units"][f"{n}/b{bs}"] for d in details if f"{n}/b{bs}" in d["units"]])]
    notes += [f"Never started learning: {', '.join(flat)}. Every seed's training loss stayed within 0.01 of ln 10 = "
              "2.303, the loss of a uniform guess over the 10 classes (notebook 10 shows why)."] if flat else []
    notes += baseline_note(record, [(f"{base} at batch {bs}", f"test_acc/{base}/b{bs}") for bs in started[-1:]])
    if missing_units(record):
        notes.append("PARTIAL RECORD (the run is saved unit by unit and continues where it stopped): "
                     + partial_summary(record, lambda u: (f"batch {u.rsplit('/b', 1)[1]}", u.rsplit("/b", 1)[0])))

    def by_batch(fig):
        families = {f: kinds for f, kinds in FAMILIES.items() if any(n.split(":")[0] in kinds for n in norms)}
        axes = fig.subplots(1, len(families), sharey=True, squeeze=False)[0]
        for ax, (family, kinds) in zip(axes, families.items()):
            for k, n in enumerate(n for n in norms if n.split(":")[0] in kinds):
                xs = [bs for bs in batches if summary(record, f"test_acc/{n}/b{bs}").n]
                per_seed = [values(record, f"test_acc/{n}/b{bs}") for bs in xs]
                bands(ax, [[(bs, vals[i]) for bs, vals in zip(xs, per_seed)] for i in range(len(details))],
                      label=n, marker="o", ms=3, color=f"C{k}")
            if base not in kinds:
                ax.plot(batches, [summary(record, f"test_acc/{base}/b{bs}").mean or float("nan") for bs in batches],
                        "k:", label=base)
            ax.set_xscale("log", base=2)
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.set(title=family, xlabel="batch size")
            ax.legend(fontsize=7)
        axes[0].set_ylabel("final test accuracy")

    def cost(fig):
        axes = fig.subplots(1, len(started), sharey=True, squeeze=False)[0]
        for ax, bs in zip(axes, started):
            shown = [n for n in norms if summary(record, f"test_acc/{n}/b{bs}").n]
            xs = [summary(record, f"step_ratio/{n}/b{bs}") for n in shown]
            ys = [summary(record, f"test_acc/{n}/b{bs}") for n in shown]
            ax.errorbar([x.mean for x in xs], [y.mean for y in ys], xerr=interval_errors(xs),
                        yerr=interval_errors(ys), fmt="o", ms=3, capsize=2, lw=0.8)
            for n, x, y in zip(shown, xs, ys):
                ax.annotate(n, (x.mean, y.mean), fontsize=6, xytext=(2, 2), textcoords="offset points")
            ax.axvline(1.0, color="k", lw=0.5, ls=":")
            ax.set(title=f"batch {bs}", xlabel=f"step time ÷ {base}")
        axes[0].set_ylabel("final test accuracy")

    figures = [Figure("Final test accuracy against the batch size, per norm (line: mean over seeds; band: lowest to "
                      f"highest seed; dotted: {base})", by_batch, (10, 3.6)),
               Figure(f"Accuracy against cost: step time ÷ {base} measured in the same run (error bars: 95% "
                      "intervals over seeds)", cost, (3 * max(len(started), 1), 3.4))]
    acc, cost = "test_acc/{row}/b{col}", "step_ratio/{row}/b{col}"
    plots = [heatmap(record, norms, started, acc, base), scatter(record, norms, started, cost, acc, x_label=f"step time ÷ {base}",
                                                                 y_label="test accuracy")]
    return Report(record, tables, figures, verdicts(record), notes, plots)


EXPERIMENT = Experiment(
    name="norm_zoo_cifar",
    description="Every normalization of labnorm (and none) in one fast ResNet on CIFAR-10 at batch 2, 8, 32 and 128: "
                "one learning-rate rule and one training budget for all; test accuracy, blow-ups and step time ÷ BN.",
    configs=CONFIGS, run=None, metrics=metrics, report=report, units=units, run_unit=run_unit,
)
