r"""The learning-rate range test (Smith, [Cyclical Learning Rates](https://arxiv.org/abs/1506.01186), 2017).

Train for `num_iter` steps while the learning rate grows from `start_lr` to `end_lr`,
exponentially ($\eta_i = \eta_0 (\eta_{end}/\eta_0)^{i/(n-1)}$) or linearly, and record the
loss of every step. The loss first barely moves, then falls steeply, then explodes; a good
maximum learning rate for one-cycle training sits in the steep part.

The recorded loss is smoothed exponentially, $\bar L_i = f L_i + (1 - f)\bar L_{i-1}$ with
$f$ = `smooth_f`, and the test stops once $\bar L_i > $ `diverge_th` $\cdot \min_{j \le i} \bar L_j$
(or the loss is not finite). That rule is `DivergenceRule`, which the experiments also apply
to training runs to find where a run blows up (`first_divergence`).
This loop follows torch-lr-finder's (`LRFinder.range_test`): on the same model, data order
and seed the two give the same curve (tested).

Unlike torch-lr-finder, the model, the optimizer and the RNG state are restored by
`range_test` itself when it ends — normally, after divergence, or on an exception — so the
test never leaves a half-trained model behind: parameters, buffers, every submodule's
train/eval mode, every parameter's `.grad` (`None` stays `None`), the optimizer's state and the
CPU and CUDA random generators. Only `history` changes.

`suggest()` returns the learning rate at the steepest descent of the smoothed loss against
$\log \eta$ (the most negative $d\bar L / d\log\eta$, by central differences with
`numpy.gradient`), ignoring non-finite points; `skip_start`/`skip_end` drop the noisy ends.
It is a heuristic starting point, not an optimum: one-cycle schedules usually take a max
learning rate a little below the point where the loss turns up.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

__all__ = ["LRFinder", "DivergenceRule", "first_divergence"]


class DivergenceRule:
    r"""The range test's stopping rule, one loss at a time.

    `update(loss)` smooths the loss ($\bar L_i = f L_i + (1 - f)\bar L_{i-1}$, $f$ = `smooth_f`,
    $\bar L_0 = L_0$), returns the smoothed value and sets `diverged` once
    $\bar L_i >$ `threshold` $\cdot \min_{j \le i} \bar L_j$ — from step `warmup` on — or once the
    loss is not finite (at any step).
    """

    def __init__(self, smooth_f: float = 0.05, threshold: float = 5.0, warmup: int = 0) -> None:
        if not 0 <= smooth_f < 1:
            raise ValueError(f"DivergenceRule: smooth_f must be in [0, 1), got {smooth_f}")
        if threshold <= 1:
            raise ValueError(f"DivergenceRule: threshold must be > 1, got {threshold}")
        self.smooth_f, self.threshold, self.warmup = smooth_f, threshold, warmup
        self.step, self.value, self.best, self.diverged = 0, None, math.inf, False

    def update(self, loss: float) -> float:
        # Smooth over the smoothed history (torch-lr-finder's recurrence)
        value = loss if self.value is None or self.smooth_f == 0 else (
            self.smooth_f * loss + (1 - self.smooth_f) * self.value)
        self.value = value
        self.best = min(self.best, value)
        # A NaN compares False, so a non-finite loss is caught by the isfinite check
        if not math.isfinite(value) or (self.step >= self.warmup and value > self.threshold * self.best):
            self.diverged = True
        self.step += 1
        return value


def first_divergence(losses: Iterable[float], smooth_f: float = 0.05, threshold: float = 4.0,
                     warmup: int = 10) -> int | None:
    """The first step (1-based) at which `DivergenceRule` fires on a training run's losses, or None."""
    rule = DivergenceRule(smooth_f, threshold, warmup)
    for i, loss in enumerate(losses):
        rule.update(loss)
        if rule.diverged:
            return i + 1
    return None


