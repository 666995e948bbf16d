r"""# Switchable Normalization

Switchable Normalization (SN, Luo et al., [Differentiable Learning-to-Normalize via Switchable
Normalization](https://arxiv.org/abs/1806.10779)) normalizes with a learned mixture of the
statistics of instance norm (IN: per sample and channel), layer norm (LN: per sample) and batch
norm (BN: per channel):

$$\hat x = \gamma \, \frac{x - \sum_k w_k \mu_k}{\sqrt{\sum_k w'_k \sigma^2_k + \epsilon}} + \beta,
  \qquad w = \mathrm{softmax}(\lambda), \; w' = \mathrm{softmax}(\lambda'), \; k \in \{\mathrm{IN}, \mathrm{LN}, \mathrm{BN}\}$$

with importance logits $\lambda$ (`mean_weight`) and $\lambda'$ (`var_weight`), ordered (IN, LN, BN)
as in the official code. The three sets of statistics are computed once: IN's per-(sample,
channel) moments first, LN's and BN's derived from them.

**Two statistic conventions** (`statistics=`):

* `"exact"` (default): every variance biased, LN and BN moments derived with the law of total
  variance, $\sigma^2_{LN} = \overline{\sigma^2_{IN}} + \overline{(\mu_{IN} - \mu_{LN})^2}$ (no
  $E[x^2] - E[x]^2$ cancellation). With one-hot importance weights the layer *is*
  `InstanceNorm2d`, layer norm over $(C, H, W)$, or `BatchNorm2d` (running statistics included: the
  running variance is the unbiased batch variance, as torch keeps it).
* `"official"`: the formulas of switchablenorms/Switchable-Normalization's `SwitchNorm2d` — IN
  variance *unbiased* (divide by $HW - 1$), LN and BN variances from
  $\overline{\sigma^2_{IN} + \mu_{IN}^2} - \mu^2$, and that BN variance is also what the running
  estimate tracks. That difference is computed in its equivalent form
  $\overline{\sigma^2_{IN}} + \overline{(\mu_{IN} - \mu)^2}$, which never goes negative: the
  official subtraction cancels in float32 (mean 100, std 0.01 gives a negative variance and NaN). An $N \times C \times 1 \times 1$ input is refused (the official code divides by
  $HW - 1 = 0$ and returns NaN).

**Momentum.** `momentum` follows PyTorch: the weight of the new batch,
$r \leftarrow (1 - m)\,r + m\,\hat r$. The official code and the Keras port use the opposite
convention ($r \leftarrow m\,r + (1-m)\,\hat r$): Keras' 0.98, 0.99, 0.997 are `momentum=` 0.02,
0.01, 0.003 here.

**Moving or batch average** (`using_moving_average`). With `True` the BN branch's eval statistics
are running averages updated every training step. With `False` training leaves them alone; after
training, `finalize_batch_average(model, batches, num_batches)` runs $K$ batches through the model
and sets them to the pooled statistics of those batches — the paper's batch average, which the
Keras port could not implement as a layer.

Edge cases: a batch of one in training is fine while each channel still has more than one value
($H W > 1$), and refused with a `ValueError` otherwise (as `BatchNorm2d` does); an empty batch
(N = 0) in training is refused when the BN branch needs its statistics (its running statistics would
become NaN; torch has no SN — its `BatchNorm2d` returns an empty output there), and gives an empty
output otherwise; `last_gamma=True`
starts $\gamma$ at 0 (the layer outputs $\beta$ — for the last norm of a residual branch); under
bf16 autocast, and for a half-precision module (`.half()`, `.to(torch.bfloat16)`) with input of its
dtype, the statistics are computed in float32 and the output keeps the input's dtype.

**Per-worker statistics** (`norm_batch=b`, see `labnorm._norm_batch`): the BN branch's moments
are taken over each group $B_j$ of $b$ consecutive samples by itself, as $N/b$ workers would —
derived from IN's moments as before, within the group:
$\mu_{BN,j} = \frac{1}{b}\sum_{n \in B_j} \mu_{IN,n}$,
$\sigma^2_{BN,j} = \frac{1}{b}\sum_{n \in B_j} \sigma^2_{IN,n} + \frac{1}{b}\sum_{n \in B_j}(\mu_{IN,n} - \mu_{BN,j})^2$
(IN and LN are per sample and unchanged). The running statistics take one step towards the mean over
the groups of what each group tracks (with `"exact"` its unbiased variance, count $bHW$);
`finalize_batch_average` pools every value seen, so its result does not depend on $b$. Vectorized: IN's
moments $[N, C, 1]$ viewed as $[N/b, b, C, 1]$. A batch $b$ does not divide, or $bHW = 1$ in training:
`ValueError`. Eval with running statistics: unchanged. Without a BN branch (`using_bn=False`) the layer
is batch-independent and `norm_batch` changes nothing.

**Official checkpoints** load with `load_official_state_dict(model, state_dict, keras_momentum)`:
the keys match; the loader switches the layers to the official statistics their running
estimates were made with, and converts the momentum.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ._norm_batch import batch_groups, check_group_values, check_norm_batch, mean_over_groups, ungroup

__all__ = ["SwitchNorm2d", "finalize_batch_average", "importance_weights", "load_official_state_dict"]


class _InstanceMoments(torch.autograd.Function):
    r"""Per-(sample, channel) mean and variance of $x$ $[N, C, S]$, with a one-pass backward.

    Two passes forward — the mean, then $\lVert x - \mu \rVert^2$ — which stay accurate where
    $E[x^2] - E[x]^2$ cancels (float32 with mean 100 and std 0.01). (`torch.var_mean` gives the same
    numbers but was much slower on CPU for short rows; see notebook 05.) The
    backward is one fused pass, $\partial L/\partial x = x\,\alpha + \beta$ with per-row
    $\alpha = 2\,\bar g_{\sigma^2}/(S - c)$ and $\beta = \bar g_\mu/S - \alpha\mu$ ($c$ the correction),
    written with differentiable ops so double backward works.
    """

    @staticmethod
    def forward(ctx, xs: torch.Tensor, correction: int):
        mean = xs.mean(-1, keepdim=True)
        var = torch.linalg.vector_norm(xs - mean, dim=-1, keepdim=True).square() / (xs.shape[-1] - correction)
        ctx.save_for_backward(xs, mean)
        ctx.correction = correction
        return mean, var

    @staticmethod
    def backward(ctx, g_mean: torch.Tensor, g_var: torch.Tensor):
        xs, mean = ctx.saved_tensors
        s = xs.shape[-1]
        alpha = g_var * (2.0 / (s - ctx.correction))
        beta = g_mean / s - alpha * mean
        return torch.addcmul(beta, xs, alpha), None


class _ScaleShift(torch.autograd.Function):
    r"""$y = x\,a + b$ for $x$ $[N, C, S]$ and per-row $a, b$ $[N, C, 1]$, without autograd's temporaries:
    $\partial L/\partial a = \sum_s g\,x$ as a dot product per row (no $g x$ tensor),
    $\partial L/\partial b = \sum_s g$, $\partial L/\partial x = g\,a$."""

    @staticmethod
    def forward(ctx, xs: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(xs, a)
        return torch.addcmul(b, xs, a)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        xs, a = ctx.saved_tensors
        return g * a, torch.linalg.vecdot(g, xs, dim=-1).unsqueeze(-1), g.sum(-1, keepdim=True)


class SwitchNorm2d(nn.Module):
    r"""Switchable Normalization for $[N, C, H, W]$ input (see the module docstring).

    Args:
        num_features: $C$.
        eps: added to the mixed variance.
        momentum: of the running BN statistics, PyTorch's convention (Keras' 0.98 is 0.02).
        using_moving_average: running averages (`True`) or the batch average finalized after
            training by `finalize_batch_average` (`False`).
        using_bn: include the BN branch (three importance weights) or not (IN and LN only).
        last_gamma: initialize $\gamma$ to 0 instead of 1.
        statistics: `"exact"` or `"official"`.
        norm_batch: the BN branch's statistics over groups of this many consecutive samples (see the
            module docstring); `None` for the whole batch. Not in the state dict.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, using_moving_average: bool = True,
        using_bn: bool = True, last_gamma: bool = False, statistics: str = "exact", norm_batch: int | None = None,
    ) -> None:
        super().__init__()
        self.norm_batch = check_norm_batch("SwitchNorm2d", norm_batch)
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"SwitchNorm2d: num_features must be a positive int, got {num_features!r}")
        if statistics not in ("exact", "official"):
            raise ValueError(f"SwitchNorm2d: statistics must be 'exact' or 'official', got {statistics!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SwitchNorm2d: momentum is the weight of the new batch (PyTorch's convention), "
                             f"in [0, 1]; got {momentum} (Keras' 0.98 is momentum=0.02)")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.using_moving_average = using_moving_average
        self.using_bn = using_bn
        self.last_gamma = last_gamma
        self.statistics = statistics
        # Shapes and names as in the official code, so its checkpoints' keys match
        self.weight = nn.Parameter(torch.full((1, num_features, 1, 1), 0.0 if last_gamma else 1.0))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        branches = 3 if using_bn else 2
        self.mean_weight = nn.Parameter(torch.ones(branches))
        self.var_weight = nn.Parameter(torch.ones(branches))
        if using_bn:
            # Running BN statistics start as BatchNorm2d's: mean 0, variance 1
            self.register_buffer("running_mean", torch.zeros(1, num_features, 1))
            self.register_buffer("running_var", torch.ones(1, num_features, 1))
        self._accumulator: dict | None = None  # set by finalize_batch_average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"SwitchNorm2d: expected an input [N, {self.num_features}, H, W], got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        spatial = h * w
        if self.statistics == "official" and spatial == 1:
            raise ValueError("SwitchNorm2d(statistics='official'): H*W = 1; the official formulas divide the instance "
                             "variance by H*W - 1 (NaN). Use statistics='exact', where IN of one value is 0.")
        use_batch = self.using_bn and (self.training or self._accumulator is not None)
        if use_batch and n == 0:
            raise ValueError("SwitchNorm2d: an empty batch (N = 0) has no statistics for the BN branch in training "
                             "(its running statistics would become NaN); skip empty batches")
        b = self.norm_batch
        if use_batch:
            check_group_values("SwitchNorm2d", x, b)
        if use_batch and n * spatial == 1:
            raise ValueError("SwitchNorm2d: a batch of one 1x1 map has one value per channel; the BN branch "
                             "cannot estimate a variance in training (as BatchNorm2d)")
        # Statistics in float32 (at least), whatever autocast made of x
        xs = x.reshape(n, c, spatial)
        xs = xs.float() if xs.dtype in (torch.float16, torch.bfloat16) else xs

        # IN: moments per (sample, channel), $[N, C, 1]$ (the only pass over $x$ for statistics)
        mean_in, var_in = _InstanceMoments.apply(xs, 1 if self.statistics == "official" else 0)
        # LN and BN, derived from IN's moments
        mean_ln = mean_in.mean(1, keepdim=True)
        # Law of total variance: mean of the parts' variances + variance of the parts' means. With the
        # official statistics the parts' variances are unbiased and this is the official
        # $\overline{\sigma^2_{IN} + \mu^2_{IN}} - \mu^2_{LN}$ rearranged — equal in exact arithmetic, but never
        # negative: in float32 with mean 100 and std 0.01 the official subtraction cancels to < 0 (NaN).
        var_ln = var_in.mean(1, keepdim=True) + (mean_in - mean_ln).square().mean(1, keepdim=True)
        means, variances = [mean_in, mean_ln], [var_in, var_ln]

        if self.using_bn:
            if use_batch:
                # IN's moments of the batch, or of each group of $b$ samples: $[N/b, b, C, 1]$, reduced over $b$
                mean_g, dims = batch_groups("SwitchNorm2d", mean_in, b)
                var_g, _ = batch_groups("SwitchNorm2d", var_in, b)
                bd = dims[0]
                mean_bn = mean_g.mean(bd, keepdim=True)
                # (the same rearrangement of the official formula as LN's)
                var_bn = var_g.mean(bd, keepdim=True) + (mean_g - mean_bn).square().mean(bd, keepdim=True)
                # Values behind each statistic: $NHW$ (or $bHW$ per group)
                m = (n if b is None else b) * spatial
                if self.statistics == "exact":
                    # torch keeps the unbiased batch variance as the running estimate
                    var_track = var_bn * (m / (m - 1))
                else:
                    var_track = var_bn
                self._track(mean_bn.detach(), var_track.detach(), m, b)
                # Each sample's group statistics, $[N, C, 1]$ ($[1, C, 1]$ for the whole batch)
                mean_bn, var_bn = ungroup(mean_bn, n, b), ungroup(var_bn, n, b)
            else:
                mean_bn, var_bn = self.running_mean, self.running_var
            means.append(mean_bn)
            variances.append(var_bn)

        # Importance weights: softmax over the branches
        w_mean = torch.softmax(self.mean_weight, 0)
        w_var = torch.softmax(self.var_weight, 0)
        mean = sum(w * s for w, s in zip(w_mean, means))
        var = sum(w * s for w, s in zip(w_var, variances))
        # $\gamma (x - \mu)/\sigma + \beta = x \cdot a + b$ with per-(sample, channel) $a = \gamma/\sigma$,
        # $b = \beta - \mu a$: one pass over the activations instead of four
        scale = self.weight.view(1, c, 1) * torch.rsqrt(var + self.eps)
        shift = torch.addcmul(self.bias.view(1, c, 1), mean, scale, value=-1.0)
        return _ScaleShift.apply(xs, scale, shift).reshape(n, c, h, w).to(x.dtype)

    def _track(self, mean_bn: torch.Tensor, var_bn: torch.Tensor, count: int, norm_batch: int | None = None) -> None:
        # `mean_bn`, `var_bn`: the batch's $[1, C, 1]$, or each group's $[N/b, 1, C, 1]$ with `norm_batch`;
        # `count`: the values behind each
        if self._accumulator is not None:
            # Batch average: pool the batches' (groups') sums
            acc = self._accumulator
            groups = 1 if norm_batch is None else mean_bn.shape[0]
            acc["count"] += count * groups
            # $\sum x^2$ of the batch, from its mean and (biased) variance
            biased = var_bn.double() * ((count - 1) / count) if self.statistics == "exact" else var_bn.double()
            if norm_batch is None:
                acc["sum"] += mean_bn.double() * count
                acc["sum_sq"] += (biased + mean_bn.double().square()) * count
            else:
                acc["sum"] += (mean_bn.double() * count).sum(0)
                acc["sum_sq"] += ((biased + mean_bn.double().square()) * count).sum(0)
        elif self.training and self.using_moving_average:
            with torch.no_grad():
                # (with groups: one step towards the mean over the groups of their statistics)
                mean_bn, var_bn = mean_over_groups(mean_bn, norm_batch), mean_over_groups(var_bn, norm_batch)
                self.running_mean.lerp_(mean_bn.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var_bn.to(self.running_var.dtype), self.momentum)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"using_moving_average={self.using_moving_average}, using_bn={self.using_bn}, "
                f"statistics={self.statistics!r}" + ("" if self.norm_batch is None else f", norm_batch={self.norm_batch}"))


