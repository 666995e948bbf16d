r"""# EvoNorm: normalization and activation found by search

[Evolving Normalization-Activation Layers](https://arxiv.org/abs/2004.02967) (Liu, Brock, Simonyan &
Le, 2020) searched over small computation graphs for a layer that replaces BN + ReLU as *one* unit.
Two of the layers it found are used in practice. Both keep the affine $\gamma, \beta$ of BN and add one
per-channel parameter $v_1$ (initialised to 1); for an input $x$ of shape $[N, C, H, W]$:

**EvoNorm-B0** (batch-dependent) divides by the larger of a batch std and an instance-std term:

$$y = \frac{x}{\max\!\Big(\sqrt{s^2_{w,h,c}(x) + \epsilon},\;
  v_1 x + \sqrt{s^2_{w,h}(x) + \epsilon}\Big)}\,\gamma + \beta$$

where $s^2_{w,h,c}$ is the variance of channel $c$ over the batch and positions $(N, H, W)$ — BN's
variance — and $s^2_{w,h}$ the variance of each (sample, channel) over $(H, W)$ — instance norm's.
In eval mode the batch variance is replaced by a moving average kept in `running_var`. Nothing is
subtracted: the layer is not centred, and the $\max$ with the term $v_1 x$ makes it nonlinear.

**EvoNorm-S0** (sample-based, no batch statistics) is a SiLU/Swish gate divided by a group std:

$$y = \frac{x\,\sigma(v_1 x)}{\sqrt{s^2_{w,h,c/g}(x) + \epsilon}}\,\gamma + \beta$$

with $\sigma$ the logistic sigmoid and $s^2_{w,h,c/g}$ the variance of each (sample, group of $C/G$
channels) over the group's channels and positions — group norm's variance. Train and eval are the same.

Both layers *include their activation*: `norm="evob0"` / `"evos0"` put no ReLU after them (see
`labnorm.norms`). With `apply_act=False` (the authors' `nonlinearity=False`) a layer is only the affine
$\gamma x + \beta$ — no normalization at all. The authors use that form where BN has no ReLU after it,
and their ResNet code refuses EvoNorm in the post-activation (v1) ResNet for exactly that reason
("Evonorms require the pre-activation form"); see `labnorm.models` for what labnorm's v1 ResNet-18 does.

## Conventions, checked against the authors' TensorFlow code

The reference is the official implementation in `tensorflow/tpu` (`models/official/resnet/resnet_model.py`,
function `evonorm`), and the paper's Table 1/Appendix. labnorm follows them:

| | paper / authors' code | labnorm | timm's `EvoNorm2dB0` / `EvoNorm2dS0` |
|---|---|---|---|
| variances | biased (`tf.nn.moments`) | biased | biased |
| $\epsilon$ | inside the root, 1e-5 | inside, 1e-5 | inside; B0 **1e-3**, S0 1e-5 |
| B0 moving variance | biased batch variance, decay 0.9 | biased, `momentum=0.1` | **unbiased** ($\times \frac{NHW}{NHW-1}$), momentum 0.1 |
| B0 gradient through the batch variance | yes | yes | yes |
| S0 groups not dividing $C$ | reduced to the largest divisor $\le G$ | the layer refuses; the `evos0` factory reduces like the authors | assertion error |
| statistics of a bf16 input | moving variance in float32, the rest in the input's dtype | float32 | float32 |

Sizes of the timm differences, measured on 8 CIFAR-10 test images (standardized) through a random
3×3 conv to 16 channels, in float64: the unbiased moving variance is larger by the factor
$NHW/(NHW-1) = 1 + 1/8191$ here (but $1 + 1/31$ at batch 2 on a 4×4 map); at its steady state it moves
B0's eval output by $4 \cdot 10^{-4}$ at most, $6 \cdot 10^{-5}$ of the largest output. timm's B0
default `eps=1e-3` instead of 1e-5 changes the training output by up to 0.7% of the largest output
(median 0.26% relative) on these unit-scale activations, and by 87% when the same activations are
scaled by 0.01 (variance $3 \cdot 10^{-5}$, below timm's $\epsilon$): there $\epsilon$ decides the
output. (`tests/test_evonorm.py` checks the variance factor and the order of the $\epsilon$ effect.)

**Edge cases and their answers.** B0 in training needs more than one value per channel for its batch
variance (`ValueError`, like `torch.nn.BatchNorm2d`; a single image with $H W > 1$ is accepted, its
statistics come from its positions); S0 works at any batch size. **All-zero input**: every std
becomes $\sqrt\epsilon$, the output is $\beta$ (finite). **Groups that do not divide $C$**:
`ValueError` at construction. **Float32 with mean 100 and std 0.01**: the variances are computed in
two passes (centred first), so they keep their precision; the output matches float64 to float32
precision (tested). **bf16**: statistics in float32, output in the input's dtype. **Wrong rank or
channel count**: `ValueError` naming the layer. `torch.compile`, `state_dict` round trip, `deepcopy`:
tested. Under `torch.compile`, S0 and B0 in training run the same formulas with their backward
written out (`_EvoNormS0Function`, `_EvoNormB0Function` at the end of this file), because inductor's
code for autograd's own backward of them was slow; each is tested equal to the paper's formula in float64.

## Per-worker statistics (B0)

`EvoNorm2dB0(C, norm_batch=b)` takes the batch variance over each group $B_j$ of $b$ consecutive
samples by itself, as $N/b$ workers of $b$ images would:
$s^2_{w,h,c}(x)_j = \frac{1}{bHW}\sum_{n \in B_j, h, w} (x_{n,c,h,w} - \mu_{j,c})^2$, each sample divided by its
group's $\max(\sqrt{s^2_j + \epsilon}, v_1 x + \sqrt{s^2_{w,h} + \epsilon})$. The moving variance takes one step
towards the mean over the groups of their (biased) variances, as averaging the workers' copies would.
Vectorized ($[N/b, b, C, H, W]$ reduced over $(b, H, W)$, `labnorm._norm_batch`), in the compiled path
too. `None` (default): the whole batch. A batch $b$ does not divide, or $bHW = 1$ in training:
`ValueError`. Eval mode and S0 (no batch statistics): unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ._norm_batch import batch_groups, check_group_values, check_norm_batch, mean_over_groups, ungroup

__all__ = ["EvoNorm2dB0", "EvoNorm2dS0", "largest_divisor_at_most"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def largest_divisor_at_most(num_channels: int, groups: int) -> int:
    r"""The authors' group reduction: the largest $g \le$ `groups` that divides `num_channels`."""
    for name, value in (("num_features", num_channels), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"EvoNorm2dS0: {name} must be a positive int, got {value!r}")
    g = min(groups, num_channels)
    while num_channels % g:
        g -= 1
    return g


