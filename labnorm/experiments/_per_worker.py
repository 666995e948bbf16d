"""Helpers of the experiments that compare norms at per-worker batches (`norm_zoo_cifar`): which norms take
per-worker statistics, when a norm is the same computation at every per-worker batch, and the figure of test
accuracy against the per-worker batch."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch

from .._norm_batch import has_norm_batch, set_norm_batch
from ..models import build_model
from ..batch_renorm import renorm_schedule
from ..train.fast import normalize, step_time_ratio
from ..train.kernels import use_torch_kernels
from ..weight_norm import data_dependent_init
from . import fast_cifar
from .report import bands
from .runner import summary, values

# The figure's panels, by what a norm takes its statistics over (the name before any ':')
FAMILIES = {"batch statistics": ("bn", "brn", "gbn", "ws+bn", "bcn", "ws+bcn", "sn", "evob0", "wn+mobn"),
            "per-sample statistics": ("gn", "ws+gn", "ln", "ln2d", "in", "rms", "frn", "evos0", "grn"),
            "no statistics": ("wn", "dyt", "none")}


@functools.lru_cache(maxsize=None)
def per_worker(norm: str) -> bool:
    """Whether `norm`'s statistics are the ones `labnorm.set_norm_batch` sets per worker."""
    return has_norm_batch(build_model("fast_cifar", norm, width=0.125))


def virtual_batch(norm: str) -> int | None:
    """Ghost BN's virtual batch (the registry's default: 32); None for any other norm."""
    return int(norm.partition(":")[2] or 32) if norm.startswith("gbn") else None


def same_at(batch_sizes: Sequence[int], norm: str, b: int) -> bool:
    """Whether `norm` at per-worker batch `b` is the same computation as at the full batch, `max(batch_sizes)`."""
    vb = virtual_batch(norm)
    return b == max(batch_sizes) or (not per_worker(norm) and (vb is None or vb <= b))


def accuracy_by_batch(record: dict, norms: Sequence[str], batches: Sequence[int], base: str, seeds: int):
    """The figure function: test accuracy against the per-worker batch, one panel per family of `FAMILIES`, a line
    per norm (mean over seeds, band from the lowest to the highest seed), `base` dotted in the panels without it."""
    def draw(fig):
        families = {f: kinds for f, kinds in FAMILIES.items() if any(n.split(":")[0] in kinds for n in norms)}
        axes = fig.subplots(1, len(families), sharey=True, squeeze=False)[0]
        for ax, (family, kinds) in zip(axes, families.items()):
            for k, n in enumerate(n for n in norms if n.split(":")[0] in kinds):
                xs = [b for b in batches if summary(record, f"test_acc/{n}/b{b}").n]
                per_seed = [[v and 100 * v for v in values(record, f"test_acc/{n}/b{b}")] for b in xs]
                if xs:
                    bands(ax, [[(b, vals[i]) for b, vals in zip(xs, per_seed)] for i in range(seeds)],
                          label=n, marker="o", ms=3, color=f"C{k}")
            if base not in kinds:
                ax.plot(batches, [100 * (summary(record, f"test_acc/{base}/b{b}").mean or float("nan")) for b in batches],
                        "k:", label=base)
            ax.set_xscale("log", base=2)
            ax.set(title=family, xlabel="per-worker batch", xticks=batches, xticklabels=[str(b) for b in batches])
            ax.legend(fontsize=9)
        axes[0].set_ylabel("test accuracy (%)")
    return draw


def step_ratio(config, norm: str, norm_batch: int | None, seed: int, train, device: torch.device,
               bf16: bool) -> tuple[float, float]:
    """Step time of a fresh net of `norm` ÷ a fresh net of the config's baseline, both at per-worker batch
    `norm_batch` (where each takes per-worker statistics), on the first `batch_size` training images
    (`labnorm.train.fast.step_time_ratio`: interleaved, a same-moment ratio); and the norm's seconds per step."""
    def net(name):
        torch.manual_seed(seed)
        m = build_model(config.model, name, width=config.width)
        if norm_batch and per_worker(name):
            set_norm_batch(m, norm_batch)
        use_torch_kernels(m)
        return m
    x, y = normalize(train.images[:config.batch_size].to(device)), train.labels[:config.batch_size].to(device)
    return step_time_ratio(net(norm), net(config.baseline), x, y, bf16=bf16, steps=config.timing_steps,
                           rounds=config.timing_rounds)


def prepare(config, norm: str, tags: set[str], seed: int, device: torch.device):
    """What `train_fast` does to a unit's net before training (`tags`: its variant's, e.g. {'no-warmup', 'div-only'}):
    Batch Renorm's compressed warm-up, but in a 'no-warmup' unit; WN's data-dependent init in a 'data-init' unit."""
    if norm.startswith("brn") and "no-warmup" not in tags and config.brn_schedule:
        steps = math.ceil(config.epochs * (config.train_images // config.batch_size))
        return lambda m: renorm_schedule(m, steps, config.brn_schedule)
    if "data-init" in tags:  # the first training images of the seed's split, unaugmented
        images = fast_cifar.train_split(config, seed).images[:config.init_images]
        return lambda m: data_dependent_init(m, normalize(images.to(device)))
    return None
