r"""# Batch Renormalization

[Batch Renormalization](https://arxiv.org/abs/1702.03275) (Ioffe, 2017) fixes the mismatch between
what BN computes in training (batch statistics) and in inference (moving averages) — the mismatch that
hurts when batches are small or not i.i.d. It normalizes with the batch statistics, then corrects the
result towards what the moving averages would have given, with a correction that is treated as a
constant by backpropagation. Algorithm 1 of the paper, per channel, with $\mu, \sigma$ the moving
mean and std and $\mu_B, \sigma_B$ those of the batch over $(N, H, W)$:

$$\sigma_B = \sqrt{\tfrac{1}{m}\textstyle\sum (x - \mu_B)^2 + \epsilon}, \qquad
  r = \operatorname{sg}\!\Big(\operatorname{clip}_{[1/r_{\max},\, r_{\max}]} \frac{\sigma_B}{\sigma}\Big), \qquad
  d = \operatorname{sg}\!\Big(\operatorname{clip}_{[-d_{\max},\, d_{\max}]} \frac{\mu_B - \mu}{\sigma}\Big)$$

$$\hat x = \frac{x - \mu_B}{\sigma_B}\, r + d, \qquad y = \gamma \hat x + \beta$$

($\operatorname{sg}$: stop-gradient.) Where the clips are inactive, $\hat x = (x - \mu)/\sigma$ exactly:
training uses the inference transform, while the gradient still flows through $\mu_B, \sigma_B$ as in
BN. With $r_{\max} = 1$, $d_{\max} = 0$ it **is** BN in training ($r = 1$, $d = 0$): same output, same
gradients (tested against `torch.nn.BatchNorm2d`). In eval mode $\hat x = (x - \mu)/\sigma$.

## Conventions

- **Moving statistics: torch's, not the paper's literal ones.** The paper averages the std,
  $\sigma \mathrel{+}= \alpha(\sigma_B - \sigma)$; labnorm keeps BN's buffers `running_mean` and
  `running_var`, updates them exactly as `torch.nn.BatchNorm2d` does (the *unbiased* batch variance,
  `momentum` = weight of the new batch), and uses $\sigma = \sqrt{\text{running\_var} + \epsilon}$.
  Why: a BN checkpoint loads into `BatchRenorm2d` as it is (the paper's use: switch a BN network to
  BRN), eval mode is exactly BN's eval, and with $r_{\max} = 1$, $d_{\max} = 0$ the running statistics
  equal torch BN's after the same batches (tested). The price: the paper's $\sigma$ is an average of
  stds (each with $\epsilon$ inside, biased), ours is the root of an average of unbiased variances.
  Measured on a stationary standard-normal input (4,000 batches, float64): ours is larger than the
  paper's average of $\sigma_B$ by 2.4% at batch 2 on 4×4 maps ($m = 32$: 1.6% is Bessel's factor
  $\sqrt{m/(m-1)}$, the rest the Jensen gap $\sqrt{\mathbb{E}\,\sigma_B^2} - \mathbb{E}\,\sigma_B$),
  and by 0.009% at batch 8 on 32×32 maps ($m = 8192$).
- `momentum=0.01` by default, the paper's update rate $\alpha$ for the moving averages (they are used
  *in training*, so they should be smooth).
- **$r_{\max}$, $d_{\max}$ and the warm-up.** The paper trains with $r_{\max}=1, d_{\max}=0$ (plain BN)
  for the first 5k steps, then relaxes them gradually to reach $r_{\max}=3$ at 40k steps and
  $d_{\max}=5$ at 25k steps (the paper does not give the shape of the ramp; `renorm_limits` is linear). The layer does not count steps itself: `r_max` and `d_max` are buffers (not part of
  the state dict, so the keys stay BN's) that a training loop sets, e.g. every step with
  `set_renorm_limits(model, *renorm_limits(step))`; `renorm_limits` is that schedule with its step
  counts as arguments. Being tensors, changing them does not recompile a `torch.compile`d model.
  The constructor's `r_max=3.0, d_max=5.0` are the paper's final values, i.e. no warm-up.

**Edge cases and their answers.** One value per channel in training: `ValueError` like torch BN's (a
single image with $H W > 1$ is accepted, as in torch). **All-zero input**: $\sigma_B = \sqrt\epsilon$,
$\hat x = d$, finite. **Float32 with mean 100 and std 0.01**: the statistics are computed on $x$
shifted by one of its values (as `labnorm.BatchNorm2d`), so they keep their precision; the output
matches float64 to float32 precision (tested). Note that $r = \sigma_B/\sigma$ clips at $1/r_{\max}$ here
while the moving variance (starting at 1) catches up — the layer is then *not* BN, by design.
**bf16** input, autocast or module (`.half()`, `.to(torch.bfloat16)`): statistics in float32, output in
the input's dtype. **An empty batch** (N = 0): refused in training with a `ValueError` (its batch
statistics drive $r$, $d$ and the gradient; torch's `BatchNorm2d` returns an empty output there), an
empty output in eval. **Wrong rank or channel count**:
`ValueError`. `torch.compile`, `state_dict` round trip, `deepcopy`: tested.

**Per-worker statistics** (`norm_batch=b`, see `labnorm._norm_batch`): $\mu_B, \sigma_B$ — and so
$r, d$ — are taken over each group $B_j$ of $b$ consecutive samples by itself, as $N/b$ workers would:
$\mu_{B_j} = \frac{1}{bHW}\sum_{B_j, h, w} x$, $r_j = \operatorname{sg}(\operatorname{clip}(\sigma_{B_j}/\sigma))$,
$d_j = \operatorname{sg}(\operatorname{clip}((\mu_{B_j} - \mu)/\sigma))$, all groups against the same moving
$\mu, \sigma$. The moving statistics then take one step towards the mean over the groups of each
group's mean and unbiased variance (the replicas' updates, averaged). Vectorized: $[N/b, b, C, H, W]$
reduced over $(b, H, W)$. `None` (default): the whole batch. A batch $b$ does not divide, or
$bHW = 1$: `ValueError`. Eval mode: unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ._norm_batch import batch_groups, check_group_values, check_norm_batch, mean_over_groups

__all__ = ["BatchRenorm2d", "renorm_limits", "renorm_schedule", "set_renorm_limits"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def renorm_limits(
    step: int,
    r_max: float = 3.0,
    d_max: float = 5.0,
    warmup_steps: int = 5000,
    r_max_step: int = 40000,
    d_max_step: int = 25000,
) -> tuple[float, float]:
    r"""The paper's warm-up: $(r_{\max}, d_{\max}) = (1, 0)$ until `warmup_steps`, then relaxed linearly
    to reach `r_max` at step `r_max_step` and `d_max` at step `d_max_step` (the paper: 5k, 40k, 25k)."""
    if step < warmup_steps:
        # the warm-up: plain BN
        return 1.0, 0.0

    def ramp(end: int) -> float:
        # 0 at the end of the warm-up, 1 at step `end` and after
        return 1.0 if end <= warmup_steps else min(1.0, (step - warmup_steps) / (end - warmup_steps))

    return 1.0 + (r_max - 1.0) * ramp(r_max_step), d_max * ramp(d_max_step)


def renorm_schedule(model: nn.Module, total_steps: int, milestones: tuple[int, int, int] = (5000, 40000, 25000),
                    r_max: float = 3.0, d_max: float = 5.0):
    r"""The paper's warm-up compressed into a run of `total_steps`: a forward pre-hook on `model` that counts its
    training forwards and, before each, sets every `BatchRenorm2d`'s limits by `renorm_limits`, with the
    `milestones` (warm-up end, $r_{\max}$ reached, $d_{\max}$ reached; the paper's 5k, 40k, 25k) scaled so that
    the last of them falls on the run's last step (the paper: plain BN for the first 1/8, $d_{\max}$ reached at
    5/8, $r_{\max}$ at the end). Forwards in eval mode are not counted. Returns the hook's handle."""
    scale = total_steps / max(milestones)
    warmup, r_step, d_step = (round(m * scale) for m in milestones)
    count = [0]

    def hook(module, args):
        if module.training:
            set_renorm_limits(module, *renorm_limits(count[0], r_max, d_max, warmup, r_step, d_step))
            count[0] += 1

    return model.register_forward_pre_hook(hook)