def _check_input(layer: str, x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"{layer}: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer}: expected {channels} channels in dim 1 of an [N, C, H, W] input, "
            f"got {x.shape[1]} (input shape {tuple(x.shape)})"
        )


def _view(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A per-channel vector $[C]$ as $[1, C, 1, 1]$ in `dtype`."""
    return t.reshape(1, -1, 1, 1).to(dtype)


class _EvoNorm(nn.Module):
    """Parameters shared by B0 and S0: $\\gamma$ (`weight`), $\\beta$ (`bias`), $v_1$ (`v`, with the activation)."""

    #: Under `torch.compile`, take the closed-form backward (`_EvoNormB0Function`, `_EvoNormS0Function`); False compiles
    #: the formula as written (`benchmarks/bench_compile_paths.py` times both)
    fast_compiled_path: bool = True

    def __init__(self, name: str, num_features: int, eps: float, apply_act: bool, factory: dict) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if eps <= 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        self.num_features = num_features
        self.eps = eps
        self.apply_act = apply_act
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        # $v_1 = 1$ at initialization (the authors' initializer)
        self.v = nn.Parameter(torch.ones(num_features, **factory)) if apply_act else None

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        if self.v is not None:
            nn.init.ones_(self.v)

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        # $\gamma x + \beta$, one fused multiply-add
        return torch.addcmul(_view(self.bias, x.dtype), x, _view(self.weight, x.dtype))


class EvoNorm2dB0(_EvoNorm):
    r"""EvoNorm-B0: $x / \max(\sqrt{s^2_{w,h,c}+\epsilon},\, v_1 x + \sqrt{s^2_{w,h}+\epsilon})\,\gamma + \beta$.

    Args:
        num_features: $C$.
        eps: added to both variances inside the square roots.
        momentum: weight of the new batch in the moving variance (torch convention; the authors'
            `decay=0.9` is `momentum=0.1`).
        apply_act: with False, the layer is the affine $\gamma x + \beta$ only (the authors' `nonlinearity=False`).
        norm_batch: the batch variance over groups of this many consecutive samples (see the module
            docstring); `None` for the whole batch. Not in the state dict.

    Buffers: `running_var`, the moving average of the *biased* batch variance (starts at 1).

    An empty batch (N = 0) in training is refused, as a batch of one value per channel (the batch
    variance and the moving average need values; torch has no EvoNorm — its `BatchNorm2d` returns an
    empty output); in eval mode it gives an empty output. A half-precision module or input computes in
    float32 and returns the input's dtype; so does bf16 autocast.

    Raises:
        ValueError: input that is not 4-D, has the wrong channel count, or has one value per channel in
            training (an empty batch included).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        apply_act: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        norm_batch: int | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype}
        super().__init__("EvoNorm2dB0", num_features, eps, apply_act, factory)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EvoNorm2dB0: momentum must be in [0, 1], got {momentum!r}")
        self.momentum = momentum
        self.norm_batch = check_norm_batch("EvoNorm2dB0", norm_batch)
        self.register_buffer("running_var", torch.ones(num_features, **factory))

    def reset_running_stats(self) -> None:
        self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("EvoNorm2dB0", x, self.num_features)
        if not self.apply_act:
            return self._affine(x)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        if self.training:
            b = self.norm_batch
            check_group_values("EvoNorm2dB0", x, b)
            if x.numel() // self.num_features <= 1:
                raise ValueError(
                    "EvoNorm2dB0: expected more than 1 value per channel when training (its batch variance), "
                    f"got input of shape {tuple(x.shape)}"
                )
            # The batch, or its groups of $b$ samples: $[N/b, b, C, H, W]$ reduced over $(b, H, W)$
            xg, dims = batch_groups("EvoNorm2dB0", xs, b)
            if self.fast_compiled_path and torch.compiler.is_compiling():
                # Compiled: the same formula with its backward written out (`_EvoNormB0Function`)
                params = (p.to(xs.dtype) for p in (self.v, self.weight, self.bias))
                y, batch_var = _EvoNormB0Function.apply(xs, *params, self.eps, b)
                with torch.no_grad():
                    batch_var = mean_over_groups(batch_var, b)
                    self.running_var.lerp_(batch_var.flatten().to(self.running_var.dtype), self.momentum)
                return y.to(x.dtype)
            # $s^2_{w,h,c}$: biased variance of each channel over $(N, H, W)$ (or of each group), gradient
            # flowing through it; $[1, C, 1, 1]$, or $[N, C, 1, 1]$ holding each sample's group's
            batch_var = torch.var(xg, dim=dims, correction=0, keepdim=True)
            with torch.no_grad():
                # moving variance $\leftarrow (1 - m)\,\text{moving} + m\, s^2_{w,h,c}$ (biased, as the authors;
                # with groups, the mean over the groups of theirs)
                mean_var = mean_over_groups(batch_var, b)
                self.running_var.lerp_(mean_var.flatten().to(self.running_var.dtype), self.momentum)
            batch_var = ungroup(batch_var, x.shape[0], b)
        else:
            if x.shape[0] == 0:
                # An empty batch in eval: nothing to normalize — an empty output (the affine map of nothing),
                # without torch's warning about an instance variance of no values
                return self._affine(xs).to(x.dtype)
            batch_var = _view(self.running_var, xs.dtype)
        # left: $\sqrt{s^2_{w,h,c} + \epsilon}$
        left = torch.sqrt(batch_var + self.eps)
        # right: $v_1 x + \sqrt{s^2_{w,h} + \epsilon}$, the instance std of each (sample, channel)
        instance_var = torch.var(xs, dim=(2, 3), correction=0, keepdim=True)
        right = torch.addcmul(torch.sqrt(instance_var + self.eps), xs, _view(self.v, xs.dtype))
        # $x / \max(\text{left}, \text{right})$, then $\gamma \cdot + \beta$
        return self._affine(xs / torch.maximum(left, right)).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, apply_act={self.apply_act}"
                + ("" if self.norm_batch is None else f", norm_batch={self.norm_batch}"))