@torch.no_grad()
def importance_weights(model: nn.Module) -> list[dict[str, list[float]]]:
    """Each `SwitchNorm2d` of `model`, in order: its learned importance weights $w$ (means) and $w'$ (variances),
    softmaxed, as lists over its statistics (IN, LN, BN for the default three)."""
    return [{"mean": torch.softmax(m.mean_weight.float(), 0).tolist(), "var": torch.softmax(m.var_weight.float(), 0).tolist()}
            for m in model.modules() if isinstance(m, SwitchNorm2d)]


@torch.no_grad()
def finalize_batch_average(model: nn.Module, batches: Iterable, num_batches: int) -> int:
    r"""Set every `SwitchNorm2d`'s BN statistics to the pooled statistics of `num_batches` batches.

    The model runs in eval mode except its SN layers, which use batch statistics and pool them:
    mean $= \sum x / M$ and variance $= (\sum x^2 - M\,\text{mean}^2)/(M - 1)$ over all $M$ values
    seen per channel (`statistics="exact"`; with `"official"` the biased pooled variance, as that
    code's running estimate). `batches` yields tensors or `(inputs, ...)` tuples. Returns the number
    of batches used. The model's train/eval modes are restored. If `batches` raises, or yields
    nothing, the running statistics are left as they were.
    """
    layers = [m for m in model.modules() if isinstance(m, SwitchNorm2d) and m.using_bn]
    if not layers:
        raise ValueError("finalize_batch_average: the model has no SwitchNorm2d with a BN branch")
    if num_batches < 1:
        raise ValueError(f"finalize_batch_average: num_batches must be >= 1, got {num_batches}")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for layer in layers:
        shape = layer.running_mean.shape
        layer._accumulator = {"count": 0, "sum": torch.zeros(shape, dtype=torch.float64, device=layer.running_mean.device),
                              "sum_sq": torch.zeros(shape, dtype=torch.float64, device=layer.running_mean.device)}
    used, done = 0, False
    try:
        for batch in batches:
            if used == num_batches:
                break
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
            used += 1
        done = True
    finally:
        for layer in layers:
            acc, layer._accumulator = layer._accumulator, None
            if done and used and acc["count"] > 1:
                mean = acc["sum"] / acc["count"]
                ss = acc["sum_sq"] - acc["count"] * mean.square()
                var = ss / (acc["count"] - 1) if layer.statistics == "exact" else ss / acc["count"]
                layer.running_mean.copy_(mean)
                layer.running_var.copy_(var)
        for module, training in modes.items():
            module.training = training
    if used == 0:
        raise ValueError("finalize_batch_average: `batches` yielded nothing")
    return used


