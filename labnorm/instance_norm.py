r"""# Instance Normalization, from scratch

[Instance Normalization](https://arxiv.org/abs/1607.08022) (Ulyanov, Vedaldi & Lempitsky, 2016)
normalizes every channel of every sample over its own spatial positions — batch norm's statistics
with the batch taken out. It was made for style transfer, where the contrast of one image should
not depend on the others in the batch. For $x$ of shape $[N, C, H, W]$:

$$\mu_{n,c} = \frac{1}{HW}\sum_{h,w} x_{n,c,h,w}, \qquad
  \sigma^2_{n,c} = \frac{1}{HW}\sum_{h,w} (x_{n,c,h,w} - \mu_{n,c})^2$$

$$y_{n,c,h,w} = \gamma_c \frac{x_{n,c,h,w} - \mu_{n,c}}{\sqrt{\sigma^2_{n,c} + \epsilon}} + \beta_c$$

It is group norm with one channel per group, and switchable norm's "IN" branch.

**torch's conventions, reproduced** (`torch.nn.InstanceNorm2d` is the reference, in all four
combinations of `affine` and `track_running_stats`):

- The defaults are `affine=False` and `track_running_stats=False` — unlike `BatchNorm2d`. With
  `affine=False` there are no $\gamma, \beta$; the `norm="in"` factory entry asks for `affine=True`.
- With `track_running_stats=True`, training still normalizes with each instance's statistics,
  and updates running estimates with their **average over the batch**, the variance unbiased
  per instance ($HW/(HW-1)$):
  $$\hat\mu_c \leftarrow (1-m)\,\hat\mu_c + m\,\tfrac{1}{N}\textstyle\sum_n \mu_{n,c}, \qquad
    \hat\sigma^2_c \leftarrow (1-m)\,\hat\sigma^2_c + m\,\tfrac{1}{N}\sum_n \tfrac{HW}{HW-1}\sigma^2_{n,c}$$
  In eval mode *those* running statistics normalize — so an instance-normalized net in eval no
  longer normalizes each image by itself. Without `track_running_stats`, eval uses the instance
  statistics, exactly as training.
- `num_batches_tracked` exists (same state-dict keys as torch) but, as in torch, is never counted.
- A 3-D input is taken as one unbatched sample $[C, H, W]$, as torch does.

**Bad input and edge cases, with their answers** (each has a test):

- **`momentum=None`**: `ValueError`. torch accepts it and then *never updates* the running
  statistics (it passes momentum 0 to its kernel) — a silent no-op that labnorm refuses to copy.
- Input not 3-D or 4-D, or with a channel count other than `num_features`: `ValueError` naming
  the layer. (torch only warns about the channel count when `affine=False`.)
- **One spatial position** ($H = W = 1$) when instance statistics are used (training, or eval
  without running statistics): `ValueError`, as torch — every value would normalize to 0.
- **Batch of one**: fine; the statistics never involve the batch.
- **All-zero input**: $\beta$ (0 without affine); the running variance moves towards 0.
- **float32 with mean 100 and std 0.01**: statistics on $x - s$ ($s$ one value of each instance,
  the shifted statistics of `labnorm.BatchNorm2d`): output, gradients and running statistics within
  1e-5 of float64.
- **bf16 autocast**: statistics in float32, output in the input's dtype (bf16), as torch.
- `torch.compile` (train and eval), `state_dict` (torch's keys: a torch checkpoint loads), `deepcopy`.
- **Double backward** (a gradient penalty through the layer, as in WGAN-GP): supported, and equal to
  torch's in float64.

**How it is computed.** Notebook 09 builds the formula from tensor ops and proves it equal to torch.
Here the arithmetic goes to torch's batch-norm kernel, as torch's own `InstanceNorm2d` does: the
$N \cdot C$ instances become the channels of one sample $[1, NC, H, W]$ (with $\gamma, \beta$ and the
running statistics repeated $N$ times, and the latter averaged back). `batch_norm_train` (in
`layer_norm.py`) runs it on $x - s$ ($s$ one value of each instance) when the kernel reports a mean
too large against the spread for its dtype — see `layer_norm`. In eval with running statistics,
`F.batch_norm`.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .batch_norm import _LOW_PRECISION, NormState, _channel_view, _in_compute_dtype
from .layer_norm import batch_norm_train

__all__ = ["InstanceNorm2d"]


class InstanceNorm2d(NormState):
    r"""Instance normalization of $[N, C, H, W]$ (or unbatched $[C, H, W]$), a drop-in for
    `torch.nn.InstanceNorm2d`: same arguments, defaults, buffers and state-dict keys.

    Args:
        num_features: $C$.
        eps: added to the variance inside the square root.
        momentum: weight of the new batch in the running statistics (`None` is refused).
        affine: learn a per-channel $\gamma$ (`weight`) and $\beta$ (`bias`).
        track_running_stats: keep running statistics and use them in eval mode.

    An empty batch (N = 0) gives an empty output in training and eval, the running statistics
    unchanged (no statistic needs the batch; torch 2.13's layer raises an `IndexError`). A half-precision
    module (`.half()`, `.to(torch.bfloat16)`) with input of its dtype runs as torch's: statistics in
    float32, output in the input's dtype; so does bf16 autocast.

    Raises:
        ValueError: bad arguments; input of the wrong rank or channel count; a single spatial
            position when instance statistics are needed.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"InstanceNorm2d: num_features must be a positive int, got {num_features!r}")
        if momentum is None or not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"InstanceNorm2d: momentum must be a float in [0, 1], got {momentum!r} (torch's InstanceNorm "
                "silently never updates its running statistics with momentum=None)"
            )
        # num_batches_tracked is kept for torch's state-dict keys; torch never counts it for instance norm.
        self._init_state(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            # Unbatched $[C, H, W]$, as torch
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4:
            raise ValueError(
                f"InstanceNorm2d: expected a 4-D input [N, C, H, W] (or 3-D [C, H, W]), got {x.dim()}-D input "
                f"of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"InstanceNorm2d: expected {self.num_features} channels in dim 1 of [N, C, H, W], got "
                f"{x.shape[1]} (input shape {tuple(x.shape)})"
            )
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        # A half-precision module's parameters and running statistics in float32 for torch's kernel
        weight, bias, running_mean, running_var = (
            _in_compute_dtype(t, xs.dtype) for t in (self.weight, self.bias, self.running_mean, self.running_var)
        )
        if not self.training and self.track_running_stats:
            # Eval with running statistics: $\gamma_c (x - \hat\mu_c) / \sqrt{\hat\sigma^2_c + \epsilon} + \beta_c$,
            # batch norm's eval formula, by torch's kernel
            y = F.batch_norm(xs, running_mean, running_var, weight, bias, False, 0.0, self.eps)
            return y.to(x.dtype)
        # Instance statistics in training, and in eval when no running statistics are kept
        hw = x.shape[2] * x.shape[3]
        if hw <= 1:
            raise ValueError(
                "InstanceNorm2d: expected more than 1 spatial position (H·W > 1) to compute instance "
                f"statistics, got input of shape {tuple(x.shape)}"
            )
        n, c, h, w = x.shape
        if n == 0:
            # An empty batch has no instance to normalize: an empty output (the affine map of nothing, so
            # that $\gamma, \beta$ get their zero gradients), the running statistics left as they are.
            # (torch 2.13's InstanceNorm2d raises an IndexError here.)
            if not self.affine:
                return xs.clone().to(x.dtype)
            return torch.addcmul(_channel_view(bias, 4), xs, _channel_view(weight, 4)).to(x.dtype)
        track = self.training and self.track_running_stats
        # Batch norm of the $N \cdot C$ instances as channels of one sample, $[1, NC, H, W]$ (torch's own
        # reduction of instance norm): $\gamma_c (x - \mu_{n,c}) / \sqrt{\sigma^2_{n,c} + \epsilon} + \beta_c$, by torch's
        # kernel (on $x$ shifted by one value of each instance when its mean is large: `batch_norm_train`)
        y, running_mean, running_var = batch_norm_train(
            xs.reshape(1, n * c, h, w),
            running_mean.repeat(n) if track else None,
            running_var.repeat(n) if track else None,
            weight.repeat(n) if self.affine else None,
            bias.repeat(n) if self.affine else None,
            self.momentum,
            self.eps,
        )
        if track:
            with torch.no_grad():
                # Each instance moved its copy by $m$ towards $\mu_{n,c}$ and the unbiased $\frac{HW}{HW-1}\sigma^2_{n,c}$:
                # their average over the batch is the step towards the batch averages
                self.running_mean.copy_(running_mean.reshape(n, c).mean(0))
                self.running_var.copy_(running_var.reshape(n, c).mean(0))
        y = y.reshape(n, c, h, w)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )
