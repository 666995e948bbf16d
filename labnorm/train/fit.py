r"""A one-cycle training loop for the experiments.

`fit` trains with SGD (Nesterov momentum) or Adam under
`torch.optim.lr_scheduler.OneCycleLR` — the total number of steps is computed
here from the loader and the epoch count — evaluates after every epoch, logs the
loss of every step, and stops early (recording where) when the loss stops being
finite, which is what a normalization that breaks down at small batch does.
On CUDA it uses bf16 autocast and channels_last.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Iterable

import torch
from torch import nn
from tqdm import tqdm

__all__ = ["fit", "evaluate", "progress_enabled"]


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal, never under CI or in saved notebook outputs."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean cross-entropy and accuracy over `batches`, in eval mode (running statistics)."""
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    total, loss_sum, correct = 0, 0.0, 0
    for x, y in batches:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model(x)
        loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return {"loss": loss_sum / total, "acc": correct / total}


def fit(
    model: nn.Module,
    train: Any,
    test: Any | None = None,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.0,
    pct_start: float = 0.25,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
    desc: str = "",
) -> dict[str, Any]:
    """Train `model` for `epochs` passes over `train`; return its history.

    `train` and `test` are iterables of `(images, labels)` batches with a `len()`,
    e.g. `labnorm.data.DeviceBatches`. The history holds `step_loss` (every step),
    `epochs` (per-epoch train/test loss and accuracy, seconds, images per second)
    and `diverged_at_step` (None if the loss stayed finite).
    """
    dev = torch.device(device)
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"fit: optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    steps_per_epoch = len(train)
    # One cycle over the whole run: warm up for `pct_start` of the steps, then anneal.
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=pct_start
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    show = progress_enabled() if progress is None else progress
    history: dict[str, Any] = {"step_loss": [], "epochs": [], "diverged_at_step": None}
    step = 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        bar = tqdm(train, total=steps_per_epoch, disable=not show, desc=f"{desc} epoch {epoch + 1}/{epochs}", leave=False)
        for x, y in bar:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out = model(x)
                loss = criterion(out.float(), y)
            value = loss.item()
            history["step_loss"].append(value)
            if not math.isfinite(value):
                history["diverged_at_step"] = step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            seen += len(y)
            loss_sum += value * len(y)
            correct += (out.argmax(1) == y).sum().item()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "seconds": seconds,
            "images_per_s": seen / seconds if seconds > 0 else float("nan"),
        }
        if test is not None and history["diverged_at_step"] is None:
            ev = evaluate(model, test, dev)
            record.update(test_loss=ev["loss"], test_acc=ev["acc"])
        history["epochs"].append(record)
        if history["diverged_at_step"] is not None:
            break
    return history
