r"""A one-cycle training loop for the experiments.

`fit` trains with SGD (Nesterov momentum) or Adam under
`torch.optim.lr_scheduler.OneCycleLR` — the total number of steps is computed here from
the loader and the epoch count — evaluates after every epoch, and logs the loss of every
step. On CUDA it uses bf16 autocast and channels_last (on the CPU, channels_last on request),
and the step loop never waits for the GPU: losses and correct counts stay on the device and are read once per epoch, where a
non-finite loss is detected. On the CPU, where reading a value costs nothing, the loop also
checks the loss every `check_every` steps to stop a diverged run early.

**Checkpoints.** With `checkpoint=path`, the model, optimizer, scheduler, RNG states and
history are saved after every epoch; `fit(..., checkpoint=path, resume=True)` continues
from the last one. Resuming needs the same schedule: a checkpoint made for another number of
epochs or steps per epoch is refused before anything changes (the one-cycle schedule cannot be
stretched mid-run), and `resume=True` without a checkpoint file is an error, not a silent fresh
start. The training batches of epoch $e$ depend only on the loader's seed and
$e$ (`DeviceBatches.set_epoch`), so on the CPU an interrupted run resumed from its
checkpoint reaches bitwise the same weights as an uninterrupted one.

A run whose loss stops being finite stops early and records where (`diverged_at_step`),
which is what a normalization that breaks down at a small batch does.

What `fit` changes: the model's parameters, buffers and `.grad` (it trains them), every submodule's
mode (`model.train()` at each epoch's start; the model ends in train mode) and the global random
generators (which a checkpoint saves and a resume restores). `evaluate` changes nothing: every
submodule's mode is restored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from ..progress import progress_enabled

__all__ = ["fit", "evaluate", "make_optimizer"]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean cross-entropy and accuracy over `batches`, in eval mode (running statistics).

    Every submodule's train/eval mode is restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    dev = torch.device(device)
    total, loss_sum, correct = 0, torch.zeros((), device=dev), torch.zeros((), device=dev, dtype=torch.long)
    for x, y in batches:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model(x)
        loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        total += len(y)
    for module, training in modes.items():
        module.training = training
    return {"loss": loss_sum.item() / total, "acc": correct.item() / total}


def make_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"fit: optimizer must be 'sgd' or 'adam', got {name!r}")


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
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    check_every: int | None = None,
    progress: bool | None = None,
    desc: str = "",
    before_eval: Callable[[nn.Module], Any] | None = None,
    on_step: Callable[[nn.Module, torch.Tensor, torch.Tensor, int], Any] | None = None,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """Train `model` for `epochs` passes over `train`; return its history.

    `train` and `test` are iterables of `(images, labels)` batches with a `len()`,
    e.g. `labnorm.data.DeviceBatches` (whose `set_epoch` is called when present). The
    history holds `step_loss` (every step), `epochs` (per-epoch train/test loss and
    accuracy, seconds, images per second), `lr` (per step) and `diverged_at_step`
    (None if the loss stayed finite). `before_eval(model)`, if given, runs after each epoch's
    training and before its test evaluation (e.g. `labnorm.finalize_batch_average`).
    `on_step(model, images, labels, step)`, if given, runs at every step after the backward pass
    and before the optimizer step (the gradients are in `.grad`; `step` counts from 0 over the
    whole run), e.g. to measure the loss landscape along training (`labnorm.landscape`).
    `channels_last` trains the model and its batches in that memory format (None: on CUDA only);
    the numbers are the same function either way, the speed is not (`labnorm.train.kernels`).
    """
    if epochs < 1:
        raise ValueError(f"fit: epochs must be >= 1, got {epochs}")
    if len(train) < 1:
        raise ValueError("fit: the training loader has no batches (len(train) == 0); check its size and batch_size")
    if not 0 < pct_start < 1 or pct_start * epochs * len(train) <= 1:
        raise ValueError(
            f"fit: the one-cycle warm-up needs more than one step: pct_start × epochs × steps per epoch = "
            f"{pct_start} × {epochs} × {len(train)} must be > 1 (and 0 < pct_start < 1); train longer or raise pct_start"
        )
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and (ckpt is None or not ckpt.is_file()):
        raise FileNotFoundError(
            f"fit: resume=True but there is no checkpoint at {ckpt}; pass the checkpoint= path an earlier "
            "run wrote, or resume=False to train from scratch"
        )
    dev = torch.device(device)
    # Early divergence checks read the loss on the host: every 50 steps on the CPU, never on CUDA.
    if check_every is None:
        check_every = 0 if dev.type == "cuda" else 50
    model.to(dev)
    if channels_last is None:
        channels_last = dev.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], optimizer, lr, momentum, weight_decay)
    steps_per_epoch = len(train)
    # One cycle over the whole run: warm up for `pct_start` of the steps, then anneal.
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=pct_start
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    show = progress_enabled() if progress is None else progress
    history: dict[str, Any] = {"step_loss": [], "lr": [], "epochs": [], "diverged_at_step": None}
    start_epoch = 0
    if resume:
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        # Checked before anything is loaded: the schedule the checkpoint continues must be this run's
        total = state["scheduler"].get("total_steps")
        if total != epochs * steps_per_epoch:
            made_for = state.get("epochs", total // steps_per_epoch if total and total % steps_per_epoch == 0 else None)
            raise ValueError(
                f"fit: the checkpoint {ckpt} continues a one-cycle schedule of {total} steps"
                + (f" ({made_for} epochs of {steps_per_epoch} steps)" if made_for else "")
                + f", this run has {epochs} epochs of {steps_per_epoch} steps ({epochs * steps_per_epoch}); "
                "resume with the checkpoint's epochs and batches, or start a new run with resume=False "
                "and another checkpoint path"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if dev.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], dev)
        history = state["history"]
        start_epoch = state["epoch"]
    step = len(history["step_loss"])
    for epoch in range(start_epoch, epochs):
        if history["diverged_at_step"] is not None:
            break
        model.train()
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        t0 = time.perf_counter()
        # Device-side accumulators: nothing in the step loop waits for the device.
        losses, lrs = [], []
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        bar = tqdm(train, total=steps_per_epoch, disable=not show, desc=f"{desc} epoch {epoch + 1}/{epochs}", leave=False)
        for i, (x, y) in enumerate(bar):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out = model(x)
                loss = criterion(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if on_step is not None:
                on_step(model, x, y, step + i)
            opt.step()
            lrs.append(sched.get_last_lr()[0])
            sched.step()
            losses.append(loss.detach())
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            # One host read every `check_every` steps to stop a diverged run (0: never).
            if check_every and (i + 1) % check_every == 0 and not torch.isfinite(loss).item():
                break
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        epoch_losses = torch.stack(losses).float().tolist() if losses else []
        finite = [v for v in epoch_losses if v == v and abs(v) != float("inf")]
        if len(finite) < len(epoch_losses):
            history["diverged_at_step"] = step + len(finite)
        history["step_loss"] += epoch_losses
        history["lr"] += lrs
        step += len(epoch_losses)
        record = {
            "epoch": epoch + 1,
            "train_loss": sum(epoch_losses) / max(len(epoch_losses), 1),
            "train_acc": correct.item() / max(seen, 1),
            "seconds": seconds,
            "images_per_s": seen / seconds if seconds > 0 else float("nan"),
        }
        if test is not None and history["diverged_at_step"] is None:
            if before_eval is not None:
                before_eval(model)
            ev = evaluate(model, test, dev)
            record.update(test_loss=ev["loss"], test_acc=ev["acc"])
        history["epochs"].append(record)
        if ckpt is not None:
            _save_checkpoint(ckpt, model, opt, sched, history, epoch + 1, dev, epochs)
    return history


def _save_checkpoint(path: Path, model, opt, sched, history, epoch: int, dev: torch.device, epochs: int) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        "history": history,
        "epoch": epoch,
        "epochs": epochs,  # the run it belongs to: a resume must ask for the same
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    # Atomic replace: an interruption while saving leaves the previous checkpoint intact.
    tmp.replace(path)