class EvoNorm2dS0(_EvoNorm):
    r"""EvoNorm-S0: $x\,\sigma(v_1 x) / \sqrt{s^2_{w,h,c/g} + \epsilon}\,\gamma + \beta$.

    Args:
        num_features: $C$.
        groups: $G$, the number of channel groups of the std (must divide $C$; the `evos0` factory
            reduces it to a divisor the way the authors' code does).
        eps: added to the group variance inside the square root.
        apply_act: with False, the layer is the affine $\gamma x + \beta$ only.

    No statistic involves the batch: an empty batch (N = 0) gives an empty output in training and
    eval. A half-precision module or input computes in float32 and returns the input's dtype; so does
    bf16 autocast.

    Raises:
        ValueError: `groups` that does not divide `num_features` (at construction); input that is not
            4-D or has the wrong channel count.
    """

    def __init__(
        self,
        num_features: int,
        groups: int = 32,
        eps: float = 1e-5,
        apply_act: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype}
        super().__init__("EvoNorm2dS0", num_features, eps, apply_act, factory)
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"EvoNorm2dS0: groups must be a positive int, got {groups!r}")
        if num_features % groups:
            raise ValueError(
                f"EvoNorm2dS0: num_features ({num_features}) must be divisible by groups ({groups}); "
                f"the largest divisor not above {groups} is {largest_divisor_at_most(num_features, groups)}"
            )
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("EvoNorm2dS0", x, self.num_features)
        if not self.apply_act:
            return self._affine(x)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        if x.shape[0] == 0:
            # An empty batch: nothing to normalize — an empty output (the affine map of nothing)
            return self._affine(xs).to(x.dtype)
        if self.fast_compiled_path and torch.compiler.is_compiling():
            # Compiled: the same formula with its backward written out (`_EvoNormS0Function`)
            params = (p.to(xs.dtype) for p in (self.v, self.weight, self.bias))
            return _EvoNormS0Function.apply(xs, *params, self.groups, self.eps).to(x.dtype)
        n, c, h, w = xs.shape
        # $[N, C, H, W] \to [N, G, C/G \cdot H \cdot W]$: one row per (sample, group)
        xg = xs.reshape(n, self.groups, -1)
        # $\sqrt{s^2_{w,h,c/g} + \epsilon}$, biased variance of each row, broadcast back to its channels
        group_std = torch.sqrt(torch.var(xg, dim=2, correction=0, keepdim=True) + self.eps)
        # numerator $x\,\sigma(v_1 x)$: a Swish gate with a learned per-channel slope
        num = xs * torch.sigmoid(xs * _view(self.v, xs.dtype))
        y = (num.reshape(n, self.groups, -1) / group_std).reshape(n, c, h, w)
        return self._affine(y).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, groups={self.groups}, eps={self.eps}, apply_act={self.apply_act}"


