r"""# Batch Normalization and Group Normalization, from scratch

[Batch Normalization](https://arxiv.org/abs/1502.03167) (Ioffe & Szegedy, 2015)
normalizes every channel of a convolutional feature map with statistics taken
over the batch and the spatial positions; [Group Normalization](https://arxiv.org/abs/1803.08494)
(Wu & He, 2018) takes them over groups of channels of *one* sample instead, so
it does not care how large the batch is. The notebook
`notebooks/01_batch_and_group_norm` builds both line by line and trains them at
batch sizes 2, 8 and 64.

For an input $x$ of shape $[N, C, H, W]$, batch norm computes, per channel $c$,

$$\mu_c = \frac{1}{NHW}\sum_{n,h,w} x_{n,c,h,w} \qquad
  \sigma^2_c = \frac{1}{NHW}\sum_{n,h,w} (x_{n,c,h,w} - \mu_c)^2$$

$$y_{n,c,h,w} = \gamma_c \frac{x_{n,c,h,w} - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c$$

The variance used to normalize is the *biased* one (divide by $NHW$), and
$\epsilon$ sits inside the square root, as in the paper and in `torch.nn.BatchNorm2d`.
For inference the layer keeps running estimates, updated in every training step with
the weight `momentum` $m$ on the new batch (PyTorch's convention; Keras' `momentum`
is $1 - m$):

$$\hat\mu_c \leftarrow (1 - m)\,\hat\mu_c + m\,\mu_c \qquad
  \hat\sigma^2_c \leftarrow (1 - m)\,\hat\sigma^2_c + m\,\frac{NHW}{NHW - 1}\sigma^2_c$$

The running variance is the *unbiased* estimate, again as in torch. With
`momentum=None` the update is a cumulative average: $m = 1/t$ at step $t$.

Group norm splits the $C$ channels into $G$ groups and normalizes each (sample,
group) over its $C/G$ channels and all positions; the affine $\gamma, \beta$ stay
per channel. $G = 1$ is layer norm over $(C, H, W)$; $G = C$ is instance norm.

## Per-worker statistics: `norm_batch`

`BatchNorm2d(C, norm_batch=b)` takes its batch statistics over each group of $b$ consecutive
samples $B_j$ by itself, as $N/b$ workers of $b$ images would (the GN paper's batch "per GPU"):

$$\mu_{j,c} = \frac{1}{bHW}\sum_{n \in B_j}\sum_{h,w} x_{n,c,h,w}, \qquad
  \sigma^2_{j,c} = \frac{1}{bHW}\sum_{n \in B_j}\sum_{h,w} (x_{n,c,h,w} - \mu_{j,c})^2,$$

each sample normalized with its group's, and the running statistics stepped once by the mean over
the groups: $\hat\mu \leftarrow (1-m)\hat\mu + m\,\overline{\mu_j}$,
$\hat\sigma^2 \leftarrow (1-m)\hat\sigma^2 + m\,\overline{\sigma^2_j}\,\frac{bHW}{bHW-1}$. The input is
viewed as $[N/b, b, C, H, W]$ and reduced over $(b, H, W)$ — no loop over groups
(`labnorm._norm_batch`, which every batch-dependent layer shares). `None`, the default, is the whole
batch; in eval mode with running statistics `norm_batch` plays no part. `labnorm.set_norm_batch(model, b)`
sets it on every batch-dependent layer of a model. A batch that $b$ does not divide, or $bHW = 1$ in
training, is refused with a `ValueError`. `labnorm.GhostBatchNorm2d` computes the same output but steps
its running statistics once per group.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._norm_batch import batch_groups, check_group_values, check_norm_batch, mean_over_groups

__all__ = ["BatchNorm2d", "GroupNorm", "NormState"]

# Half-precision inputs get their statistics in float32: a bf16 mean of
# thousands of values loses most of its digits.
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _in_compute_dtype(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A half-precision parameter or buffer `t` cast to the computation dtype (float32 for a half input).

    A module converted with `.half()` or `.to(torch.bfloat16)` holds half-precision parameters while its
    statistics run in float32; torch's fused kernels (`layer_norm`, `batch_norm`) take float32 input only
    with float32 parameters, so those are cast for the call (the cast is differentiable: gradients reach
    the half-precision parameters). Other dtypes are returned as they are.
    """
    return t.to(dtype) if t is not None and t.dtype in _LOW_PRECISION and t.dtype != dtype else t


