r"""Per-worker ("micro-batch") batch statistics: the `norm_batch` argument of every batch-dependent layer.

The papers that study normalization at small batches (Group Norm, Weight Standardization, FRN)
vary the batch **per worker**: 8 GPUs each normalize their own $b$ images while SGD averages the
gradient over all of them. One process reproduces that by cutting its batch of $N$ samples into
$N/b$ groups of $b$ *consecutive* samples and taking the batch statistics of each group by
itself. For a batch-dependent layer with `norm_batch=b`, group $j$ holds samples
$jb \ldots jb + b - 1$, and BN's statistics become, per group and channel,

$$\mu_{j,c} = \frac{1}{bHW}\sum_{n \in B_j}\sum_{h,w} x_{n,c,h,w}, \qquad
  \sigma^2_{j,c} = \frac{1}{bHW}\sum_{n \in B_j}\sum_{h,w} (x_{n,c,h,w} - \mu_{j,c})^2$$

each sample being normalized with its own group's. Nothing else changes: the parameters are
shared, and every gradient is that of the $N/b$ replicas summed — the layer computes exactly what
$N/b$ copies of itself (`norm_batch=None`) would on their own groups (the float64 tests in
`tests/test_norm_batch.py` check forward, every gradient and the running statistics).

**Running statistics** are updated once per step, by the mean over the groups of what each
replica would have tracked — as if the replicas' running statistics were averaged after the step,
as a data-parallel job that averages its buffers does. For BN, with $k = N/b$ groups:

$$\hat\mu_c \leftarrow (1 - m)\,\hat\mu_c + m\,\frac{1}{k}\sum_j \mu_{j,c}, \qquad
  \hat\sigma^2_c \leftarrow (1 - m)\,\hat\sigma^2_c + m\,\frac{1}{k}\sum_j \frac{bHW}{bHW - 1}\,\sigma^2_{j,c}$$

(each group's *unbiased* variance, with its own count $bHW$). Ghost BN
(`labnorm.GhostBatchNorm2d`) normalizes the same way but takes $k$ sequential steps instead.

`norm_batch=None` (the default) is the whole batch, computed by exactly the code that ran before
`norm_batch` existed. Eval mode with running statistics does not use batch statistics, so
`norm_batch` plays no part there; where a layer uses batch statistics in eval mode too (BN with
`track_running_stats=False`, Switchable Norm while `finalize_batch_average` pools), they are taken
per group as in training.

**How it is computed** — vectorized, no loop over groups: $[N, C, H, W]$ is viewed (not copied) as
$[N/b, b, C, H, W]$, and the reductions that ran over $(N, H, W)$ run over $(b, H, W)$ — dims
$(1, 3, 4)$ — giving statistics of shape $[N/b, 1, C, 1, 1]$ that broadcast over their group
(`batch_groups`); the running statistics take their mean over dim 0 (`mean_over_groups`).

**Bad input** (`ValueError`, naming the layer and both numbers): a `norm_batch` that is not a
positive int (at construction, in `set_norm_batch`); a batch that $b$ does not divide; a group
with one value per channel in training ($bHW = 1$: its variance is undefined); an empty batch in
training (no group at all).

`set_norm_batch(model, b)` sets `b` on every layer of a model that has a `norm_batch` attribute.

**Against the real thing.** `labnorm.distributed` runs `torch.nn.parallel.DistributedDataParallel` on
CPU processes and shows this simulation equal to it — outputs, gradients, parameters — and where the
running statistics differ: DDP keeps rank 0's by default, the simulation the mean over the groups
(`tests/test_distributed.py`); it also trains data-parallel under `torchrun`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["check_norm_batch", "batch_groups", "check_group_values", "mean_over_groups", "ungroup", "set_norm_batch", "has_norm_batch"]


def check_norm_batch(layer: str, norm_batch: int | None) -> int | None:
    """`norm_batch` if it is `None` or a positive int; a `ValueError` naming `layer` otherwise."""
    if norm_batch is not None and (isinstance(norm_batch, bool) or not isinstance(norm_batch, int) or norm_batch < 1):
        raise ValueError(f"{layer}: norm_batch must be a positive int (samples per group) or None "
                         f"(the whole batch), got {norm_batch!r}")
    return norm_batch


def batch_groups(layer: str, x: torch.Tensor, norm_batch: int | None) -> tuple[torch.Tensor, tuple[int, ...]]:
    r"""`x` $[N, C, *]$ shaped for per-group batch statistics, and the dims they reduce over.

    `None`: `(x, (0, 2, 3, ...))` — the whole batch, `x` itself. `b`: `(x` viewed as
    $[N/b, b, C, *]$`, (1, 3, 4, ...))` — statistics computed over those dims with `keepdim=True`
    have shape $[N/b, 1, C, 1, \ldots]$ and broadcast over their group; a per-channel vector shaped
    $[1, C, 1, \ldots]$ broadcasts over the view as over `x`. `reshape(x.shape)` undoes the view.
    """
    if norm_batch is None:
        return x, (0, *range(2, x.dim()))
    check_norm_batch(layer, norm_batch)
    n = x.shape[0]
    if n % norm_batch:
        raise ValueError(f"{layer}: norm_batch={norm_batch} does not divide the batch of {n} samples "
                         f"(input shape {tuple(x.shape)}); use a batch that is a multiple of norm_batch")
    # $[N, C, *] \to [N/b, b, C, *]$: a view, splitting the batch dim (any memory format)
    return x.reshape(n // norm_batch, norm_batch, *x.shape[1:]), (1, *range(3, x.dim() + 1))


def check_group_values(layer: str, x: torch.Tensor, norm_batch: int | None) -> None:
    r"""Refuse groups of one value per channel ($b \cdot HW = 1$) when their variance is needed.

    An empty batch (N = 0) is refused too: it has no group, and the mean over no groups of the running
    statistics' step would make them NaN. A no-op for `norm_batch=None` (each layer has its own
    whole-batch check)."""
    if norm_batch is None:
        return
    if x.shape[0] == 0:
        raise ValueError(
            f"{layer}: an empty batch (N = 0, input shape {tuple(x.shape)}) has no group of norm_batch={norm_batch} "
            "samples to take batch statistics from in training (the running statistics would become NaN); "
            "skip empty batches"
        )
    spatial = math.prod(x.shape[2:])
    if norm_batch * spatial <= 1:
        raise ValueError(
            f"{layer}: norm_batch={norm_batch} leaves {norm_batch * spatial} value per channel in each group "
            f"({norm_batch} sample(s) x {spatial} position(s), input shape {tuple(x.shape)}); a group needs "
            "more than 1 value per channel for its variance in training"
        )


def mean_over_groups(stat: torch.Tensor, norm_batch: int | None) -> torch.Tensor:
    """A per-group statistic $[N/b, 1, C, \\ldots]$ averaged over the groups, $[1, C, \\ldots]$ (unchanged for `None`)."""
    return stat if norm_batch is None else stat.mean(0)


def ungroup(stat: torch.Tensor, n: int, norm_batch: int | None) -> torch.Tensor:
    r"""A per-group statistic $[N/b, 1, C, \ldots]$ repeated for each sample of its group, $[N, C, \ldots]$
    (unchanged for `None`, where it is $[1, C, \ldots]$ and broadcasts over the batch)."""
    if norm_batch is None:
        return stat
    return stat.expand(n // norm_batch, norm_batch, *stat.shape[2:]).reshape(n, *stat.shape[2:])


def set_norm_batch(model: nn.Module, norm_batch: int | None) -> int:
    """Set `norm_batch` on every batch-dependent layer of `model` (every module with a `norm_batch`
    attribute) and return how many it set; `None` restores whole-batch statistics.

    A layer that holds another (Batch-Channel Norm's batch part) is set once, through the outer layer.

    Raises:
        ValueError: `norm_batch` not a positive int or None; a model with no such layer (a model of
            batch-independent norms, or only of layers that batch their statistics their own way, as
            `torch.nn.BatchNorm2d` and `labnorm.GhostBatchNorm2d`).
    """
    check_norm_batch("set_norm_batch", norm_batch)
    done: list[str] = []
    for name, module in model.named_modules():
        # Inside a layer already set (BCN's `bn`): the outer layer passed it on
        if any(name.startswith(f"{outer}.") or outer == "" for outer in done):
            continue
        if hasattr(module, "norm_batch"):
            module.norm_batch = norm_batch
            done.append(name)
    if not done:
        raise ValueError(f"set_norm_batch: {type(model).__name__} has no batch-dependent layer with a norm_batch "
                         "attribute (BatchNorm2d, BatchRenorm2d, BatchChannelNorm2d, SwitchNorm2d, EvoNorm2dB0, "
                         "MeanOnlyBatchNorm)")
    return len(done)


def has_norm_batch(model: nn.Module) -> bool:
    """Whether `model` has a layer whose batch statistics `set_norm_batch` can set per worker."""
    return any(hasattr(m, "norm_batch") for m in model.modules())