def _per_channel(t: torch.Tensor, channels: int) -> torch.Tensor:
    """A per-(sample, group) tensor $[N, G]$ as per-(sample, channel) $[N, C, 1, 1]$."""
    n, groups = t.shape
    return t.repeat_interleave(channels // groups, dim=1).reshape(n, channels, 1, 1)


class _EvoNormB0Function(torch.autograd.Function):
    r"""EvoNorm-B0 in training with a closed-form backward: the path `EvoNorm2dB0` takes under `torch.compile`.

    Returns the output and the batch variance $s^2_{w,h,c}$ (for the moving average; not differentiable).
    With `norm_batch=b` the batch statistics are each group's of $b$ samples (the variance returned as
    $[N/b, 1, C, 1, 1]$), and below $N$ becomes $b$ and the sums over $n$ run within each group.
    The batch variance is assembled from the per-(sample, channel) statistics the layer needs anyway,
    by the law of total variance — $s^2_{w,h,c} = \overline{s^2_{w,h}} + \operatorname{Var}_N(\mu_{w,h})$,
    both terms computed centred — so the forward reads the map once for statistics; the backward is
    one pass of per-(sample, channel) sums and one element-wise pass. Compiled, at batch 128 it
    measured 1.31× torch's eager `BatchNorm2d` against 1.48× for the formula as written, but at
    batch 2 2.00× against 1.43× (`benchmarks/bench_compile_paths.py`, one run).

    With $B = \sqrt{s^2_{w,h,c} + \epsilon}$, $S = \sqrt{s^2_{w,h} + \epsilon}$, $R = v x + S$, $D = \max(B, R)$,
    $y = \gamma x / D + \beta$, $g = \partial L/\partial y$ and $q = -g \gamma x / D^2$ split between $R$
    and $B$ as `torch.maximum` splits it (all to the larger, half each on a tie) into $q_R + q_B$:

    $$\frac{\partial L}{\partial x} = \frac{g\gamma}{D} + q_R v
      + \frac{\sum_{h,w} q_R}{S} \frac{x - \mu_{w,h}}{HW}
      + \frac{\sum_{n,h,w} q_B}{B} \frac{x - \mu_{w,h,c}}{NHW}$$

    $\partial L/\partial \beta = \sum g$, $\partial L/\partial \gamma = \sum g x / D$,
    $\partial L/\partial v = \sum q_R x$, the sums over $(N, H, W)$. `tests/test_evonorm.py` checks it
    against the paper's formula in float64 and with gradcheck. Not differentiable twice.
    """

    @staticmethod
    def forward(ctx, x, v, weight, bias, eps: float, norm_batch: int | None = None):
        n, c, h, w = x.shape
        # $s^2_{w,h}$ and $\mu_{w,h}$ of each (sample, channel): $[N, C, 1, 1]$
        inst_var, inst_mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
        # $s^2_{w,h,c}$ by the law of total variance, and $\mu_{w,h,c}$: $[1, C, 1, 1]$ — or per group of
        # `norm_batch` samples, $[N/b, 1, C, 1, 1]$, from IN's moments viewed as $[N/b, b, C, 1, 1]$
        mean_g, dims = batch_groups("EvoNorm2dB0", inst_mean, norm_batch)
        var_g, _ = batch_groups("EvoNorm2dB0", inst_var, norm_batch)
        bd = dims[0]
        batch_mean = mean_g.mean(bd, keepdim=True)
        batch_var = var_g.mean(bd, keepdim=True) + (mean_g - batch_mean).square().mean(bd, keepdim=True)
        # (each sample's group's, $[N, C, 1, 1]$; unchanged for the whole batch)
        batch_mean = ungroup(batch_mean, n, norm_batch)
        left = torch.sqrt(ungroup(batch_var, n, norm_batch) + eps)
        inst_std = torch.sqrt(inst_var + eps)
        den = torch.maximum(left, torch.addcmul(inst_std, x, v.reshape(1, -1, 1, 1)))
        ctx.save_for_backward(x, v, weight, inst_mean, inst_std, batch_mean, left)
        ctx.norm_batch = norm_batch
        ctx.mark_non_differentiable(batch_var)
        return torch.addcmul(bias.reshape(1, -1, 1, 1), x / den, weight.reshape(1, -1, 1, 1)), batch_var

    @staticmethod
    def backward(ctx, g, _):
        x, v, weight, inst_mean, inst_std, batch_mean, left = ctx.saved_tensors
        n, c, h, w = x.shape
        vv = v.reshape(1, -1, 1, 1)
        right = torch.addcmul(inst_std, x, vv)
        den = torch.maximum(left, right)
        # `torch.maximum`'s rule: the gradient to the larger argument, half to each on a tie
        to_right = (right > left).to(x.dtype) + 0.5 * (right == left).to(x.dtype)
        g_gamma = g * weight.reshape(1, -1, 1, 1)
        q = -g_gamma * x / den.square()  # $\partial L / \partial D$
        q_right = q * to_right
        # Pass 1: sums over $(H, W)$ per (sample, channel), then over $N$
        grad_bias = g.sum((2, 3)).sum(0)
        grad_weight = (g * x / den).sum((2, 3)).sum(0)
        grad_v = (q_right * x).sum((2, 3)).sum(0)
        g_inst = q_right.sum((2, 3), keepdim=True)  # $\sum_{h,w} q_R$, $[N, C, 1, 1]$
        # $\sum_{n,h,w} q_B$ over the batch, or over each sample's group (`norm_batch`)
        b = ctx.norm_batch
        g_batch, dims = batch_groups("EvoNorm2dB0", (q - q_right).sum((2, 3), keepdim=True), b)
        g_batch = ungroup(g_batch.sum(dims[0], keepdim=True), n, b)
        # Pass 2: element-wise
        grad_x = (g_gamma / den + q_right * vv
                  + (g_inst / inst_std) * (x - inst_mean) / (h * w)
                  + (g_batch / left) * (x - batch_mean) / ((n if b is None else b) * h * w))
        return grad_x, grad_v, grad_weight, grad_bias, None, None


class _EvoNormS0Function(torch.autograd.Function):
    r"""EvoNorm-S0 with a closed-form backward: the path `EvoNorm2dS0` takes under `torch.compile`.

    Through autograd's own backward of the formula, inductor (torch 2.13, CPU) made slow code: the
    $[N, G, C/G \cdot HW]$ view of the group variance turned every element-wise kernel into scalar
    loops with index arithmetic, and the per-channel parameter gradients into strided sums over
    $(N, H, W)$. Written out, the backward is two passes over the map, as BN's: one pass of
    per-(sample, channel) sums over $(H, W)$, one element-wise pass for $\partial L / \partial x$.
    Compiled, train forward + backward at batch 128 went from 3.08× torch's eager `BatchNorm2d` to
    1.13× (`benchmarks/bench_compile_paths.py`, both in one run).

    With $\sigma = \sigma(v x)$, $\rho = 1 / \sqrt{s^2 + \epsilon}$ of the group, $\mu$ its mean, $M$
    its size, and $g = \partial L / \partial y$ for $y = x \sigma \rho \gamma + \beta$:

    $$\frac{\partial L}{\partial x} = g \gamma \rho \big(\sigma + v x \sigma (1 - \sigma)\big)
      - \frac{\rho^3}{M} (x - \mu) \sum_{\text{group}} g \gamma x \sigma$$

    $\partial L / \partial \beta = \sum g$, $\partial L / \partial \gamma = \sum g x \sigma \rho$,
    $\partial L / \partial v = \sum g \gamma \rho\, x^2 \sigma (1 - \sigma)$, the sums over $(N, H, W)$.
    `tests/test_evonorm.py` checks it against autograd's backward of the formula in float64, and
    gradcheck. It is not differentiable twice (nor is a compiled graph).
    """

    @staticmethod
    def forward(ctx, x, v, weight, bias, groups: int, eps: float):
        n, c = x.shape[:2]
        # $\mu$ and $s^2$ of each (sample, group): $[N, G]$
        var, mean = torch.var_mean(x.reshape(n, groups, -1), dim=2, correction=0)
        rstd = torch.rsqrt(var + eps)
        sig = torch.sigmoid(x * v.reshape(1, -1, 1, 1))
        ctx.save_for_backward(x, v, weight, mean, rstd)
        ctx.groups = groups
        scale = _per_channel(rstd, c) * weight.reshape(1, -1, 1, 1)  # $\rho \gamma$, $[N, C, 1, 1]$
        return torch.addcmul(bias.reshape(1, -1, 1, 1), x * sig, scale)

    @staticmethod
    def backward(ctx, g):
        x, v, weight, mean, rstd = ctx.saved_tensors
        n, c = x.shape[:2]
        size = x[0].numel() // ctx.groups  # $M$
        sig = torch.sigmoid(x * v.reshape(1, -1, 1, 1))
        dsig = sig * (1 - sig)
        # Pass 1: per-(sample, channel) sums over $(H, W)$
        g_xsig = (g * x * sig).sum((2, 3))  # $\sum g x \sigma$
        g_x2dsig = (g * x * x * dsig).sum((2, 3))  # $\sum g x^2 \sigma (1 - \sigma)$
        g_sum = g.sum((2, 3))
        rho = _per_channel(rstd, c).reshape(n, c)
        grad_bias = g_sum.sum(0)
        grad_weight = (g_xsig * rho).sum(0)
        grad_v = (g_x2dsig * rho * weight).sum(0)
        # $\sum_{\text{group}} g \gamma x \sigma$, per (sample, group)
        g_group = (g_xsig * weight).reshape(n, ctx.groups, -1).sum(2)
        # Pass 2: element-wise
        coef = _per_channel(-g_group * rstd.pow(3) / size, c)
        gamma_rho = (weight * rho).reshape(n, c, 1, 1)
        grad_x = g * gamma_rho * (sig + x * v.reshape(1, -1, 1, 1) * dsig) + coef * (x - _per_channel(mean, c))
        return grad_x, grad_v, grad_weight, grad_bias, None, None

