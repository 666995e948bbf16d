r"""Helpers the experiments share: data subsets, one training run as a record, the LR range test,
curves for plotting, where a run blows up, and the dry run.

Every training run of every experiment goes through `train_run`: seed, build, train with
`labnorm.train.fit` on the same data order for the seed, and return the run's labels, per-epoch
log, loss curve and final figures — so the runs of all experiments have the same fields.

**Dry run.** `dry_run(name, "gpu")` runs an experiment's `run()` with its real config, models and
data pipeline inside `labnorm.train.dry.dry_mode()`, where every `train_run` and `range_test`
stops after 2 timed training steps and 1 timed evaluation batch, and projects the full run by
the rule stated in `labnorm.train.dry`. No record is written.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
from torch import nn

from ..data import CIFAR10Split, DeviceBatches, load_cifar10, scaled_subset
from ..train.dry import TimedBatches, dry, dry_batch, dry_mode, timed_call
from ..train.fit import fit
from ..train.kernels import describe_norms, prefer_channels_last, use_torch_kernels
from ..train.lr_finder import LRFinder, first_divergence

__all__ = ["cifar_subsets", "train_run", "curve", "subsample", "range_test", "blow_up_step", "never_learned", "EVAL_BATCH", "dry_run",
           "format_dry_run", "implementation_line"]

# Test batches are evaluated 500 images at a time (eval mode: the batch size changes nothing).
EVAL_BATCH = 500


def cifar_subsets(n_train: int, n_test: int, seed: int) -> tuple[CIFAR10Split, CIFAR10Split]:
    """Class-balanced subsets of CIFAR-10's train and test splits (the whole split when n ≥ its size).

    In a dry run with `images`, each is cut to at most that many; the real size is remembered."""
    out, d = [], dry()
    for split, n in (("train", n_train), ("test", n_test)):
        full = load_cifar10(split)
        part = scaled_subset(full, min(n, d.images) if d and d.images else n, seed)
        if d is not None:
            d.sizes[id(part.labels)] = min(n, len(full))
        out.append(part)
    return out[0], out[1]


def train_run(
    build: Callable[[], nn.Module], train: CIFAR10Split, test: CIFAR10Split, *, batch_size: int, seed: int,
    device: torch.device, epochs: int, lr: float, labels: dict[str, Any],
    prepare: Callable[[nn.Module], Any] | None = None, keep_first_steps: int = 0, keep_lr: bool = False,
    torch_kernels: bool = True, channels_last: bool | None = None, **fit_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Seed, `build()` the model, `prepare(model)` (e.g. an init), train it; return (model, run record).

    The data order depends only on `seed`, so two arms with the same seed see the same batches.
    The record holds `labels`, the per-epoch log, a downsampled loss curve, the step count,
    `diverged_at_step` (a non-finite loss), `blow_up_step` (`blow_up_step` on the step losses),
    the final test accuracy and loss (None when the run diverged) and the seconds it took; with
    `keep_first_steps`, the loss of the first steps unsmoothed, and with `keep_lr` the schedule.

    **Implementation.** With `torch_kernels` (the default) the labnorm layers proven equal to a torch
    layer run torch's kernel (`labnorm.train.kernels.use_torch_kernels`, after `prepare`), and
    `channels_last` (None: `prefer_channels_last`) picks the memory format. The record's
    `implementation` says what ran: the swaps, the normalization classes, the channels per group of
    every group norm and the memory format.
    """
    d, t_build = dry(), time.perf_counter()
    torch.manual_seed(seed)
    model = build()
    if prepare is not None:
        prepare(model.to(device))
    swapped = use_torch_kernels(model) if torch_kernels else {}
    if channels_last is None:
        channels_last = prefer_channels_last(model, device)
    implementation = {"torch_kernels": swapped, **describe_norms(model), "channels_last": channels_last}
    t0 = time.perf_counter()
    train_batches = DeviceBatches(train, dry_batch(batch_size), train=True, device=device, seed=seed)
    test_batches = DeviceBatches(test, dry_batch(EVAL_BATCH), train=False, device=device)
    if d is not None:  # a dry run: 2 timed steps and 1 timed evaluation batch, one epoch
        train_batches, test_batches = TimedBatches(train_batches, d.steps, device), TimedBatches(test_batches, 1, device)
        once = [t0 - t_build]
        if fit_kwargs.get("before_eval") is not None:
            fit_kwargs["before_eval"] = timed_call(fit_kwargs["before_eval"], once, device, epochs)
    hist = fit(
        model, train_batches, test_batches, epochs=1 if d is not None else epochs, lr=lr, device=device,
        desc=" ".join(f"{v}" for v in labels.values()), channels_last=channels_last, **fit_kwargs,
    )
    if d is not None:
        n_train, n_test = d.sizes.get(id(train.labels), len(train)), d.sizes.get(id(test.labels), len(test))
        steps = n_train // batch_size
        d.add(" ".join(f"{v}" for v in labels.values()), train_batches, test_batches, sum(once),
              images=epochs * steps * batch_size, eval_images=epochs * n_test, steps=epochs * steps,
              full=f"{epochs} epochs x {steps} steps of {batch_size} + {epochs} x {n_test} test images")
    last = hist["epochs"][-1]
    run = {
        **labels,
        "epochs": hist["epochs"],
        "loss_curve": curve(hist["step_loss"]),
        "steps": len(hist["step_loss"]),
        "diverged_at_step": hist["diverged_at_step"],
        "blow_up_step": blow_up_step(hist["step_loss"]),
        "final_test_acc": last.get("test_acc"),
        "final_test_loss": last.get("test_loss"),
        "seconds": time.perf_counter() - t0,
        "implementation": implementation,
    }
    if keep_first_steps:
        run["first_steps_loss"] = hist["step_loss"][:keep_first_steps]
    if keep_lr:
        run["lr"] = subsample(hist["lr"])
    return model, run


