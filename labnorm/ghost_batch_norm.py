r"""# Ghost Batch Normalization, from scratch

[Ghost Batch Normalization](https://arxiv.org/abs/1705.08741) (Hoffer, Hubara & Soudry, 2017,
"Train longer, generalize better", Algorithm 1) is batch norm whose training statistics come from
small *virtual* ("ghost") batches of $V$ samples instead of the whole batch. Large batches give
batch norm very precise statistics, and with them lose some of the noise that regularizes
small-batch training; normalizing each slice of $V$ samples by itself puts that noise back while
the optimizer still sees the large batch. For the virtual batch $B_j$ (samples $jV \ldots jV+V-1$)
of an input $[N, C, H, W]$:

$$\mu_{j,c} = \frac{1}{|B_j| HW}\sum_{n \in B_j}\sum_{h,w} x_{n,c,h,w}, \qquad
  \sigma^2_{j,c} = \frac{1}{|B_j| HW}\sum_{n \in B_j}\sum_{h,w} (x_{n,c,h,w} - \mu_{j,c})^2$$

$$y_{n,c,h,w} = \gamma_c \frac{x_{n,c,h,w} - \mu_{j,c}}{\sqrt{\sigma^2_{j,c} + \epsilon}} + \beta_c
  \qquad (n \in B_j)$$

— `torch.nn.BatchNorm2d` applied to each virtual batch, with one $\gamma, \beta$ shared by all.

**Conventions chosen here** (each tested):

- **Splitting**: `x.split(V)` along the batch — every virtual batch has exactly $V$ samples
  except the last, which holds the remainder $N \bmod V$ (a smaller, noisier batch; with
  $N \le V$ there is one virtual batch and the layer *is* `torch.nn.BatchNorm2d`). Other ports
  split into $\lceil N/V \rceil$ near-equal chunks (`x.chunk`); that gives the same result
  whenever $V$ divides $N$.
- **Running statistics**: one batch-norm update per virtual batch, in order — the layer equals a
  loop of a single `torch.nn.BatchNorm2d` over `x.split(V)`, running statistics and
  `num_batches_tracked` included. So with $k = \lceil N/V \rceil$ virtual batches the running
  estimates take $k$ steps of momentum $m$ per training step (an effective per-step momentum of
  $1 - (1 - m)^k$), and the variance of each is unbiased with its own count $|B_j| HW$. This is
  the update of the paper's Algorithm 1 written as a recursion ($\hat\mu \leftarrow (1-m)^k \hat\mu +
  \sum_j (1-m)^{k-j} m\,\mu_j$). `momentum=None` is the cumulative average over virtual batches.
- **Eval**: the running statistics normalize the whole batch at once, as batch norm in eval — the
  virtual batch size plays no part. With `track_running_stats=False`, eval normalizes by virtual
  batches exactly as training.

**Ghost BN is batch norm with a per-worker batch.** When $V$ divides $N$, `GhostBatchNorm2d(C, V)`
and `labnorm.BatchNorm2d(C, norm_batch=V)` (see `labnorm._norm_batch`) compute the same output and
the same gradients (tested in float64). They differ in the running statistics only: Ghost BN takes
$k = N/V$ sequential steps, one per virtual batch, so the last virtual batch weighs $m$, the first
$m(1-m)^{k-1}$, the old estimate $(1-m)^k$, and `num_batches_tracked` grows by $k$; `norm_batch` takes
one step of $m$ towards the mean of the $k$ groups' statistics (every group weighing $m/k$, the old
estimate $1-m$, `num_batches_tracked` + 1), as averaging $k$ workers' running statistics would. At
$m = 0.1$, $k = 4$ Ghost BN keeps $0.9^4 = 0.66$ of the old estimate per step, `norm_batch` 0.9.
Ghost BN also accepts a $V$ that does not divide $N$ (a smaller last virtual batch), which
`norm_batch` refuses.

**Bad input and edge cases, with their answers** (each has a test):

- Input not 4-D, or another channel count than `num_features`: `ValueError` naming the layer.
- `virtual_batch_size < 1`: `ValueError` at construction.
- **A virtual batch with one value per channel** (a remainder of one sample with $H = W = 1$, or a
  batch of one $1 \times 1$ map) when batch statistics are used: `ValueError` that says which
  virtual batch and why, as batch norm refuses a single value in training.
- A batch that $V$ does not divide: works (last virtual batch smaller, see above).
- **All-zero input**: $\beta$; **float32 mean 100, std 0.01**: within 1e-5 of float64 (shifted
  statistics, as `labnorm.BatchNorm2d`); **bf16 autocast**: float32 statistics, bf16 output.
- `torch.compile` (train and eval), `state_dict` (batch norm's keys: a `BatchNorm2d` checkpoint
  loads), `deepcopy`.
- **Double backward** (a gradient penalty through the layer, as in WGAN-GP): supported, and equal to
  torch's in float64.

**How it is computed.** Notebook 09 builds the formula from tensor ops and proves it equal to torch.
Here each virtual batch goes to torch's batch-norm kernel through `batch_norm_train` (in
`layer_norm.py`), which also takes the running-statistics step — on $x - s$ ($s$ one value of each
channel of the virtual batch, the shift added back into the running mean) when the kernel reports a
mean too large against the spread for its dtype (see `layer_norm`). In eval with running
statistics, one `F.batch_norm` for the whole batch.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .batch_norm import _LOW_PRECISION, NormState, _in_compute_dtype
from .layer_norm import batch_norm_train

__all__ = ["GhostBatchNorm2d"]


class GhostBatchNorm2d(NormState):
    r"""Batch normalization with statistics over virtual batches of `virtual_batch_size` samples.

    Same arguments, buffers and state-dict keys as `torch.nn.BatchNorm2d`, plus `virtual_batch_size`.

    A half-precision module (`.half()`, `.to(torch.bfloat16)`) with input of its dtype runs as torch's
    `BatchNorm2d`: statistics in float32, output in the input's dtype. An empty batch (N = 0) in
    training is refused (no virtual batch has statistics; torch's `BatchNorm2d` returns an empty output
    and leaves its running statistics alone); in eval mode it gives an empty output.

    Raises:
        ValueError: bad arguments; input of the wrong rank or channel count; a virtual batch with
            a single value per channel when batch statistics are used in training or eval (an empty
            batch in training included).
    """

    def __init__(
        self,
        num_features: int,
        virtual_batch_size: int = 32,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"GhostBatchNorm2d: num_features must be a positive int, got {num_features!r}")
        if not isinstance(virtual_batch_size, int) or virtual_batch_size < 1:
            raise ValueError(
                f"GhostBatchNorm2d: virtual_batch_size must be a positive int, got {virtual_batch_size!r}"
            )
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"GhostBatchNorm2d: momentum must be in [0, 1] or None, got {momentum!r}")
        self.virtual_batch_size = virtual_batch_size
        self._init_state(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"GhostBatchNorm2d: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"GhostBatchNorm2d: expected {self.num_features} channels in dim 1 of [N, C, H, W], got "
                f"{x.shape[1]} (input shape {tuple(x.shape)})"
            )
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        n, c, h, w = x.shape
        # A half-precision module's parameters and running statistics in float32 for torch's kernel
        weight, bias, running_mean, running_var = (
            _in_compute_dtype(t, xs.dtype) for t in (self.weight, self.bias, self.running_mean, self.running_var)
        )
        if not self.training and self.track_running_stats:
            # Eval: the running statistics, for the whole batch (plain batch norm, torch's kernel)
            y = F.batch_norm(xs, running_mean, running_var, weight, bias, False, 0.0, self.eps)
            return y.to(x.dtype)
        if n == 0 and not self.training:
            # Eval without running statistics, an empty batch: nothing to normalize, an empty output
            return xs.clone().to(x.dtype)
        track = self.training and self.track_running_stats
        # Virtual batches of $V$ samples; the last holds the remainder $N \bmod V$ when $V$ does not divide $N$
        chunks = xs.split(self.virtual_batch_size) if n > self.virtual_batch_size else (xs,)
        outputs = []
        for i, xg in enumerate(chunks):
            # Values behind each statistic: $|B_j| HW$
            count = xg.shape[0] * h * w
            if count <= 1:
                which = "the last virtual batch (N mod V samples)" if 0 < i == len(chunks) - 1 else "each virtual batch"
                raise ValueError(
                    f"GhostBatchNorm2d: expected more than 1 value per channel in every virtual batch, but {which} "
                    f"has {count} (input shape {tuple(x.shape)}, virtual_batch_size={self.virtual_batch_size})"
                )
            m = 0.0
            if track:
                # One batch-norm step per virtual batch: $m$, or $1/t$ for the cumulative average
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            # $\gamma_c (x - \mu_{j,c}) / \sqrt{\sigma^2_{j,c} + \epsilon} + \beta_c$ over $(B_j, H, W)$ by torch's
            # kernel, with the step of the running statistics towards $\mu_{j,c}$ and the unbiased variance
            # (on $x$ shifted by one value of each channel when its mean is large: `batch_norm_train`)
            y, running_mean, running_var = batch_norm_train(
                xg,
                running_mean if track else None,
                running_var if track else None,
                weight,
                bias,
                m,
                self.eps,
            )
            outputs.append(y)
            if track:
                with torch.no_grad():
                    self.running_mean.copy_(running_mean)
                    self.running_var.copy_(running_var)
        y = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, virtual_batch_size={self.virtual_batch_size}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
