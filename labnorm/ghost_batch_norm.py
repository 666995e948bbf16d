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
- **Double backward** (a gradient penalty through the layer): `RuntimeError`. The normalization uses
  `standardize`'s closed-form backward (in `layer_norm.py`), which is once-differentiable: refused, never
  computed wrong. torch's layers support it.
"""

from __future__ import annotations

import torch
from torch import nn

from .batch_norm import _LOW_PRECISION, NormState
from .layer_norm import standardize

__all__ = ["GhostBatchNorm2d"]


class GhostBatchNorm2d(NormState):
    r"""Batch normalization with statistics over virtual batches of `virtual_batch_size` samples.

    Same arguments, buffers and state-dict keys as `torch.nn.BatchNorm2d`, plus `virtual_batch_size`.

    Raises:
        ValueError: bad arguments; input of the wrong rank or channel count; a virtual batch with
            a single value per channel when batch statistics are used.
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
        # Shapes of the per-channel vectors against $[k, V, C, H, W]$
        view = (1, 1, c, 1, 1)
        if not (self.training or not self.track_running_stats):
            # Eval: the running statistics, for the whole batch (plain batch norm)
            inv_std = torch.rsqrt(self.running_var + self.eps).reshape(view[1:])
            centred = xs - self.running_mean.reshape(view[1:])
            y = centred * inv_std if not self.affine else torch.addcmul(
                self.bias.reshape(view[1:]), centred, inv_std * self.weight.reshape(view[1:]))
            return y.to(x.dtype)
        v = min(self.virtual_batch_size, n)
        # $k$ full virtual batches, then (if $V$ does not divide $N$) the remainder as one more
        k, rest = divmod(n, v)
        pieces = [xs[: k * v].reshape(k, v, c, h, w)]
        if rest:
            pieces.append(xs[k * v:].unsqueeze(0))
        outputs = []
        for i, xg in enumerate(pieces):
            # Values behind each statistic: $|B_j| HW$
            count = xg.shape[1] * h * w
            if count <= 1:
                which = "the last virtual batch (N mod V samples)" if i else "each virtual batch"
                raise ValueError(
                    f"GhostBatchNorm2d: expected more than 1 value per channel in every virtual batch, but {which} "
                    f"has {count} (input shape {tuple(x.shape)}, virtual_batch_size={self.virtual_batch_size})"
                )
            # $\hat x$ with $\mu_{j,c}$ and the biased $\sigma^2_{j,c}$ over $(B_j, H, W)$: dims 1, 3, 4
            # of $[k, V, C, H, W]$, by layer norm's `standardize` (shifted statistics, closed-form backward)
            y, mean, var = standardize(xg, (1, 3, 4), self.eps)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.reshape(-1, c), var.reshape(-1, c), count)
            # $\gamma_c \hat x + \beta_c$
            if self.affine:
                y = torch.addcmul(self.bias.reshape(view), y, self.weight.reshape(view))
            outputs.append(y.reshape(-1, c, h, w))
        y = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, means: torch.Tensor, variances: torch.Tensor, count: int) -> None:
        """One batch-norm update per virtual batch (rows of `means`/`variances`), in order."""
        # Bessel's correction with the virtual batch's own count
        unbiased = variances * (count / (count - 1))
        for mean, var in zip(means, unbiased):
            self.num_batches_tracked.add_(1)
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            # $\hat\mu \leftarrow (1 - m)\hat\mu + m\mu_j$, likewise the variance
            self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
            self.running_var.mul_(1 - m).add_(var.to(self.running_var.dtype), alpha=m)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, virtual_batch_size={self.virtual_batch_size}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
