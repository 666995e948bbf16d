r"""Normalization in Transformers: every placement and norm of a tiny character-level GPT (notebook 12).

`labnorm.tiny_gpt.TinyGPT` trained on tiny Shakespeare (`labnorm.text`) once per arm and seed, each arm
named `placement-norm` (`pre-ln`, `post-ln`, `peri-ln`, `pre-rms`, `pre-rms-zero-centred`, `pre-dyt`,
`pre-derf`, `pre-none`), `+qk` for QK-norm (a LayerNorm on queries and keys, Wortsman et al.'s
*qk-layernorm*) and `@no-warmup` for a schedule without warm-up; each trained by
`labnorm.train.lm.train_lm` (AdamW, warm-up then cosine, no gradient clipping, the same windows in the
same order for every arm of a seed). Per run the record holds the validation loss in nats per character
on the whole validation split, the training loss curve, the step at which the loss stopped being finite
(if it did), tokens per second of the training steps alone, and, on a fixed validation batch at the end,
the largest attention logit and the residual stream's RMS after each block (`labnorm.train.lm.probe`).

A **learning-rate sweep** (units `arm@lr=...`, seed 0 only: `sweep_seeds`) trains Pre-LN with and
without QK-norm and Post-LN without warm-up at larger peak learning rates; with the main runs at the base
rate it gives each arm's LR sensitivity as Wortsman et al. (2023) define it: the mean over the rates of
$\min(\ell(\eta), \ell_0) - \min_\eta \ell(\eta)$, $\ell_0 = \ln V$ the loss of a uniform guess.

**Sizing** (cpu): a niced probe beside another job measured ~28,000 training tokens/s on one thread of
this 2-core machine (4 layers, width 64, 32 windows of 64 characters: 72 ms a step), so 800 steps is
~58 s of training + ~3 s of evaluation; 11 arms x 3 seeds + 6 sweep runs = 39 runs, ~40 minutes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..models import build_model
from ..text import load_tinyshakespeare
from ..train.dry import dry, dry_batch
from ..train.lm import lr_sensitivity, train_lm
from .claims import verdicts
from .common import curve
from .report import Figure, Report, Table, bands, cell, interval_errors, judge, log_axis, seed_details
from .runner import Experiment, SeedResult, summary
from .units import missing_units, partial_summary

ARMS = ("pre-ln", "pre-rms", "pre-rms-zero-centred", "pre-dyt", "pre-derf", "pre-none", "post-ln",
        "post-ln@no-warmup", "pre-ln@no-warmup", "peri-ln", "pre-ln+qk")


@dataclass(frozen=True)
class Config:
    dim: int
    num_layers: int
    num_heads: int
    context: int
    batch_size: int
    iterations: int
    warmup_steps: int
    eval_every: int
    eval_windows: int  # validation windows at each evaluation during training
    final_windows: int  # validation windows at the end (0: the whole split)
    lr: float = 3e-3
    sweep_lrs: tuple[float, ...] = (1e-2, 3e-2)
    sweep_arms: tuple[str, ...] = ("pre-ln", "pre-ln+qk", "post-ln@no-warmup")
    sweep_seeds: tuple[int, ...] = (0,)
    arms: tuple[str, ...] = ARMS
    weight_decay: float = 0.1
    min_lr_ratio: float = 0.1
    baseline: str = "pre-ln"
    qk_norm: str = "ln"
    model: str = "tiny_gpt"


CONFIGS = {
    "smoke": Config(dim=16, num_layers=2, num_heads=2, context=16, batch_size=4, iterations=4, warmup_steps=2,
                    eval_every=2, eval_windows=4, final_windows=8),
    "cpu": Config(dim=64, num_layers=4, num_heads=4, context=64, batch_size=32, iterations=800, warmup_steps=80,
                  eval_every=200, eval_windows=128, final_windows=0),
    # nanoGPT's shakespeare_char model and budget
    "gpu": Config(dim=384, num_layers=6, num_heads=6, context=256, batch_size=64, iterations=5000, warmup_steps=200,
                  eval_every=500, eval_windows=200, final_windows=0, lr=1e-3, sweep_lrs=(3e-3, 1e-2)),
}


def units(config: Config) -> list[str]:
    return list(config.arms) + [f"{a}@lr={lr:g}" for lr in config.sweep_lrs for a in config.sweep_arms]


def parse(unit: str) -> dict:
    """'post-ln@no-warmup@lr=0.01' -> placement, norm, qk, warm-up, learning rate (None: the config's) and arm."""
    arm, *flags = unit.split("@")
    lr = next((float(f[3:]) for f in flags if f.startswith("lr=")), None)
    placement, norm = arm.removesuffix("+qk").split("-", 1)
    warm = "no-warmup" not in flags
    return {"placement": placement, "norm": norm, "qk": arm.endswith("+qk"), "warmup": warm, "lr": lr,
            "arm": arm + ("" if warm else "@no-warmup")}


def run_unit(config: Config, seed: int, unit: str, device: torch.device) -> SeedResult:
    a, data = parse(unit), load_tinyshakespeare()
    if a["lr"] is not None and seed not in config.sweep_seeds:
        return SeedResult({"skipped": f"the learning-rate sweep runs seeds {list(config.sweep_seeds)} only"},
                          data.variant)
    lr, d = a["lr"] or config.lr, dry()
    torch.manual_seed(seed)
    model = build_model(config.model, norm=a["norm"], placement=a["placement"],
                        qk_norm=config.qk_norm if a["qk"] else None, vocab_size=data.vocab_size,
                        context=config.context, dim=config.dim, num_layers=config.num_layers,
                        num_heads=config.num_heads)
    t0, b = time.perf_counter(), dry_batch(config.batch_size)
    hist = train_lm(model, data.train, data.val, steps=2 if d else config.iterations, context=config.context,
                    batch_size=b, lr=lr, seed=seed, device=device, min_lr_ratio=config.min_lr_ratio,
                    warmup_steps=config.warmup_steps if a["warmup"] else 0, weight_decay=config.weight_decay,
                    eval_every=config.eval_every, eval_windows_count=2 if d else config.eval_windows,
                    final_windows=2 if d else (config.final_windows or None), probe_windows=2 if d else 16)
    if d:  # 2 steps of b windows and 2 + 2 evaluation windows, projected per window to the run's
        ev, n = time.perf_counter() - t0 - hist["train_seconds"], config.iterations // config.eval_every + 1
        windows = n * config.eval_windows + (config.final_windows or len(data.val) // config.context)
        d.parts.append({"part": f"{unit}: {config.iterations:,} training steps of {config.batch_size}x"
                        f"{config.context} characters + {n} evaluations", "dry_s": time.perf_counter() - t0,
                        "steps": config.iterations, "full": f"{config.iterations * config.batch_size:,} training and "
                                                            f"{windows:,} evaluation windows",
                        "projected_s": hist["train_seconds"] / (2 * b) * config.iterations * config.batch_size
                        + ev / 4 * windows})
    ok = hist["evals"] and not hist["diverged_at_step"]
    last = hist["evals"][-1] if ok else {"max_logit": [None], "rms": [None]}
    classes = {type(m).__name__ for m in model.modules()}
    return SeedResult({
        **a, "lr": lr, "rates": 1 + len(config.sweep_lrs), "unigram_entropy": data.unigram_entropy(),
        "uniform_loss": math.log(data.vocab_size), "max_attn_logit": max(last["max_logit"]) if ok else None,
        "rms": last["rms"], "loss_curve": curve(hist.pop("step_loss"), 80), **hist,
        "implementation": {"classes": sorted(c for c in classes if "Norm" in c or c.startswith("Dynamic")),
                           "group_channels": [], "layout": "[B, T, C], the norm over C"},
    }, data.variant)


def sweep_sensitivity(details: dict, arm: str) -> float | None:
    """`arm`'s LR sensitivity over the rates of its seed's sweep (None: not all of them ran on this seed)."""
    runs = [r for u, r in details["units"].items() if parse(u)["arm"] == arm and "skipped" not in r]
    if len(runs) < 2 or len(runs) != runs[0]["rates"]:
        return None
    return lr_sensitivity([r["val_loss"] for r in runs], runs[0]["uniform_loss"])


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for unit, r in details["units"].items():
        if "skipped" in r:
            continue
        out["unigram_entropy"] = r["unigram_entropy"]
        growth = r["rms"][-1] / r["rms"][0] if r["rms"][0] else None
        for k, v in (("val_loss", r["val_loss"]), ("tokens_per_s", r["tokens_per_s"]),
                     ("max_attn_logit", r["max_attn_logit"]), ("rms_growth", growth)):
            out[f"{k}/{unit}"] = v
    for arm in sorted({parse(u)["arm"] for u, r in details["units"].items() if parse(u)["lr"] and "skipped" not in r}):
        out[f"lr_sensitivity/{arm}"] = sweep_sensitivity(details, arm)
    return out


def report(record: dict) -> Report:
    c = record["config"]
    base, arms, details = c["baseline"], list(c["arms"]), seed_details(record)
    done = [a for a in arms if summary(record, f"val_loss/{a}").n]
    h1, part = summary(record, "unigram_entropy").mean, f"{c['final_windows']} windows of " if c["final_windows"] else ""
    has_rms = lambda d, arm: arm in d["units"] and None not in d["units"][arm].get("rms", [None])  # noqa: E731
    rows = []
    for arm in arms:
        v = judge(record, f"val_loss/{arm}", f"val_loss/{base}", direction="lower").difference
        vs = "baseline" if arm == base else "—" if v.mean is None else f"{v.mean:+.3f}" + (
            "" if v.low is None else f" ± {(v.high - v.low) / 2:.3f}")
        div = sum(1 for d in details if d["units"].get(arm, {}).get("diverged_at_step"))
        rows.append([arm, cell(record, f"val_loss/{arm}"), vs, cell(record, f"tokens_per_s/{arm}", 0),
                     cell(record, f"max_attn_logit/{arm}", 1), cell(record, f"rms_growth/{arm}", 2), div])
    table = Table(["arm", "val loss (nats/char)", "vs " + base, "tokens/s", "max attn logit", "RMS growth",
                   "diverged"], rows,
                  note=f"val loss: cross-entropy on {part}the validation split at the end, mean ± half-width of the "
                       f"95% interval over seeds; vs {base}: the paired difference (negative: lower loss). tokens/s: "
                       "training steps only. max attn logit: the largest q·k/√d of any layer and head on a fixed "
                       "validation batch at the end. RMS growth: the residual stream's RMS after the last block ÷ "
                       "after the first. diverged: seeds whose loss stopped being finite.")
    sweep_units = [u for u in record.get("units", []) if parse(u)["lr"]]
    lrs = sorted({c["lr"], *c["sweep_lrs"]})
    sweep_rows = []
    for arm in c["sweep_arms"]:
        key = parse(arm)["arm"]
        cells = [cell(record, f"val_loss/{arm if lr == c['lr'] else f'{arm}@lr={lr:g}'}") for lr in lrs]
        sweep_rows.append([arm, *cells, cell(record, f"lr_sensitivity/{key}")])
    sweep = Table(["arm", *(f"lr {lr:g}" for lr in lrs), "LR sensitivity"], sweep_rows,
                  note=f"Validation loss per peak learning rate; the larger rates ran on seeds "
                       f"{', '.join(map(str, c['sweep_seeds']))} only, so one value each, no interval. LR sensitivity "
                       "(Wortsman et al.): mean over the rates of min(loss, ln V) − the best loss.")
    notes = [f"TinyGPT, {c['num_layers']} layers of width {c['dim']} ({c['num_heads']} heads), context {c['context']}; "
             f"{c['iterations']:,} AdamW steps of {c['batch_size']} windows (peak lr {c['lr']:g}, {c['warmup_steps']} "
             f"warm-up steps unless @no-warmup, cosine to {c['min_lr_ratio']:g}x), tiny Shakespeare characters."]
    if h1 is not None and base in done:
        notes.append(f"Baseline validation loss: {base} {cell(record, f'val_loss/{base}')} nats/char; the unigram "
                     f"entropy of the text is {h1:.3f} (a model that ignores context), ln V = {math.log(65):.3f}.")
    if missing_units(record):
        notes.append("PARTIAL RECORD (saved unit by unit): " + partial_summary(
            record, lambda u: ("sweep" if parse(u)["lr"] else "main", u)))

    def losses(fig):
        bar_ax, curve_ax = fig.subplots(1, 2)
        s = [summary(record, f"val_loss/{a}") for a in done]
        bar_ax.barh(range(len(done)), [x.mean for x in s], xerr=interval_errors(s), color="C0")
        bar_ax.set_yticks(range(len(done)), done, fontsize=9)
        bar_ax.invert_yaxis()
        if h1 is not None:
            bar_ax.axvline(h1, color="k", ls=":", lw=1, label="unigram entropy")
            bar_ax.legend(fontsize=9, loc="lower right")
        lows = [x.mean for x in s] + ([h1] if h1 else [])
        bar_ax.set(xlabel="validation loss (nats/char)", xlim=(min(lows) - 0.2, max(lows) + 0.2) if lows else None)
        for k, arm in enumerate(a for a in done if not parse(a)["lr"]):
            runs = [d["units"][arm] for d in details if arm in d["units"]]
            bands(curve_ax, [[tuple(p) for p in r["loss_curve"]] for r in runs], label=arm, color=f"C{k % 10}", lw=1)
        curve_ax.set(xlabel="step", ylabel="training loss (nats/char)")
        if curve_ax.get_legend_handles_labels()[0]:  # beside the curves, not on them
            curve_ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

    def stability(fig):
        sweep_ax, rms_ax = fig.subplots(1, 2)
        for k, arm in enumerate(c["sweep_arms"]):
            pts = [(lr, summary(record, f"val_loss/{arm if lr == c['lr'] else f'{arm}@lr={lr:g}'}")) for lr in lrs]
            pts = [(lr, s.mean) for lr, s in pts if s.n]
            if pts:
                sweep_ax.plot(*zip(*pts), "o-", color=f"C{k}", label=arm)
        log_axis(sweep_ax, "x", ticks=lrs)
        sweep_ax.set(xlabel="peak learning rate", ylabel="validation loss (nats/char)")
        for k, arm in enumerate(a for a in ("pre-ln", "post-ln", "peri-ln", "pre-ln+qk") if a in done):
            for i, d in enumerate(x for x in details if has_rms(x, arm)):
                r = d["units"][arm]["rms"]
                rms_ax.plot(range(1, len(r) + 1), r, "o-", color=f"C{k}", lw=1, label=arm if i == 0 else None)
        rms_ax.set_yscale("log")
        rms_ax.set(xlabel="block", ylabel="residual-stream RMS at the end", xticks=range(1, c["num_layers"] + 1))
        for ax in (sweep_ax, rms_ax):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=9)

    figures = [Figure("Validation loss per arm (bar: mean over seeds, whisker: 95% interval; dotted: the unigram "
                      "entropy) and the training loss (line: mean over seeds; band: lowest to highest seed)",
                      losses, (12, 4.6)),
               Figure("Learning-rate sweep (one seed per point) and the residual stream's RMS after each block at "
                      "the end of training (one line per seed)", stability, (9, 3.4))]
    return Report(record, [table, sweep] if sweep_units else [table], figures, verdicts(record), notes)


EXPERIMENT = Experiment(
    name="transformer_norms",
    description="A tiny character-level GPT on tiny Shakespeare with every norm placement (Pre-, Post-, Peri-LN) and "
                "norm (LayerNorm, RMSNorm, zero-centred RMSNorm, DyT, Derf, none, QK-norm), with and without warm-up, "
                "and a learning-rate sweep: validation loss in nats per character, tokens/s, attention logits and "
                "the residual stream's RMS per layer.",
    configs=CONFIGS, run=None, metrics=metrics, report=report, units=units, run_unit=run_unit,
)
