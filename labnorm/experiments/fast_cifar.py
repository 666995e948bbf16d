r"""Training to the end on a CPU: the whitened fast net with BN and GN, each at its own learning rate (notebook 11).

`labnorm.models.FastCIFAR` — the three-group net of the public CIFAR-10 speed records, with a frozen
patch-whitening first layer — trained by `labnorm.train.fast.train_fast` (translate + alternating flip,
label smoothing, Nesterov SGD with a one-cycle schedule, lookahead, bf16 autocast and channels_last on a
CPU with bf16, test-time flips and translations), once per norm and seed, on all 50,000 training images,
tested on all 10,000 test images. Two configurations: the **main** one (the units `bn`, `gn`), and a
**quick** one (`bn@quick`: fewer epochs, or a thinner net; not at cpu scale, whose three seeds of the
main units fill a session of this machine).

**Learning rate per norm** (`labnorm.train.fast.LR_RULE`): the recipe's peak learning rate is tuned
for BN; every other norm gets it × (its LR range test's divergence point ÷ BN's), both range tests run
on a fresh net of the unit's width with the unit's seed, and saved with the run. A norm whose range
test never leaves chance is reported as such and not trained. With `shared_lr`, every norm trains
at BN's learning rate instead (the ablation: units `gn@shared-lr`).

Every run records its wall time (whitening, training, evaluation) and whether bf16 ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .. import distributed
from .._norm_batch import set_norm_batch
from ..data import load_cifar10, scaled_subset
from ..models import build_model
from ..train.dry import dry, dry_batch, dry_part
from ..train.fast import LR_RULE, FastRecipe, lowest_point, lr_from_range_tests, range_test, train_fast
from ..train.kernels import describe_norms, use_torch_kernels
from .claims import verdicts
from .common import curve, subsample
from .report import Figure, Report, Table, bands, baseline_note, cell, seed_details
from .runner import Experiment, SeedResult, summary
from .units import missing_units, partial_summary


@dataclass(frozen=True)
class Config:
    width: float
    epochs: float
    quick_width: float
    quick_epochs: float
    train_images: int
    test_images: int
    norms: tuple[str, ...] = ("bn", "gn")
    quick_norms: tuple[str, ...] = ("bn",)
    shared_lr: tuple[str, ...] = ()  # norms also trained at the baseline's learning rate (the ablation)
    batch_size: int = 1024
    lr: float = 1.5
    weight_decay: float = 2e-3
    range_steps: int = 80
    range_batch: int = 512
    baseline: str = "bn"
    lr_rule: str = LR_RULE
    model: str = "fast_cifar"


CONFIGS = {
    "smoke": Config(width=0.125, epochs=1, quick_width=0.125, quick_epochs=1, train_images=256, test_images=100,
                    shared_lr=("gn",), batch_size=64, range_steps=24, range_batch=64),
    # (the quick configuration is left out at cpu scale: its three seeds did not fit this machine's session)
    "cpu": Config(width=0.5, epochs=12, quick_width=0.5, quick_epochs=5, train_images=50000, test_images=10000,
                  quick_norms=()),
    "gpu": Config(width=1.0, epochs=10, quick_width=0.5, quick_epochs=10, train_images=50000, test_images=10000,
                  quick_norms=("bn", "gn"), shared_lr=("gn",)),
}


def units(config: Config) -> list[str]:
    return list(config.norms) + [f"{n}@quick" for n in config.quick_norms] + [f"{n}@shared-lr" for n in config.shared_lr]


def recipe(config: Config, quick: bool, lr: float | None = None) -> FastRecipe:
    """The unit's `FastRecipe`: one memory format, channels_last, for every norm (the harness benchmark,
    `benchmarks/bench_harness.py`, times it with BN only)."""
    return FastRecipe(epochs=config.quick_epochs if quick else config.epochs, batch_size=config.batch_size,
                      lr=lr or config.lr, weight_decay=config.weight_decay)


_DATA: dict = {}
_RANGE: dict = {}


def _data(config: Config, seed: int):
    key = (config.train_images, config.test_images, seed, id(dry()))
    if _DATA.get("key") != key:
        d = dry()
        train, test = load_cifar10("train"), load_cifar10("test")
        n_train = min(config.train_images, d.images) if d and d.images else config.train_images
        n_test = min(config.test_images, d.images) if d and d.images else config.test_images
        _DATA.update(key=key, splits=(scaled_subset(train, n_train, seed), scaled_subset(test, n_test, seed)))
    return _DATA["splits"]


def train_split(config: Config, seed: int):
    """The training split the runs of `config` and `seed` use (loaded once per process)."""
    return _data(config, seed)[0]


def _range(config: Config, norm: str, width: float, seed: int, device: torch.device, norm_batch: int | None = None,
           model_kwargs: dict | None = None, prepare: tuple | None = None) -> dict:
    """The LR range test of `norm` at `width` (cached in this process: the baseline's serves every norm); with
    `norm_batch`, its batch statistics per groups of that many images (`labnorm.set_norm_batch`); `model_kwargs`:
    more arguments of the net (`build_model`); `prepare`: (a name for it, `range_test`'s `prepare`)."""
    key = (norm, width, seed, norm_batch, config.range_steps, config.range_batch, config.train_images, id(dry()),
           tuple(sorted((model_kwargs or {}).items())), prepare and prepare[0])
    if key not in _RANGE:
        train, _ = _data(config, seed)
        torch.manual_seed(seed)
        model = build_model(config.model, norm, width=width, **(model_kwargs or {}))
        if norm_batch:
            set_norm_batch(model, norm_batch)
        use_torch_kernels(model)  # (after: it leaves per-worker layers on labnorm's code)
        steps, batch = (2 if dry() else config.range_steps), dry_batch(config.range_batch)
        batch = max(norm_batch or 1, batch - batch % (norm_batch or 1))
        r = recipe(config, False)
        with dry_part(f"range test {norm}, width {width:g}" + (f", per-worker batch {norm_batch}" if norm_batch else "")
                      + f": {config.range_steps} steps", config.range_steps, steps, device, config.range_steps):
            _RANGE[key] = range_test(model, train.images, train.labels, recipe=r, steps=steps, batch_size=batch,
                                     seed=seed, device=device, prepare=prepare and prepare[1])
    return _RANGE[key]


def train_norm(config: Config, norm: str, seed: int, device: torch.device, *, width: float, quick: bool = False,
               shared_lr: bool = False, norm_batch: int | None = None, range_seed: int | None = None,
               lr_cap: float | None = None, lowest_tolerance: float | None = None, prepare=None,
               model_kwargs: dict | None = None, range_prepare: tuple | None = None,
               desc: str = "") -> tuple[dict, object, object]:
    """One run of `norm` by the recipe, at the learning rate its range test gives (the baseline's with `shared_lr`);
    `norm_batch`: per-worker batch statistics; `range_seed`: the range tests' seed (default: `seed`); `lr_cap`: the
    capped rule (`lr_from_range_tests`), `lowest_tolerance` its lowest-point piece; `prepare`: `train_fast`'s;
    `model_kwargs`: more arguments of the net, for its range test and its run alike; `range_prepare`: (name, fn), what
    the range test's net gets before it starts (the run's own `prepare` is not used there).
    Returns the run's details, the trained model (None if not trained) and the training split."""
    train, test = _data(config, seed)
    rs = seed if range_seed is None else range_seed
    test_norm = _range(config, norm, width, rs, device, norm_batch, model_kwargs, range_prepare)
    test_base = _range(config, config.baseline, width, rs, device)
    lr = config.lr if shared_lr else lr_from_range_tests(recipe(config, quick), test_norm, test_base, cap=lr_cap,
                                                         lowest_tolerance=lowest_tolerance)
    out = {"norm": norm, "width": width, "lr": lr,
           "range_test": {"multiplier": subsample(test_norm["multiplier"], 60), "loss": subsample(test_norm["loss"], 60),
                          **{k: test_norm.get(k) for k in ("diverged_at", "lowest_loss", "left_chance", "seconds")}},
           "baseline_diverged_at": test_base["diverged_at"], "lowest_at": lowest_point(test_norm),
           "baseline_lowest_at": lowest_point(test_base), **({"model_kwargs": model_kwargs} if model_kwargs else {}),
           **({"range_prepare": range_prepare[0]} if range_prepare else {})}
    if lr is None:  # the range test never left chance: not trained at an arbitrary learning rate
        return {**out, "never_left_chance": True}, None, train
    torch.manual_seed(seed)
    model = build_model(config.model, norm, width=width, **(model_kwargs or {}))
    if norm_batch:
        set_norm_batch(model, norm_batch)
    swapped = use_torch_kernels(model)
    r = recipe(config, quick, lr)
    full_steps = math.ceil(r.epochs * (config.train_images // r.batch_size))
    if dry():  # two steps of the dry batch, projected to the run's steps
        bs = dry_batch(r.batch_size)
        r = replace(r, batch_size=max(norm_batch or 1, bs - bs % (norm_batch or 1)), tta=0)
        r = replace(r, epochs=2 / (len(train) // r.batch_size))
    with dry_part(f"{desc}: {full_steps:,} training steps + evaluation", full_steps, 2, device, full_steps):
        hist = train_fast(model, train.images, train.labels, test.images, test.labels, recipe=r, seed=seed,
                          device=device, desc=desc, prepare=prepare)
    out.update({k: hist.get(k) for k in ("test_acc", "test_acc_tta", "test_loss", "test_loss_tta", "bf16",
                                         "diverged_at_step", "train_seconds", "eval_seconds", "wall_seconds", "steps")})
    out.update(epochs=hist["epochs"], loss_curve=curve(hist["step_loss"]), recipe=r.as_dict(),
               implementation={"torch_kernels": swapped, **describe_norms(model), "channels_last": r.channels_last,
                               **distributed.describe()})
    return out, model, train


def run_unit(config: Config, seed: int, unit: str, device: torch.device) -> SeedResult:
    norm, _, variant = unit.partition("@")
    quick = variant == "quick"
    out, _, train = train_norm(config, norm, seed, device, width=config.quick_width if quick else config.width,
                               quick=quick, shared_lr=variant == "shared-lr", desc=unit)
    return SeedResult({"norm": norm, "variant": variant or "main", **out}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for unit, r in details["units"].items():
        for k in ("test_acc", "test_acc_tta", "wall_seconds", "lr"):
            out[f"{k}/{unit}"] = r.get(k)
    return out


def report(record: dict) -> Report:
    config = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()})
    base, all_units = config.baseline, units(config)
    rows = []
    for unit in all_units:
        norm, _, variant = unit.partition("@")
        quick = variant == "quick"
        rows.append([unit, f"{config.quick_width if quick else config.width:g}",
                     f"{config.quick_epochs if quick else config.epochs:g}", cell(record, f"lr/{unit}", 3),
                     cell(record, f"test_acc/{unit}", 1, percent=True), cell(record, f"test_acc_tta/{unit}", 1, percent=True),
                     cell(record, f"wall_seconds/{unit}", 0)])
    table = Table(["run", "width", "epochs", "peak lr", "test acc.", "test acc. (TTA)", "wall time (s)"], rows,
                  note="test acc.: eval mode on the test images without / with test-time augmentation (flips and "
                       "1-pixel translations); mean ± half-width of the 95% interval over seeds. wall time: one run, "
                       "whitening + training + evaluation, on the record's device. peak lr: by the range-test rule "
                       "below (@shared-lr: the baseline's).")
    details = seed_details(record)
    skipped = sorted({u for d in details for u, r in d["units"].items() if r.get("never_left_chance")})
    quick = f" and {config.quick_width:g} ({config.quick_epochs:g} epochs, @quick)" if config.quick_norms else ""
    notes = [f"{config.model} at width {config.width:g} ({config.epochs:g} epochs){quick}; batch {config.batch_size}; "
             f"{config.train_images:,} training and "
             f"{config.test_images:,} test images. Learning rate: {config.lr_rule}.",
             "Every other hyperparameter of the recipe (frozen norm scales, 64x learning rate on the norm shifts, "
             "momentum, weight decay, schedule, label smoothing) was tuned for BN by the speed-record authors; the "
             "other norms get the same, and only their peak learning rate from the rule above."]
    notes += [f"Never left chance in its range test, so not trained: {', '.join(skipped)}."] if skipped else []
    notes += baseline_note(record, [(base, f"test_acc_tta/{base}")], level=0.85)
    if missing_units(record):
        notes.append("PARTIAL RECORD (saved unit by unit): " + partial_summary(record, lambda u: (u.partition("@")[2] or
                                                                                                  "main", u)))

    def curves(fig):
        loss_ax, range_ax = fig.subplots(1, 2)
        for k, unit in enumerate(u for u in all_units if summary(record, f"test_acc/{u}").n):
            runs = [d["units"][unit] for d in details if unit in d["units"] and d["units"][unit].get("loss_curve")]
            bands(loss_ax, [[tuple(p) for p in r["loss_curve"]] for r in runs], label=unit, color=f"C{k}")
            if "@" not in unit:
                for i, r in enumerate(runs):
                    range_ax.plot(r["range_test"]["multiplier"], r["range_test"]["loss"], color=f"C{k}", lw=0.8,
                                  label=unit if i == 0 else None)
        loss_ax.set(xlabel="step", ylabel="training loss (label-smoothed)")
        range_ax.set_xscale("log")
        range_ax.set(xlabel="learning-rate multiplier (x the recipe's peak)", ylabel="smoothed loss", ylim=(1.0, 4.0))
        for ax in (loss_ax, range_ax):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)

    figure = Figure("Training loss per run (line: mean over seeds; band: lowest to highest seed) and the LR range tests "
                    "(one line per seed) that set each norm's learning rate", curves, (9, 3.4))
    return Report(record, [table], [figure], verdicts(record), notes)


EXPERIMENT = Experiment(
    name="fast_cifar",
    description="The whitened fast net of the CIFAR-10 speed records, trained to the end on a CPU with BN and GN, each "
                "at the learning rate its range test gives; test accuracy with and without TTA, wall time per run.",
    configs=CONFIGS, run=None, metrics=metrics, report=report, units=units, run_unit=run_unit,
)