def load_official_state_dict(model: nn.Module, state_dict: dict, keras_momentum: float | None = None) -> None:
    r"""Load a state dict saved from the official SN code (switchablenorms/Switchable-Normalization)
    into `model`, whose SN layers are `SwitchNorm2d` at the same positions.

    Keys and shapes already match (`weight`, `bias` $[1, C, 1, 1]$; `mean_weight`, `var_weight`
    (IN, LN, BN); `running_mean`, `running_var` $[1, C, 1]$). What needs converting is the
    convention the numbers were made under: every `SwitchNorm2d` that receives SN entries is
    switched to `statistics="official"` (its running variance is the official code's
    $\overline{\sigma^2_{IN} + \mu^2_{IN}} - \mu^2_{BN}$ with unbiased IN variances, not torch's
    unbiased batch variance), and `keras_momentum`, if given, becomes PyTorch's
    `momentum = 1 - keras_momentum` for further training. Loading is strict: a missing or unexpected
    key, or an SN layer whose number of branches differs, raises.
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, SwitchNorm2d)}
    for name, layer in layers.items():
        prefix = f"{name}." if name else ""
        logits = state_dict.get(prefix + "mean_weight")
        if logits is not None and logits.numel() != layer.mean_weight.numel():
            raise ValueError(f"load_official_state_dict: {name or 'model'} has {layer.mean_weight.numel()} branches, "
                             f"the checkpoint {logits.numel()} (using_bn differs)")
    model.load_state_dict(state_dict, strict=True)
    for layer in layers.values():
        layer.statistics = "official"
        if keras_momentum is not None:
            if not 0.0 <= keras_momentum <= 1.0:
                raise ValueError(f"load_official_state_dict: keras_momentum must be in [0, 1], got {keras_momentum}")
            layer.momentum = round(1.0 - keras_momentum, 10)