def curve(values: list[float], points: int = 120) -> list[list[float]]:
    """Downsample a per-step log to at most `points` (step, mean over the chunk) pairs for plotting."""
    n = len(values)
    if n == 0:
        return []
    edges = [round(i * n / points) for i in range(points + 1)] if n > points else list(range(n + 1))
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            chunk = values[a:b]
            out.append([b, sum(chunk) / len(chunk)])
    return out


def subsample(values: list[float], points: int = 200) -> list[float]:
    """Every k-th value, so that about `points` remain."""
    return values[:: max(1, len(values) // points)]


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, batches, *, start_lr: float, end_lr: float,
               num_iter: int, step_mode: str, smooth_f: float, diverge_th: float, device: torch.device) -> dict:
    """One LR range test (`labnorm.LRFinder`) with the given settings: the smoothed curve, the
    steepest-descent suggestion, the lowest point, where it stopped and the seconds it took."""
    finder = LRFinder(model, optimizer, nn.CrossEntropyLoss(), device=device)
    d, full_iter = dry(), num_iter
    if d is not None:  # a dry run: 2 timed steps of at most `d.batch` images
        batches, num_iter = TimedBatches(batches, d.steps, device, keep=d.batch), d.steps
    t0 = time.perf_counter()
    hist = finder.range_test(batches, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, step_mode=step_mode,
                             smooth_f=smooth_f, diverge_th=diverge_th)
    if d is not None:
        d.add(f"range test, batch {batches.batch}", batches, None, 0.0, images=full_iter * batches.batch,
              eval_images=0, steps=full_iter, full=f"{full_iter} steps of {batches.batch} (fewer if it diverges)")
    lowest = min(range(len(hist["loss"])), key=lambda k: hist["loss"][k])
    return {"lr": hist["lr"], "loss": hist["loss"],
            "suggested_lr": finder.suggest(skip_start=min(10, len(hist["lr"]) // 5), skip_end=5),
            "lowest_loss": hist["loss"][lowest], "lowest_loss_lr": hist["lr"][lowest],
            "stopped_at": len(hist["lr"]), "seconds": time.perf_counter() - t0}


def never_learned(runs: list[dict[str, Any]], classes: int = 10, tol: float = 0.01) -> bool:
    """True when there are runs and in every one the recorded training loss stayed within `tol` of
    ln(classes), the loss of a uniform guess: the run never started learning (distinct from blowing up)."""
    return bool(runs) and all(max(abs(v - math.log(classes)) for _, v in r["loss_curve"]) < tol for r in runs)


def blow_up_step(losses: list[float], factor: float = 4.0, smooth_f: float = 0.05, warmup: int = 10) -> int | None:
    """First step (1-based) where a training run's smoothed loss exceeds `factor` × its best so far
    (from step `warmup` on), or is not finite: the LR range test's divergence rule
    (`labnorm.train.lr_finder.DivergenceRule`) applied to training; None if it never fires."""
    return first_divergence(losses, smooth_f=smooth_f, threshold=factor, warmup=warmup)


def dry_run(name: str, scale: str = "gpu", *, device: str | None = None, images: int | None = None,
            batch: int | None = None) -> dict[str, Any]:
    """Dry-run experiment `name` at `scale` (seed 0; see the module doc); write nothing; return what
    it measured: the parts, the projected seconds of one seed, the dry run's own seconds and peak memory."""
    from .runner import default_device, get

    exp = get(name)
    dev = torch.device(device) if device else default_device()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    with dry_mode(images, batch) as d:
        torch.manual_seed(0)
        exp.run(exp.config(scale), 0, dev)
    wall = time.perf_counter() - t0
    if dev.type == "cuda":
        peak, what = torch.cuda.max_memory_allocated(dev), "torch.cuda.max_memory_allocated"
    else:  # Linux reports ru_maxrss in KiB (`resource` is POSIX-only: imported here, not at import time)
        import resource

        peak, what = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS of the whole process (CPU)"
    return {"experiment": name, "scale": scale, "device": str(dev), "batch_cap": batch, "image_cap": images,
            "parts": d.parts, "projected_s": sum(p["projected_s"] for p in d.parts), "dry_s": wall,
            "peak_memory_bytes": peak, "peak_memory": what}


def format_dry_run(result: dict[str, Any]) -> str:
    """The dry run's lines: one per part (dry step times, what the full run does, its projection)."""
    lines = [f"dry run of {result['experiment']} at {result['scale']} scale on {result['device']}"
             + (f", at most {result['batch_cap']} images per step" if result["batch_cap"] else "")]
    for p in result["parts"]:
        if "step_s" in p:
            steps = ", ".join(f"{s:.3f}" for s in p["step_s"])
            ev = f"; eval batch {p['eval_s']:.3f} s ({p['eval_images']} images)" if p["eval_s"] is not None else ""
            lines.append(f"  {p['part']}: steps {steps} s ({p['step_images']} images){ev}; full: {p['full']} "
                         f"-> {p['projected_s'] / 60:.1f} min")
        else:
            lines.append(f"  {p['part']}: {p['dry_s']:.3f} s; full: {p['full']} -> {p['projected_s'] / 60:.1f} min")
    lines.append(f"projected full run, one seed, on this device: {result['projected_s'] / 60:.1f} min "
                 "(per-image time of the last dry step x images trained + eval batch per image x images "
                 "evaluated, plus the other parts scaled linearly; an estimate)")
    lines.append(f"peak memory: {result['peak_memory_bytes'] / 2**30:.2f} GiB ({result['peak_memory']}); "
                 f"this dry run took {result['dry_s']:.1f} s")
    return "\n".join(lines)


def _runs_with_implementation(tree: Any):
    """Every training run (a dict with an `implementation`) anywhere in a seed's details."""
    if isinstance(tree, dict):
        if "implementation" in tree:
            yield tree
        else:
            for v in tree.values():
                yield from _runs_with_implementation(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _runs_with_implementation(v)


def implementation_line(record: dict[str, Any]) -> str:
    """What ran, per norm, as the runs recorded it (`labnorm.experiments.common.train_run`): the
    normalization classes (a torch class: its kernel ran in place of labnorm's proven-equal layer), the
    channels per group of any group norm, and the memory format."""
    described: dict[str, str] = {}
    for seed in record["seeds"]:
        for run in _runs_with_implementation(record["per_seed"][str(seed)]["details"]):
            impl = run["implementation"]
            parts = [", ".join(impl["classes"]) or "no normalization layer"]
            if impl["group_channels"]:
                parts.append("groups of " + "/".join(map(str, impl["group_channels"])) + " channels")
            parts.append(impl.get("layout") or ("channels_last" if impl["channels_last"] else "NCHW"))
            described.setdefault(str(run.get("norm", "model")), "; ".join(parts))
    if not described:
        return ("implementation: labnorm's own layers, NCHW — these runs do not record it (LR range tests, and training "
                "runs saved before runs recorded it; those also used `gn` with gcd(C, 32) groups: one channel per group "
                "in 16-channel layers)")
    return "implementation: " + " | ".join(f"{norm}: {what}" for norm, what in described.items())
