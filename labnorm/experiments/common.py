r"""Helpers the experiments share: data subsets, one training run as a record, the LR range test,
curves for plotting, and where a run blows up.

Every training run of every experiment goes through `train_run`: seed, build, train with
`labnorm.train.fit` on the same data order for the seed, and return the run's labels, per-epoch
log, loss curve and final figures — so the runs of all experiments have the same fields.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from ..data import CIFAR10Split, DeviceBatches, load_cifar10, scaled_subset
from ..train.fit import fit
from ..train.lr_finder import LRFinder, first_divergence

__all__ = ["cifar_subsets", "train_run", "curve", "subsample", "range_test", "blow_up_step", "EVAL_BATCH"]

# Test batches are evaluated 500 images at a time (eval mode: the batch size changes nothing).
EVAL_BATCH = 500


def cifar_subsets(n_train: int, n_test: int, seed: int) -> tuple[CIFAR10Split, CIFAR10Split]:
    """Class-balanced subsets of CIFAR-10's train and test splits (the whole split when n ≥ its size)."""
    return scaled_subset(load_cifar10("train"), n_train, seed), scaled_subset(load_cifar10("test"), n_test, seed)


def train_run(
    build: Callable[[], nn.Module], train: CIFAR10Split, test: CIFAR10Split, *, batch_size: int, seed: int,
    device: torch.device, epochs: int, lr: float, labels: dict[str, Any],
    prepare: Callable[[nn.Module], Any] | None = None, keep_first_steps: int = 0, keep_lr: bool = False,
    **fit_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Seed, `build()` the model, `prepare(model)` (e.g. an init), train it; return (model, run record).

    The data order depends only on `seed`, so two arms with the same seed see the same batches.
    The record holds `labels`, the per-epoch log, a downsampled loss curve, the step count,
    `diverged_at_step` (a non-finite loss), `blow_up_step` (`blow_up_step` on the step losses),
    the final test accuracy and loss (None when the run diverged) and the seconds it took; with
    `keep_first_steps`, the loss of the first steps unsmoothed, and with `keep_lr` the schedule.
    """
    torch.manual_seed(seed)
    model = build()
    if prepare is not None:
        prepare(model.to(device))
    t0 = time.perf_counter()
    hist = fit(
        model,
        DeviceBatches(train, batch_size, train=True, device=device, seed=seed),
        DeviceBatches(test, EVAL_BATCH, train=False, device=device),
        epochs=epochs, lr=lr, device=device, desc=" ".join(f"{v}" for v in labels.values()), **fit_kwargs,
    )
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
    t0 = time.perf_counter()
    hist = finder.range_test(batches, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, step_mode=step_mode,
                             smooth_f=smooth_f, diverge_th=diverge_th)
    lowest = min(range(len(hist["loss"])), key=lambda k: hist["loss"][k])
    return {"lr": hist["lr"], "loss": hist["loss"],
            "suggested_lr": finder.suggest(skip_start=min(10, len(hist["lr"]) // 5), skip_end=5),
            "lowest_loss": hist["loss"][lowest], "lowest_loss_lr": hist["lr"][lowest],
            "stopped_at": len(hist["lr"]), "seconds": time.perf_counter() - t0}


def blow_up_step(losses: list[float], factor: float = 4.0, smooth_f: float = 0.05, warmup: int = 10) -> int | None:
    """First step (1-based) where a training run's smoothed loss exceeds `factor` × its best so far
    (from step `warmup` on), or is not finite: the LR range test's divergence rule
    (`labnorm.train.lr_finder.DivergenceRule`) applied to training; None if it never fires."""
    return first_divergence(losses, smooth_f=smooth_f, threshold=factor, warmup=warmup)