def set_renorm_limits(model: nn.Module, r_max: float, d_max: float) -> None:
    """Set $r_{\\max}$ and $d_{\\max}$ of every `BatchRenorm2d` in `model`."""
    for m in model.modules():
        if isinstance(m, BatchRenorm2d):
            m.set_limits(r_max, d_max)


class BatchRenorm2d(nn.Module):
    r"""Batch Renormalization over $[N, C, H, W]$ with BN's arguments, buffers and state-dict keys.

    Args:
        num_features: $C$.
        eps: added to the variances inside the square roots.
        momentum: weight of the new batch in the running statistics.
        r_max: upper clip of $r$ (lower clip $1/r_{\max}$); must be $\ge 1$.
        d_max: clip of $|d|$; must be $\ge 0$.
        norm_batch: batch statistics over groups of this many consecutive samples (see the module
            docstring); `None` for the whole batch. Not in the state dict.

    Raises:
        ValueError: bad `r_max`/`d_max`/`momentum`; input that is not 4-D, has the wrong channel
            count, or has one value per channel in training.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.01,
        r_max: float = 3.0,
        d_max: float = 5.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        norm_batch: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"BatchRenorm2d: num_features must be a positive int, got {num_features!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchRenorm2d: momentum must be in [0, 1], got {momentum!r}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        # BN's buffers and keys: a BatchNorm2d checkpoint loads as it is
        self.register_buffer("running_mean", torch.zeros(num_features, **factory))
        self.register_buffer("running_var", torch.ones(num_features, **factory))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        # The clip limits: float32 scalars outside the state dict, set by a warm-up schedule
        self.register_buffer("r_max", torch.tensor(1.0, device=device), persistent=False)
        self.register_buffer("d_max", torch.tensor(0.0, device=device), persistent=False)
        self.set_limits(r_max, d_max)
        self.norm_batch = check_norm_batch("BatchRenorm2d", norm_batch)

    def set_limits(self, r_max: float, d_max: float) -> None:
        if r_max < 1 or d_max < 0:
            raise ValueError(f"BatchRenorm2d: expected r_max >= 1 and d_max >= 0, got r_max={r_max!r}, d_max={d_max!r}")
        self.r_max.fill_(r_max)
        self.d_max.fill_(d_max)

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"BatchRenorm2d: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchRenorm2d: expected {self.num_features} channels in dim 1 of an [N, C, H, W] input, "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        weight = self.weight.reshape(1, -1, 1, 1).to(xs.dtype)
        bias = self.bias.reshape(1, -1, 1, 1).to(xs.dtype)
        # $\mu$ and $\sigma = \sqrt{\text{running\_var} + \epsilon}$, as $[1, C, 1, 1]$
        mu = self.running_mean.reshape(1, -1, 1, 1).to(xs.dtype)
        sigma = torch.sqrt(self.running_var.reshape(1, -1, 1, 1).to(xs.dtype) + self.eps)
        if not self.training:
            # Inference: $\hat x = (x - \mu) / \sigma$, BN's eval
            return torch.addcmul(bias, xs - mu, weight / sigma).to(x.dtype)
        b = self.norm_batch
        check_group_values("BatchRenorm2d", x, b)
        # The batch, or its groups of $b$ samples: $[N/b, b, C, H, W]$ reduced over $(b, H, W)$
        xg, dims = batch_groups("BatchRenorm2d", xs, b)
        # Values behind each statistic: $NHW$ (or $bHW$ per group)
        count = x.numel() // self.num_features if b is None else b * x.shape[2] * x.shape[3]
        if count <= 1:
            raise ValueError(
                "BatchRenorm2d: expected more than 1 value per channel when training, "
                f"got input of shape {tuple(x.shape)}"
            )
        # Batch statistics over $(N, H, W)$ (or each group's) of $x - s$, $s$ one value of each channel
        # (of each group), exact for large means
        shift = xg[tuple(slice(0, 1) if d in dims else slice(None) for d in range(xg.dim()))].detach()
        var_b, mean_s = torch.var_mean(xg - shift, dim=dims, correction=0, keepdim=True)
        # $\sigma_B = \sqrt{\sigma^2_B + \epsilon}$ (biased, $\epsilon$ inside), and $x - \mu_B$
        sigma_b = torch.sqrt(var_b + self.eps)
        centred = (xg - shift) - mean_s
        # $r = \operatorname{clip}(\sigma_B / \sigma)$ and $d = \operatorname{clip}((\mu_B - \mu)/\sigma)$, the
        # stop-gradient being `detach()`
        mu_b = (mean_s + shift).detach()
        r = torch.clamp(sigma_b.detach() / sigma, 1 / self.r_max.to(xs.dtype), self.r_max.to(xs.dtype))
        d = torch.clamp((mu_b - mu) / sigma, -self.d_max.to(xs.dtype), self.d_max.to(xs.dtype))
        with torch.no_grad():
            # Running statistics as torch BN: $\hat\mu \leftarrow (1-m)\hat\mu + m\mu_B$, unbiased variance.
            # Trap: they are *replaced*, not updated in place. $d$ and $r$ above depend on the old values,
            # and `torch.compile` (torch 2.13, even backend="aot_eager") recomputes them in the backward
            # pass from the buffers — after an in-place update has changed them — which gave a wrong
            # gradient for $\gamma$ (off by up to 1.1 on a 4×8×6×6 batch; tests/test_fused_activation.py
            # and test_batch_renorm.py guard it).
            self.num_batches_tracked.add_(1)
            # (with groups: one step towards the mean over the groups of their statistics)
            mean_b = mean_over_groups(mu_b, b).flatten()
            self.running_mean = torch.lerp(self.running_mean, mean_b.to(self.running_mean.dtype), self.momentum)
            unbiased = mean_over_groups(var_b, b).flatten() * (count / (count - 1))
            self.running_var = torch.lerp(self.running_var, unbiased.to(self.running_var.dtype), self.momentum)
        # $\hat x = \frac{x - \mu_B}{\sigma_B} r + d$, then $y = \gamma \hat x + \beta$
        x_hat = torch.addcmul(d, centred, r / sigma_b)
        # (from the grouped view back to $[N, C, H, W]$; a no-op for the whole batch)
        return torch.addcmul(bias, x_hat, weight).reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"r_max={self.r_max.item():g}, d_max={self.d_max.item():g}"
            + ("" if self.norm_batch is None else f", norm_batch={self.norm_batch}")
        )