def _channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Shape a per-channel vector $[C]$ as $[1, C, 1, \\ldots]$ to broadcast over an `ndim` input."""
    return t.reshape(1, -1, *([1] * (ndim - 2)))


def _shifted_var_mean(x: torch.Tensor, dim: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Biased variance and mean of `x - s` over `dim`, where $s$ is one sample of each slice.

    Returns `(var, mean_of_shifted, s)`. Variance and normalized output do not depend on
    the constant $s$, but rounding does: for float32 data with mean 100 and std 0.01,
    $x - s$ is exact (the values are close), its mean is tiny and exact to float32
    precision, and $(x - s) - \bar{(x - s)}$ keeps every significant digit. Unshifted,
    the mean rounds at 100's float32 spacing ($7.6 \cdot 10^{-6}$, 0.08% of the std).
    """
    # $s$: the first element of every slice, kept with size-1 dims for broadcasting
    index = tuple(slice(0, 1) if d in dim else slice(None) for d in range(x.dim()))
    s = x[index].detach()
    if x.numel() == 0:
        # An empty batch: statistics of the right (empty or broadcastable) shape, without torch's warning
        # that an empty reduction has no degrees of freedom; the output they normalize is empty
        zero = (x - s).sum(dim=dim, keepdim=True)
        return zero, zero, s
    var, mean = torch.var_mean(x - s, dim=dim, correction=0, keepdim=True)
    return var, mean, s


def _check_channels(layer: str, x: torch.Tensor, channels: int, expected_rank: str) -> None:
    """A clear error for input whose channel dimension (dim 1) is not the layer's."""
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer}: expected {channels} channels in dim 1 of a {expected_rank} input, "
            f"got {x.shape[1]} (input shape {tuple(x.shape)})"
        )


class NormState(nn.Module):
    r"""What the batch-statistics layers share with `torch.nn.BatchNorm2d`: the per-channel
    $\gamma, \beta$ (with `affine`) and the running estimates (with `track_running_stats`), under
    torch's names, so that a torch checkpoint loads as it is. Used by `BatchNorm2d`,
    `labnorm.InstanceNorm2d` and `labnorm.GhostBatchNorm2d`; each validates its own arguments.
    """

    def _init_state(self, num_features: int, eps: float, momentum: float | None, affine: bool,
                    track_running_stats: bool, device, dtype) -> None:
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        factory = {"device": device, "dtype": dtype}
        # $\gamma$ starts at 1 and $\beta$ at 0: at initialization the layer only normalizes.
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        # Running estimates start at the statistics of a standard normal input.
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)


