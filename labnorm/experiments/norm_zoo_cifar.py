r"""Which normalization, at which per-worker batch? Every norm, trained to the end on the fast net (notebook 10).

`labnorm.models.FastCIFAR` (the whitened net of the CIFAR-10 speed records) at `width`, trained by
`labnorm.train.fast.train_fast` (the recipe of `fast_cifar`) with every `norm=` of labnorm and none (but torch's copies
`torch-bn`, `torch-gn`, and `sn-ba`, whose eval statistics need a pass over the data `train_fast` does not make),
on all 50,000 training images, tested on all 10,000 (eval mode, with the recipe's test-time flips and
translations; `test_acc_plain` without), over seeds — each seed's runs share init and image order, so
two norms are compared by their paired difference:

- **Per-worker batch, one optimizer batch.** SGD averages the gradient over `batch_size` images at every
  per-worker batch `b`; a batch-dependent norm takes its statistics from groups of `b` (`labnorm.set_norm_batch`),
  as each of `batch_size / b` data-parallel workers would: the GN, WS and FRN papers' images per GPU. A norm
  whose statistics do not depend on the batch is the same computation at every `b` (`same_at`, proven in
  `tests/test_experiments.py`): trained once per seed, at the full batch, and shown in every column.
- **Learning rate per norm**: `LR_RULE_LOWEST` of `labnorm.train.fast` — BN's tuned rate, lowered in proportion
  where a norm's range test blows up sooner than BN's or reaches its lowest loss more than 3x sooner, never raised —
  the range tests run once (seed `range_seed`) and the rate held for every seed. The ablations: `uncapped`, at the
  uncapped ratio (units `norm@uncapped`: the rule the record started with, which gave BCN and GN 2-2.3x BN's rate,
  near chance for most of training); `div_only`, without the lowest-point piece (units `norm@div-only`: the rule
  before GN's runs showed the piece was needed); `shared_lr`, at BN's rate (units `norm@shared-lr`). Batch Renorm
  trains with its paper's warm-up compressed into the run (`labnorm.renorm_schedule`); `extra` units without it.
  And `wn/bB@data-init`: WN with Salimans & Kingma's data-dependent init (`labnorm.data_dependent_init`, on
  `init_images` training images) at the rate of its own range test, data init included; `@no-dirac`: the net without
  its Dirac init (FRN, WN, WN + mean-only BN).
- **Negative control**: Dynamic Tanh, which its authors designed to replace LayerNorm, stands where BN stands.
- **Step time ÷ BN**: fresh nets of the norm and of BN at the same `b`, timed alternately after the run
  (`labnorm.train.fast.step_time_ratio`): a same-moment ratio, not a benchmark (`benchmarks/bench_zoo.py` is).
- Units `norm/bB`, saved as each finishes: the full batch, then b = 2, 8, 32 (the old record: in the history).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..switch_norm import importance_weights
from ..train.dry import dry
from ..train.fast import LR_RULE_LOWEST
from . import fast_cifar
from .claims import verdicts
from .claims.norm_zoo_cifar import CONTROL_QUOTE
from ._per_worker import accuracy_by_batch, per_worker, prepare, same_at, step_ratio, virtual_batch
from ._zoo_changes import CHANGES
from .plots import heatmap, scatter
from .report import Figure, Report, Table, baseline_note, cell, ranking, seed_details
from .runner import Experiment, SeedResult, summary
from .units import missing_units, partial_summary

ZOO = ("bn", "brn:0.1", "gbn:16", "ws+bn", "bcn:{G}", "ws+bcn:{G}", "sn", "evob0", "gn:{G}", "ws+gn:{G}", "ln", "ln2d",
       "in", "rms", "frn", "evos0:{G}", "grn", "wn", "wn+mobn", "dyt", "none")  # not: torch-bn, torch-gn, sn-ba (doc)
NEGATIVE_CONTROLS = ("dyt",)  # their authors' words: claims/norm_zoo_cifar.py


def zoo(groups: int) -> tuple[str, ...]:
    return tuple(n.format(G=groups) for n in ZOO)  # ({G}: the config's group count)


@dataclass(frozen=True)
class Config:
    width: float
    epochs: float
    train_images: int
    test_images: int
    norms: tuple[str, ...]
    batch_sizes: tuple[int, ...]  # per-worker batches; the largest is the whole optimizer batch, `batch_size`
    batch_size: int = 1024
    model: str = "fast_cifar"
    lr: float = 1.5  # the recipe's peak, tuned for BN at the full batch
    weight_decay: float = 2e-3
    range_steps: int = 80
    range_batch: int = 512
    range_seed: int = 0
    lr_rule: str = LR_RULE_LOWEST + "; range tests on seed 0, the learning rate held for every seed"
    lr_cap: float = 1.0  # x the recipe's lr
    lowest_tolerance: float = 3.0  # the rule's lowest-point piece: only a lowest point this many times sooner than BN's
    shared_lr: tuple[str, ...] = ()  # also trained at BN's learning rate, at the full batch (an ablation)
    uncapped: tuple[str, ...] = ()  # also trained at the uncapped range-test ratio, at the full batch (an ablation)
    div_only: tuple[str, ...] = ()  # also trained without the rule's lowest-point piece, at the full batch (an ablation)
    baseline: str = "bn"
    diverged_acc: float = 0.1
    timing_steps: int = 3  # per round, `timing_rounds` rounds after a warm-up
    timing_rounds: int = 2
    challengers: tuple[str, ...] = ()  # judged against the baseline at the smallest per-worker batch
    extra: tuple[str, ...] = ()  # units beside the grid (Batch Renorm's ablations: no warm-up; the paper's momentum)
    brn_schedule: tuple[int, ...] = (5000, 40000, 25000)  # the paper's warm-up, compressed into the run (renorm_schedule)
    init_images: int = 500  # WN's data-dependent init (the extra unit wn/bB@data-init): on this many training images
    changes: tuple[str, ...] = ()  # how the config changed while the record was made, and why (the report says)


CONFIGS = {
    "smoke": Config(width=0.125, epochs=1, train_images=256, test_images=100, batch_sizes=(2, 64), batch_size=64,
                    norms=("bn", "gn:4", "frn", "dyt"), challengers=("gn:4", "frn"), shared_lr=("gn:4",), uncapped=("frn",),
                    range_steps=24, range_batch=64, timing_rounds=1, div_only=("frn",),
                    extra=("wn/b64@data-init", "frn/b64@no-dirac")),
    # BN reaches 85.7% (TTA) at half width x 5 epochs in 3.9 min of this 2-core CPU (benchmarks/bench_fast_frontier.py)
    "cpu": Config(width=0.5, epochs=5, train_images=50000, test_images=10000, batch_sizes=(2, 8, 32, 1024), norms=zoo(16),
                  challengers=("gn:16", "ws+gn:16", "frn", "evos0:16", "brn:0.1"), shared_lr=("evob0",),
                  uncapped=("gn:16", "ws+bn", "bcn:16", "sn"), div_only=("gn:16", "ws+gn:16", "brn:0.1"), changes=CHANGES,
                  extra=("brn:0.1/b1024@no-warmup+div-only", "brn/b1024@no-warmup+div-only",  # brn: the paper's momentum
                         "wn/b1024@data-init", "frn/b1024@no-dirac", "wn/b1024@no-dirac", "wn+mobn/b1024@no-dirac")),
    "gpu": Config(width=1.0, epochs=10, train_images=50000, test_images=10000, batch_sizes=(2, 8, 32, 1024), norms=zoo(32),
                  challengers=("gn:32", "ws+gn:32", "frn", "evos0:32", "brn:0.1"), shared_lr=("evob0",),
                  uncapped=("gn:32", "ws+bn", "bcn:32", "sn"), div_only=("gn:32", "ws+gn:32", "brn:0.1"),
                  extra=("wn/b1024@data-init", "frn/b1024@no-dirac")),  # ablations: as cpu's
}


def units(config: Config) -> list[str]:
    full, rest = max(config.batch_sizes), sorted(set(config.batch_sizes) - {max(config.batch_sizes)})
    out = [f"{norm}/b{full}" for norm in config.norms]
    out += [f"{norm}/b{b}" for b in rest for norm in config.norms if per_worker(norm)]
    out += [f"{norm}/b{full}@uncapped" for norm in config.uncapped] + [f"{n}/b{full}@div-only" for n in config.div_only]
    return out + [f"{norm}/b{full}@shared-lr" for norm in config.shared_lr] + list(config.extra)


def _parse(unit: str) -> tuple[str, int, str]:
    """'gn:16/b1024@shared-lr' -> ('gn:16', 1024, 'shared-lr')."""
    (norm, b), variant = unit.partition("@")[0].rsplit("/b", 1), unit.partition("@")[2]
    return norm, int(b), variant


def run_unit(config: Config, seed: int, unit: str, device: torch.device) -> SeedResult:
    (norm, b, variant), full = _parse(unit), max(config.batch_sizes)
    nb, tags = (b if b < full and per_worker(norm) else None), set(variant.split("+"))  # the unit net's norm_batch
    out, model, train = fast_cifar.train_norm(
        config, norm, seed, device, width=config.width, norm_batch=nb, shared_lr="shared-lr" in tags,
        range_seed=config.range_seed, lr_cap=None if "uncapped" in tags else config.lr_cap, desc=unit,
        lowest_tolerance=None if tags & {"uncapped", "div-only"} else config.lowest_tolerance,
        prepare=prepare(config, norm, tags, seed, device), model_kwargs={"dirac": False} if "no-dirac" in tags else None,
        # WN's data-dependent init in its range test too (on the range seed's images: one rate for every seed)
        range_prepare=("data-init", prepare(config, norm, tags, config.range_seed, device)) if "data-init" in tags else None)
    out.update(per_worker_batch=b, batch_size=config.batch_size, variant=variant or "main",
               stands_for=[c for c in config.batch_sizes if same_at(config.batch_sizes, norm, c)]
               if b == full and not variant else [b],
               load_before=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    bad = model is None or out.get("diverged_at_step") is not None  # not trained, or diverged: chance
    out["test_acc_plain"], out["test_acc"] = (config.diverged_acc,) * 2 if bad else (out["test_acc"], out["test_acc_tta"])
    out["step_ratio"], out["timed_step_s"] = (1.0 if model is not None else None), None
    if model is not None and importance_weights(model):  # Switchable Norm's learned weights, per layer
        out["importance"] = importance_weights(model)
    if model is not None and norm != config.baseline and not dry():  # fresh nets of the norm and BN, at the same b
        out["step_ratio"], out["timed_step_s"] = step_ratio(config, norm, nb, seed, train, device, bool(out["bf16"]))
    return SeedResult(out, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    """Per unit: test accuracy (TTA), without TTA, blew up, step time ÷ BN, the learning rate. A norm that is the
    same computation at every per-worker batch has its full-batch values under every column it stands for."""
    out: dict[str, float | None] = {}
    for unit, r in details["units"].items():
        norm, b, variant = _parse(unit)
        for key in (f"{norm}/b{c}" + (f"@{variant}" if variant else "") for c in r.get("stands_for", [b])):
            out.update({f"{k}/{key}": r.get(k) for k in ("test_acc", "test_acc_plain", "step_ratio", "lr", "wall_seconds")})
            out[f"blew_up/{key}"] = float(r.get("diverged_at_step") is not None) if "steps" in r else None
    return out


def report(record: dict) -> Report:
    config = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()})
    norms, batches, base, full = list(config.norms), sorted(config.batch_sizes), config.baseline, max(config.batch_sizes)
    details, tables = seed_details(record), []
    started = [b for b in batches if any(summary(record, f"test_acc/{n}/b{b}").n for n in norms)]
    for b in started:  # a per-worker batch no run has reached is named by the partial-record note, without a table
        shown = {n: f"test_acc/{n}/b{b}" for n in norms if summary(record, f"test_acc/{n}/b{b}").n}
        rows = ranking(record, shown, base)
        for row in rows:
            norm = row[1]
            unit = f"{norm}/b{full if same_at(config.batch_sizes, norm, b) else b}"
            runs = [d["units"][unit] for d in details if unit in d["units"]]
            blown = [r["diverged_at_step"] for r in runs if r.get("diverged_at_step") is not None]
            skipped = sum(bool(r.get("never_left_chance")) for r in runs)
            tags = (["negative control"] if norm.split(":")[0] in NEGATIVE_CONTROLS else []) + \
                (["= full batch"] if b != full and same_at(config.batch_sizes, norm, b) else [])
            row[1] = norm + (f" ({', '.join(tags)})" if tags else "")
            row += [f"{len(blown)}/{len(runs)}" + (f" (step {min(blown)})" if blown else "") +
                    (f"; {skipped} not trained" if skipped else ""),
                    cell(record, f"lr/{norm}/b{b}", 3), cell(record, f"step_ratio/{norm}/b{b}", 2)]
        title = (f"Per-worker batch {b} of {config.batch_size}" if b != full else f"Full batch ({config.batch_size})") + \
            f": {base} {cell(record, f'test_acc/{base}/b{b}', 1, percent=True)}"
        tables.append(Table(["#", "norm", "test acc.", f"vs {base} (points)", "≈ best", "blew up", "peak lr",
                             f"step time ÷ {base}"], rows, title=title))
    ablation = [(n, v) for v, ns in (("uncapped", config.uncapped), ("div-only", config.div_only),
                                     ("shared-lr", config.shared_lr)) for n in ns
                if summary(record, f"test_acc/{n}/b{full}@{v}").n]
    if ablation:
        tables.append(Table(["norm", "the rule's rate", "test acc.", "ablation", "its rate", "test acc. "],
                            [[n, cell(record, f"lr/{n}/b{full}", 3), cell(record, f"test_acc/{n}/b{full}", 1, percent=True),
                              {"uncapped": "uncapped ratio", "div-only": "no lowest-point piece",
                               "shared-lr": f"{base}'s rate"}[v],
                              cell(record, f"lr/{n}/b{full}@{v}", 3), cell(record, f"test_acc/{n}/b{full}@{v}", 1, percent=True)]
                             for n, v in ablation], title="Ablations of the learning-rate rule (full batch)"))
    notes = [f"{config.model} at width {config.width:g}, {config.epochs:g} epochs of {config.train_images:,} images; "
             f"optimizer batch {config.batch_size} at every per-worker batch b (batch statistics over groups of b, as on "
             f"{config.batch_size}/b workers); {config.test_images:,} test images, eval mode, with test-time flips and "
             f"translations. Learning rate: {config.lr_rule}. The rest of the recipe was tuned for BN by the "
             "speed-record authors; every norm gets it.",
             f"test acc.: mean ± 95% half-width over seeds (diverged or not trained: {config.diverged_acc:g}, chance). "
             f"vs {base}: paired difference, ▲/▼ when its interval excludes 0. ≈ best: not significantly below the top "
             "row. = full batch: the same computation at every per-worker batch, trained once per seed. step time ÷ "
             f"{base}: interleaved timing after each run, not a benchmark."]
    notes += [f"{n}: BN over virtual batches of {virtual_batch(n)}; shown where that is its own computation (b ≥ "
              f"{virtual_batch(n)})." for n in norms if virtual_batch(n)]
    notes += [f"Negative control: {n}. {CONTROL_QUOTE}" for n in norms if n.split(":")[0] in NEGATIVE_CONTROLS]
    steps = max((r.get("steps") or 0 for d in details for r in d["units"].values()), default=0)  # for brn's note

    def at(u: str) -> str:
        return f"{u} at peak lr {cell(record, f'lr/{u}', 3)}: {cell(record, f'test_acc/{u}', 1, percent=True)}"

    without, inits, plain = ([at(u) for u in config.extra if summary(record, f"test_acc/{u}").n and end in u]
                             for end in ("no-warmup", "data-init", "no-dirac"))
    notes += [f"{n}: moving averages at momentum {n[4:]} (the BN arms' rate), not the paper's 0.01, whose averages would "
              f"still hold {0.99 ** steps:.0%} of their starting values after {steps} steps; Batch Renorm uses them in "
              "training (r, d) and in eval. The paper's warm-up compressed into the run (`renorm_schedule`: plain BN for "
              "the first 1/8 of the steps, d_max 5 at 5/8, r_max 3 at the end). Without it (the ablation units): "
              + ("; ".join(without) or "not run yet") + (f"; with it, at the same rate: {at(f'{n}/b{full}@div-only')}" if
                                                          summary(record, f"test_acc/{n}/b{full}@div-only").n else "")
              + "." for n in norms if n[:4] == "brn:"]
    notes += [f"WN with Salimans & Kingma's data-dependent init on {config.init_images} training images, at the rate "
              f"of a range test with it: {'; '.join(inits)}."] * bool(inits)
    notes += [f"Without the net's Dirac init (PyTorch's default for every conv; range test on that net): "
              f"{'; '.join(plain)}."] * bool(plain)
    skipped = ", ".join(sorted({u for d in details for u, r in d["units"].items() if r.get("never_left_chance")}))
    notes += [f"Never left chance in its range test, so not trained: {skipped}."] * bool(skipped)
    notes += [f"Changed while the record was made: {c}" for c in config.changes]
    notes += baseline_note(record, [(f"{base} at the full batch", f"test_acc/{base}/b{full}")])
    if missing_units(record):
        notes.append("PARTIAL RECORD (the run is saved unit by unit and continues where it stopped): "
                     + partial_summary(record, lambda u: (f"per-worker batch {_parse(u)[1]}" + (
                         f" @{_parse(u)[2]}" if _parse(u)[2] else ""), _parse(u)[0])))

    figures = [Figure("Test accuracy against the per-worker batch, per norm (line: mean over seeds; band: lowest to "
                      f"highest seed; dotted: {base}); accuracy against step time: the interactive figure",
                      accuracy_by_batch(record, norms, batches, base, len(details)),
                      (12, 4.2))]
    acc, cost_m = "test_acc/{row}/b{col}", "step_ratio/{row}/b{col}"
    plots = [heatmap(record, norms, started, acc, base),
             scatter(record, norms, started, cost_m, acc, x_label=f"step time ÷ {base}", y_label="test accuracy")]
    return Report(record, tables, figures, verdicts(record), notes, plots)


EXPERIMENT = Experiment(
    name="norm_zoo_cifar",
    description="Every normalization of labnorm (and none) in the whitened fast net, trained to the end on CIFAR-10 at "
                "per-worker batch 2, 8, 32 and the full batch: BN's learning rate, lowered where a norm's range test "
                "blows up, or reaches its lowest loss, sooner; test accuracy, blow-ups and step time ÷ BN.",
    configs=CONFIGS, run=None, metrics=metrics, report=report, units=units, run_unit=run_unit,
)