class LRFinder:
    """`LRFinder(model, optimizer, criterion, device=None)`; then `range_test(...)`, `history`,
    `suggest()`, `plot()`."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, criterion: Callable, device: str | None = None
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.criterion = criterion
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.history: dict[str, list[float]] = {"lr": [], "loss": []}

    def range_test(
        self,
        loader: Iterable,
        start_lr: float | None = None,
        end_lr: float = 10.0,
        num_iter: int = 100,
        step_mode: str = "exp",
        smooth_f: float = 0.05,
        diverge_th: float = 5.0,
    ) -> dict[str, list[float]]:
        """Run the test; return (and keep in `history`) the learning rates and smoothed losses.

        `loader` is cycled when it runs out before `num_iter` batches.
        """
        if step_mode not in ("exp", "linear"):
            raise ValueError(f"LRFinder: step_mode must be 'exp' or 'linear', got {step_mode!r}")
        if not 0 <= smooth_f < 1:
            raise ValueError(f"LRFinder: smooth_f must be in [0, 1), got {smooth_f}")
        if num_iter < 2:
            raise ValueError(f"LRFinder: num_iter must be at least 2, got {num_iter}")
        # Everything the test changes, saved first and restored in `finally`.
        saved = {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            # Each submodule's own mode (a frozen BN inside a training model stays frozen)
            "modes": {m: m.training for m in self.model.modules()},
            "grads": {p: None if p.grad is None else p.grad.clone() for p in self.model.parameters()},
        }
        self.history = {"lr": [], "loss": []}
        try:
            self._run(loader, start_lr, end_lr, num_iter, step_mode, smooth_f, diverge_th)
        finally:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng_cpu"])
            if saved["rng_cuda"] is not None:
                torch.cuda.set_rng_state_all(saved["rng_cuda"])
            for module, training in saved["modes"].items():
                module.training = training
            for p, grad in saved["grads"].items():
                p.grad = grad
        return self.history

    def _run(self, loader, start_lr, end_lr, num_iter, step_mode, smooth_f, diverge_th) -> None:
        groups = self.optimizer.param_groups
        if start_lr:
            for g in groups:
                g["lr"] = start_lr
        base = [g["lr"] for g in groups]
        batches = iter(loader)
        rule = DivergenceRule(smooth_f, diverge_th)
        self.model.train()
        for i in range(num_iter):
            # The learning rate of step i: $r = i / (n - 1)$ of the way from start to end
            r = i / (num_iter - 1)
            for g, b in zip(groups, base):
                g["lr"] = b * (end_lr / b) ** r if step_mode == "exp" else b + r * (end_lr - b)
            try:
                x, y = next(batches)
            except StopIteration:  # cycle the loader
                batches = iter(loader)
                x, y = next(batches, (None, None))
                if x is None:
                    raise ValueError("LRFinder.range_test: the loader yielded no batches; pass a loader "
                                     "(or list) of at least one (inputs, targets) batch") from None
            x, y = x.to(self.device), y.to(self.device)
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            self.history["lr"].append(groups[0]["lr"])
            # Smoothed loss $\bar L_i = f L_i + (1-f) \bar L_{i-1}$; stop once it diverges
            self.history["loss"].append(rule.update(loss.item()))
            if rule.diverged:
                break

    def suggest(self, skip_start: int = 10, skip_end: int = 5) -> float | None:
        """The learning rate of steepest descent of the smoothed loss against log lr (see module doc)."""
        lrs = np.asarray(self.history["lr"], dtype=float)
        losses = np.asarray(self.history["loss"], dtype=float)
        end = len(lrs) - skip_end if skip_end else len(lrs)
        lrs, losses = lrs[skip_start:end], losses[skip_start:end]
        keep = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
        lrs, losses = lrs[keep], losses[keep]
        if len(lrs) < 3:
            return None
        slope = np.gradient(losses, np.log(lrs))
        return float(lrs[int(np.argmin(slope))])

    def plot(self, ax: Any = None, skip_start: int = 10, skip_end: int = 5, log_lr: bool = True, suggest: bool = True):
        """Loss against learning rate, with the suggested learning rate marked."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        end = len(self.history["lr"]) - skip_end if skip_end else None
        ax.plot(self.history["lr"][skip_start:end], self.history["loss"][skip_start:end])
        if log_lr:
            ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="smoothed loss")
        lr = self.suggest(skip_start, skip_end) if suggest else None
        if lr is not None:
            ax.axvline(lr, color="tab:red", ls="--", label=f"steepest descent: {lr:.2g}")
            ax.legend()
        return ax