class BatchNorm2d(NormState):
    r"""Batch normalization over $[N, C, H, W]$, a drop-in for `torch.nn.BatchNorm2d`.

    Same arguments, buffers and state-dict keys as torch, so a torch checkpoint
    loads as it is.

    Args:
        num_features: $C$, the number of channels.
        eps: added to the variance inside the square root.
        momentum: weight of the new batch in the running statistics; `None` for a
            cumulative average.
        affine: learn a per-channel scale $\gamma$ (`weight`) and shift $\beta$ (`bias`).
        track_running_stats: keep running statistics and use them in eval mode;
            without them the batch statistics are used in eval mode too.
        norm_batch: batch statistics over groups of this many consecutive samples (per-worker
            statistics, see the module docstring); `None`, the default, for the whole batch.
            Not in the state dict: a setting of the training run, like `momentum`.

    Raises:
        ValueError: input that is not 4-D, has the wrong channel count, or has one
            value per channel in training (its variance would be meaningless; an empty
            batch included — where torch's `BatchNorm2d` returns an empty output and leaves its
            running statistics alone). In eval mode an empty batch gives an empty output. With
            `norm_batch`: a value that is not a positive int, a batch it does not divide, or
            groups of one value per channel in training.

    Half-precision input, a half-precision module (`.half()`, `.to(torch.bfloat16)`) and bf16
    autocast: statistics in float32, output in the input's dtype (as torch).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        norm_batch: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"BatchNorm2d: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1] or None, got {momentum!r}")
        self._init_state(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.norm_batch = check_norm_batch("BatchNorm2d", norm_batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"BatchNorm2d: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}"
            )
        _check_channels("BatchNorm2d", x, self.num_features, "[N, C, H, W]")
        # Statistics in at least float32 (bf16/fp16 inputs are upcast, then cast back at the end).
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        # Batch statistics in training, and in eval mode when no running statistics are kept.
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            b = self.norm_batch
            if self.training:
                check_group_values("BatchNorm2d", x, b)
            # The batch, or its groups of $b$ samples: $[N/b, b, C, H, W]$ reduced over $(b, H, W)$
            xg, dims = batch_groups("BatchNorm2d", xs, b)
            # Number of values behind each channel's statistics: $NHW$ (or $bHW$ per group)
            count = x.numel() // self.num_features if b is None else b * x.shape[2] * x.shape[3]
            if self.training and count <= 1:
                raise ValueError(
                    "BatchNorm2d: expected more than 1 value per channel when training, "
                    f"got input of shape {tuple(x.shape)}"
                )
            # $\mu_c$ and the biased $\sigma^2_c$ over $(N, H, W)$ (per group: $\mu_{j,c}$, $\sigma^2_{j,c}$),
            # computed on $x - s$ for accuracy
            var, mean, shift = _shifted_var_mean(xg, dim=dims)
            if self.training and self.track_running_stats:
                # One step, towards the mean over the groups of each group's statistics
                self._update_running_stats(
                    mean_over_groups(mean + shift, b).flatten(), mean_over_groups(var, b).flatten(), count
                )
            # $x - \mu = (x - s) - (\mu - s)$, in the grouped view
            centred = (xg - shift) - mean
        else:
            var = _channel_view(self.running_var, 4)
            centred = xs - _channel_view(self.running_mean, 4)
        # $1 / \sqrt{\sigma^2 + \epsilon}$, per channel
        inv_std = torch.rsqrt(var + self.eps)
        if not self.affine:
            # $\hat{x} = (x - \mu) / \sqrt{\sigma^2 + \epsilon}$
            y = centred * inv_std
        else:
            # $y = \gamma \hat{x} + \beta = \beta + (x - \mu) \cdot \gamma / \sqrt{\sigma^2 + \epsilon}$:
            # fold $\gamma$ into the per-channel scale, then one fused multiply-add over the input.
            # (Folding $\mu$ into the shift too would save one more pass, but $x \cdot s - \mu s$
            # cancels catastrophically when the mean is large and the spread small.)
            scale = _channel_view(self.weight, 4) * inv_std
            y = torch.addcmul(_channel_view(self.bias, 4), centred, scale)
        # (from the grouped view back to $[N, C, H, W]$; a no-op for the whole batch)
        return y.reshape(x.shape).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        self.num_batches_tracked.add_(1)
        # $m$, or $1/t$ for the cumulative average — kept a tensor: `float()` of a buffer would be read
        # once when `torch.compile` traces the layer and frozen into the graph
        m = self.momentum
        if m is None:
            m = 1.0 / self.num_batches_tracked.to(self.running_mean.dtype)
        # Bessel's correction: the running variance is the unbiased estimate.
        unbiased = var * (count / (count - 1))
        # $\hat\mu \leftarrow (1 - m)\hat\mu + m\mu$, and likewise for the variance
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype) * m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype) * m)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
            + ("" if self.norm_batch is None else f", norm_batch={self.norm_batch}")
        )


class GroupNorm(nn.Module):
    r"""Group normalization, a drop-in for `torch.nn.GroupNorm`.

    Channels are split into $G$ groups; each sample is normalized over its group:

    $$\hat{x}_{n,g} = \frac{x_{n,g} - \mu_{n,g}}{\sqrt{\sigma^2_{n,g} + \epsilon}}, \qquad
      y_{n,c} = \gamma_c \hat{x}_{n,c} + \beta_c$$

    with the biased variance over the group's $C/G$ channels and every position.
    No running statistics: training and eval mode compute the same thing, and the
    batch size does not matter. Accepts any input $[N, C, *]$ like torch.

    An empty batch (N = 0) gives an empty output; half-precision input comes back in its own
    dtype, its statistics computed in float32 (as torch).

    Raises:
        ValueError: `num_channels` not divisible by `num_groups` (at construction),
            input of rank < 2 or with the wrong channel count.
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"GroupNorm: num_groups must be a positive int, got {num_groups!r}")
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"GroupNorm: num_channels must be a positive int, got {num_channels!r}")
        if num_channels % num_groups != 0:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        factory = {"device": device, "dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels, **factory))
            self.bias = nn.Parameter(torch.zeros(num_channels, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(
                f"GroupNorm: expected an input [N, C, *] of rank >= 2, got shape {tuple(x.shape)}"
            )
        _check_channels("GroupNorm", x, self.num_channels, "[N, C, *]")
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        n = x.shape[0]
        # $[N, C, *] \to [N, G, C/G \cdot *]$: one row per (sample, group).
        # `reshape` follows the logical order, so channels_last and strided inputs work (it copies).
        # (The row length is spelled out: with N = 0, `-1` cannot be inferred; the output is empty.)
        xg = xs.reshape(n, self.num_groups, math.prod(x.shape[1:]) // self.num_groups)
        # $\mu_{n,g}$ and the biased $\sigma^2_{n,g}$ of each row, computed on $x - s$ for accuracy
        var, mean, shift = _shifted_var_mean(xg, dim=(2,))
        # Normalize each row, then restore the input's shape
        y = (((xg - shift) - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        # Per-channel affine $\gamma_c \hat{x} + \beta_c$, as one fused multiply-add
        if self.affine:
            y = torch.addcmul(_channel_view(self.bias, x.dim()), y, _channel_view(self.weight, x.dim()))
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
