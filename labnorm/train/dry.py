r"""Dry runs: every training loop cut to 2 timed steps, and the full run projected from them.

A dry run answers "will the full-size run work here, and how long will it take?" without
running it. Inside `dry_mode()`, the experiments' training loops (`labnorm.experiments.common`'s
`train_run` and `range_test`) build the real models and the real data pipeline, but stop after
2 training steps and 1 evaluation batch, wrapped in `TimedBatches`, which times each step.
Whatever else an experiment does (loss-landscape slices, GAN reconstructions) it cuts down
itself with `dry_cut` and times in `dry_part`.

**The projection is a rule, not a measurement.** For one seed,

$$T \approx \sum_{\text{arms}} \Big( t^{\text{img}}_{\text{train}} \cdot \text{images trained}
  + t^{\text{img}}_{\text{eval}} \cdot \text{images evaluated} + t_{\text{once}} \Big)
  + \sum_{\text{other parts}} t_{\text{dry}} \cdot \frac{\text{full units}}{\text{dry units}}$$

- $t^{\text{img}}_{\text{train}}$: the time of the **last** dry step ÷ its images (the first step
  also pays for allocation and lazy initialization); images trained = epochs × steps per epoch ×
  batch (a range test: its steps × batch, an upper bound since it may stop early);
- $t^{\text{img}}_{\text{eval}}$: the evaluation batch's time ÷ its images; images evaluated =
  epochs × test images;
- $t_{\text{once}}$: building and preparing the model (e.g. a data-dependent init), plus
  epochs × the `before_eval` hook's time;
- other parts: the cut-down block's time, scaled linearly by its units (e.g. loss evaluations ×
  images).

Left out: hooks that fire every k-th step (`on_step` probes), early stops, and the speed-up a
device gets from larger batches than the dry run used. Time per image is the rule at any batch,
which is what makes a smaller dry batch (`batch=`, for a quick check on a CPU) honest to first
order: a CPU's throughput barely depends on the batch, a GPU's grows with it, so a projection
from a cut batch overestimates a GPU. With `images=N`, each `cifar_subsets` split is cut to N
images (for tests); the projection still counts the real split.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

__all__ = ["DryRun", "dry_mode", "dry", "dry_batch", "dry_cut", "dry_part", "TimedBatches", "timed_call"]


@dataclass
class DryRun:
    """The state of one dry run (see the module doc): its caps and the parts it timed."""

    images: int | None = None
    batch: int | None = None
    steps: int = 2
    parts: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)  # id(split.labels) -> the real split's size

    def add(self, part: str, train: "TimedBatches", test: "TimedBatches | None", once: float, *, images: int,
            eval_images: int, steps: int, full: str) -> None:
        """Record one arm: the per-image time of its last step (and of its eval batch), projected."""
        times, evals = train.seconds(), test.seconds() if test is not None else []
        per_image = times[-1] / train.images[-1] if times else float("nan")
        eval_per_image = evals[0] / test.images[0] if evals else 0.0
        self.parts.append({"part": part, "step_s": times, "step_images": train.images[-1] if times else 0,
                           "eval_s": evals[0] if evals else None, "eval_images": test.images[0] if evals else 0,
                           "once_s": once, "full": full, "steps": steps,
                           "projected_s": per_image * images + eval_per_image * eval_images + once})


_ACTIVE: list[DryRun] = []


def dry() -> DryRun | None:
    """The dry run in progress, or None (a normal run)."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def dry_mode(images: int | None = None, batch: int | None = None) -> Iterator[DryRun]:
    """Within this block every `train_run` and `range_test` is a dry run (see the module doc)."""
    if batch is not None and batch < 2:
        raise ValueError(f"dry_mode: batch must be >= 2 (batch statistics need two images), got {batch}")
    state = DryRun(images, batch)
    _ACTIVE.append(state)
    try:
        yield state
    finally:
        _ACTIVE.remove(state)


def dry_batch(n: int) -> int:
    """`n`, or at most the dry run's `batch`."""
    d = dry()
    return n if d is None or d.batch is None else min(n, d.batch)


def dry_cut(config: Any, **fields: Any) -> Any:
    """`config` in a normal run; in a dry run, a copy with `fields` replaced (the cut-down sizes)."""
    return config if dry() is None else dataclasses.replace(config, **fields)


@contextmanager
def dry_part(part: str, full_units: float, dry_units: float, device: torch.device,
             steps: int | None = None) -> Iterator[None]:
    """Time the block in a dry run and project it linearly: seconds × full_units / dry_units.
    `steps`: how many steps (device round trips: iterations, evaluation batches) the full block takes."""
    d = dry()
    if d is None:
        yield
        return
    _sync(device)
    t0 = time.perf_counter()
    yield
    _sync(device)
    seconds = time.perf_counter() - t0
    d.parts.append({"part": part, "dry_s": seconds, "full": f"{full_units:,.0f} units, {dry_units:,.0f} in the dry run",
                    "projected_s": seconds * full_units / dry_units, "steps": steps})


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class TimedBatches:
    """The first `steps` batches of `batches`, each cut to at most `keep` images, timed: one step is
    the time from a batch's request to the next request (or to `seconds()`). Its `len()` is that of
    `batches`, so a loop sizes its schedule for the real epoch."""

    def __init__(self, batches: Any, steps: int, device: torch.device, keep: int | None = None) -> None:
        self.batches, self.steps, self.device, self.keep = batches, steps, device, keep
        self.marks: list[float] = []
        self.images: list[int] = []
        self.batch = 0  # images per batch before the cut

    def __len__(self) -> int:
        # The real length: a training loop sizes its schedule for the full epoch (a one-cycle
        # warm-up of a 2-step epoch would be undefined) and simply sees the batches end early.
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def _mark(self) -> None:
        _sync(self.device)
        self.marks.append(time.perf_counter())

    def __iter__(self):
        it = iter(self.batches)
        for _ in range(min(self.steps, len(self.batches))):
            self._mark()
            x, y = next(it)
            self.batch = len(y)
            x, y = (x[: self.keep], y[: self.keep]) if self.keep else (x, y)
            self.images.append(len(y))
            yield x, y
        self._mark()

    def seconds(self) -> list[float]:
        if len(self.marks) == len(self.images):  # the consumer did not ask for another batch
            self._mark()
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def timed_call(fn: Callable, once: list[float], device: torch.device, times: int) -> Callable:
    # A per-epoch hook (`before_eval`): its dry time counts `times` times in the projection
    def call(*args: Any) -> Any:
        _sync(device)
        t0 = time.perf_counter()
        out = fn(*args)
        _sync(device)
        once.append((time.perf_counter() - t0) * times)
        return out

    return call
