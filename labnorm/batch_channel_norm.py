r"""# Batch-Channel Normalization

Batch-Channel Normalization (BCN, Qiao et al., [Micro-Batch Training with Batch-Channel
Normalization and Weight Standardization](https://arxiv.org/abs/1903.10520)) is batch norm
followed by a channel (group) norm:

$$\dot x = \gamma^{b}_c \frac{x - \hat\mu_c}{\hat\sigma_c} + \beta^{b}_c, \qquad
  y_{n,g} = \gamma^{c}_g \, \frac{\dot x_{n,g} - \mu_{n,g}}{\sqrt{\sigma^2_{n,g} + \epsilon}} + \beta^{c}_g$$

The batch part uses information from the whole batch (which keeps the network away from
elimination singularities, the paper argues); the channel part makes every sample's groups
well-scaled however small the batch. As in the official repository, the channel part has one
affine pair per *group* (parameters `weight`, `bias` of shape $[1, G, 1]$) and the batch part is
`bn` — so the official checkpoints' keys load as they are.

The batch part comes in two forms:

* `estimate=False` (the official default): an ordinary `BatchNorm2d` with batch statistics in
  training. At initialization BCN then equals `BatchNorm2d` followed by `GroupNorm`.
* `estimate=True`: the paper's micro-batch setting, where $\hat\mu, \hat\sigma$ are *estimates*
  used in training and eval alike (`EstimatedBatchNorm2d`). Two ways to update them exist:
  - `"official"` (the official `EstBN`): $\hat\mu \leftarrow (1-r)\hat\mu + r\,\bar x$ and
    $\hat\sigma^2 \leftarrow (1-r)\hat\sigma^2 + r\,\overline{(x - \hat\mu_{old})^2}$ — the
    variance is centred on the *previous* running mean; the rate $r$ is the buffer
    `estbn_moving_speed` (here initialized to `momentum`; the official code starts it at 0 and
    lets the training script set it);
  - `"labml"` (labml's `EstimatedBatchNorm`): the batch's own biased variance, centred on the
    batch mean, with rate `momentum`.

  Both then normalize with the freshly updated estimates; gradients do not flow through them.

**Per-worker statistics** (`norm_batch=b`, see `labnorm._norm_batch`): the batch part takes its
statistics over each group $B_j$ of $b$ consecutive samples by itself, as $N/b$ workers would
($\mu_{j,c} = \frac{1}{bHW}\sum_{B_j,h,w} x$ and likewise the variance); the channel part is per
sample and unchanged. `BatchChannelNorm2d.norm_batch` is its batch part's. The running statistics take
one step, by the mean over the groups of what each worker's copy would have tracked:
$\hat\mu \leftarrow (1-m)\hat\mu + m\,\overline{\mu_j}$ (and each group's unbiased variance, for
`BatchNorm2d`). With `estimate=True` each worker updates the estimates from the shared old ones with its
own group, $\hat\mu_j = (1-r)\hat\mu + r\,\bar x_{B_j}$, normalizes its group with them, and the estimates
kept are $\overline{\hat\mu_j}$ — for `"official"` that is the whole-batch update (the variance is centred
on the old estimate, so it averages exactly); for `"labml"` the mean of the groups' biased variances,
smaller than the batch's. Vectorized over $[N/b, b, C, H, W]$; a batch $b$ does not divide: `ValueError`.

Edge cases: an empty batch (N = 0) in training is refused by the batch part (`BatchNorm2d` or
`EstimatedBatchNorm2d`) with a `ValueError` that names `BatchChannelNorm2d` first, then the part
(torch has no BCN; its `BatchNorm2d` returns an empty output there), and gives an empty output in
eval mode; half-precision input — and a half-precision module (`.half()`, `.to(torch.bfloat16)`) —
gets float32 statistics and comes back in its own dtype, as from torch's norm layers; so does bf16
autocast. Every error of the batch part, at construction or in forward, names `BatchChannelNorm2d`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._norm_batch import batch_groups, check_norm_batch, mean_over_groups
from .batch_norm import BatchNorm2d, GroupNorm

__all__ = ["BatchChannelNorm2d", "EstimatedBatchNorm2d"]


class EstimatedBatchNorm2d(nn.Module):
    r"""Batch norm with estimated statistics in training and eval (see the module docstring)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, variant: str = "official",
                 norm_batch: int | None = None) -> None:
        super().__init__()
        self.norm_batch = check_norm_batch("EstimatedBatchNorm2d", norm_batch)
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"EstimatedBatchNorm2d: num_features must be a positive int, got {num_features!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EstimatedBatchNorm2d: momentum must be in [0, 1], got {momentum!r}")
        if variant not in ("official", "labml"):
            raise ValueError(f"EstimatedBatchNorm2d: variant must be 'official' or 'labml', got {variant!r}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.variant = variant
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        # The official name of the update rate, kept so its checkpoints load
        self.register_buffer("estbn_moving_speed", torch.tensor([float(momentum)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"EstimatedBatchNorm2d: expected an input [N, {self.num_features}, H, W], got shape {tuple(x.shape)}"
            )
        view = (1, -1, 1, 1)
        out_dtype = x.dtype
        # Statistics in at least float32 (half-precision input is upcast, the output cast back)
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if self.training and x.shape[0] == 0:
            raise ValueError("EstimatedBatchNorm2d: an empty batch (N = 0) in training has no statistics "
                             "(the running estimates would become NaN); skip empty batches")
        if self.training and self.norm_batch is not None:
            # Per-worker groups: each group of $b$ samples updates the old estimates with its own statistics
            # and is normalized with its updated copy; the buffers keep the mean of the copies
            xg, dims = batch_groups("EstimatedBatchNorm2d", x, self.norm_batch)
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                rm, rv = self.running_mean.view(view), self.running_var.view(view)
                if self.variant == "official":
                    r = self.estbn_moving_speed.to(x.dtype)
                    batch_mean = xg.mean(dims, keepdim=True)
                    centred_var = (xg - rm).pow(2).mean(dims, keepdim=True)
                else:
                    r = self.momentum
                    centred_var, batch_mean = torch.var_mean(xg, dim=dims, correction=0, keepdim=True)
                # $\hat\mu_j = (1 - r)\hat\mu + r\,\bar x_{B_j}$ and likewise the variance: $[N/b, 1, C, 1, 1]$
                mean_g, var_g = rm * (1 - r) + batch_mean * r, rv * (1 - r) + centred_var * r
                self.running_mean.copy_(mean_over_groups(mean_g, self.norm_batch).flatten())
                self.running_var.copy_(mean_over_groups(var_g, self.norm_batch).flatten())
            x_hat = (xg - mean_g) / torch.sqrt(var_g + self.eps)
            return (self.weight.view(view) * x_hat + self.bias.view(view)).reshape(x.shape).to(out_dtype)
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                dims = (0, 2, 3)
                if self.variant == "official":
                    # (a tensor, not `float()`: under `torch.compile` a float would be frozen at trace time,
                    # and the official training script changes this rate as it trains)
                    r = self.estbn_moving_speed.to(x.dtype)
                    batch_mean = x.mean(dims)
                    # Centred on the running mean *before* this update
                    centred_var = (x - self.running_mean.view(view)).pow(2).mean(dims)
                    self.running_mean.mul_(1 - r).add_(batch_mean * r)
                    self.running_var.mul_(1 - r).add_(centred_var * r)
                else:
                    r = self.momentum
                    var, batch_mean = torch.var_mean(x, dim=dims, correction=0)
                    self.running_mean.mul_(1 - r).add_(batch_mean, alpha=r)
                    self.running_var.mul_(1 - r).add_(var, alpha=r)
        # Normalize with the (just updated) estimates, then the per-channel affine
        x_hat = (x - self.running_mean.view(view)) / torch.sqrt(self.running_var.view(view) + self.eps)
        return (self.weight.view(view) * x_hat + self.bias.view(view)).to(out_dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, variant={self.variant!r}"
                + ("" if self.norm_batch is None else f", norm_batch={self.norm_batch}"))


class BatchChannelNorm2d(nn.Module):
    r"""Batch norm, then channel (group) norm with one affine pair per group (see the module docstring).

    Args:
        num_channels: $C$.
        num_groups: $G$, must divide $C$ (32 as in the paper).
        eps: of both parts.
        momentum: of the batch part (torch's convention; the estimates' rate when `estimate`).
        estimate: use estimated statistics in the batch part (`EstimatedBatchNorm2d`).
        estimate_variant: `"official"` or `"labml"`, when `estimate`.
        norm_batch: the batch part's statistics over groups of this many samples (`None`: the whole
            batch); the attribute `norm_batch` reads and sets the batch part's.
    """

    def __init__(
        self, num_channels: int, num_groups: int = 32, eps: float = 1e-5, momentum: float = 0.1,
        estimate: bool = False, estimate_variant: str = "official", norm_batch: int | None = None,
    ) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups != 0:
            raise ValueError(
                f"BatchChannelNorm2d: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.num_channels = num_channels
        self.num_groups = num_groups
        self.eps = eps
        self.estimate = estimate
        try:
            self.bn = (EstimatedBatchNorm2d(num_channels, eps, momentum, estimate_variant, norm_batch=norm_batch)
                       if estimate else BatchNorm2d(num_channels, eps=eps, momentum=momentum, norm_batch=norm_batch))
        except ValueError as e:
            # A bad argument of the batch part is the user's argument of this layer: name this layer
            raise ValueError(f"BatchChannelNorm2d: {e}") from None
        # Channel part: group norm without its per-channel affine (no parameters, no state-dict keys) ...
        self.channel_norm = GroupNorm(num_groups, num_channels, eps=eps, affine=False)
        # ... and one affine pair per group instead, shaped to broadcast over [N, G, C/G·H·W]
        self.weight = nn.Parameter(torch.ones(1, num_groups, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_groups, 1))

    @property
    def norm_batch(self) -> int | None:
        """The batch part's `norm_batch` (per-worker statistics; `None`: the whole batch)."""
        return self.bn.norm_batch

    @norm_batch.setter
    def norm_batch(self, value: int | None) -> None:
        self.bn.norm_batch = check_norm_batch("BatchChannelNorm2d", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"BatchChannelNorm2d: expected an input [N, {self.num_channels}, H, W], got shape {tuple(x.shape)}"
            )
        # Channel part: each (sample, group) normalized, then the per-group affine
        # (row length spelled out: with N = 0 a `-1` cannot be inferred; the output is then empty)
        try:
            z = self.bn(x)
        except ValueError as e:
            # The batch part's refusal (one value per channel or an empty batch in training, a batch that
            # norm_batch does not divide) names the layer the user built, then the part that refused
            raise ValueError(f"BatchChannelNorm2d (its batch part): {e}") from None
        rows = self.channel_norm(z).reshape(x.shape[0], self.num_groups, math.prod(x.shape[1:]) // self.num_groups)
        # (the input's dtype back, as BatchNorm2d and GroupNorm return it)
        return (self.weight * rows + self.bias).reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, num_groups={self.num_groups}, eps={self.eps}, estimate={self.estimate}"
