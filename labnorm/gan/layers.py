r"""# Weight-normalized GAN layers (Xiang & Li, 2017)

[On the Effects of Batch and Weight Normalization in Generative Adversarial
Networks](https://arxiv.org/abs/1704.03971) replaces batch norm in DCGAN by weight normalization
and a translated ReLU, and measures the result with a reconstruction loss (`labnorm.gan.train`).
The authors' code is [stormraiser/GAN-weight-norm](https://github.com/stormraiser/GAN-weight-norm).

**Strict and affine WN layers.** A *strict* weight-normalized layer divides each output unit's
weight vector by its norm and has no bias; an *affine* one adds a learned scale and bias:

$$y = \frac{w^\top x}{\lVert w \rVert} \quad\text{(strict)}, \qquad
  y = \gamma\,\frac{w^\top x}{\lVert w \rVert} + \beta \quad\text{(affine)}.$$

If the inputs are i.i.d. with mean 0 and variance 1, a strict layer's output has variance
$\sum_i (w_i/\lVert w \rVert)^2 = 1$: unit variance is preserved layer after layer without batch
statistics. A strict layer is also a contraction for gradients (Lemma 2 of the paper):
$\partial L/\partial x = \sum_j \hat w_j\, \partial L/\partial y_j$, and $\lVert \hat w_j \rVert_1 \le
\sqrt n$ for a unit vector of $n$ entries, so

$$\sum_i \left|\frac{\partial L}{\partial x_i}\right| \le \sqrt{n}\, \sum_j \left|\frac{\partial L}{\partial y_j}\right|.$$

**Transposed convolutions** (Appendix B). In a stride-$d$ transposed conv each output element is
reached by only one of the $d_w d_h$ "phases" of the kernel, i.e. by about $1/(d_w d_h)$ of its
entries; with the full kernel normalized to 1 the output variance would be about $1/(d_w d_h)$. The
norm is therefore divided by $\sqrt{d_w d_h}$:
$\lVert w \rVert_{\text{eff}} = \sqrt{\sum w^2 / (d_w d_h) + \epsilon}$, $\epsilon = 10^{-6}$ added to
the sum of squares before the root. A *strided* (ordinary) conv needs no factor — each output still
sees the whole kernel — although the paper's text names both; the authors' code applies the factor
to transposed convs only, and so does this module (tested: unit variance either way).

Here the normalization is a `torch.nn.utils.parametrize` parametrization (`UnitNorm`) of the
layer's `weight`, so `layer.weight` is the normalized weight and the raw $v$ lives in
`layer.parametrizations.weight.original`; the affine scale $\gamma$ (`scale`) is folded into the
weight rather than multiplied into the (larger) output.

**Initialization** (Appendix B): convs $U(\pm 1/\sqrt{c_i k_w k_h})$; the generator's first
(fully connected) layer $U(\pm 0.01/\sqrt{c_i})$ (`init_factor=0.01`). Under WN the size of $v$ does
not change the output, but it sets the effective step size (the gradient scales as $1/\lVert v \rVert$).

**Translated ReLUs** (eq. 10–11). A strict layer has no bias, so the threshold of the activation
is learned instead: `TReLU` $y = \max(x - \alpha, 0) + \alpha$ and `TPReLU`
$y = \mathrm{PReLU}_a(x - \alpha) + \alpha$, per channel. The slope $a$ is kept in $[0, 1]$ by
`clip_slopes_(model)` after every optimizer step, so the activation is 1-Lipschitz too.

**Dtypes**, as torch: the WN convs and linears refuse a float16/bfloat16 input to float32 weights
outside `torch.autocast` (a `TypeError` naming the layer, as `nn.Conv2d`) and run as half-precision
layers (`.half()`, `.to(torch.bfloat16)`) on input of their dtype, and under bf16 autocast; `TReLU`,
`TPReLU` and `WNAddition` compute in their parameters' precision and return the input's dtype.
No layer here takes statistics over the batch: an empty batch (N = 0) gives an empty output.

**Errors name the layer you built**: a bad argument refused by torch's `Conv2d`/`Linear` or by the
`UnitNorm` parametrization inside a WN layer is re-raised with that layer's name in front.

**Weight-normalized addition** (Appendix B, eq. 17), for residual blocks:
$y = (u_r\,r + u_s\,s)/\sqrt{u_r^2 + u_s^2 + \epsilon}$ per channel, initialized to $u_r = 0$,
$u_s = 1$: at init the block passes its shortcut through.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

__all__ = [
    "UnitNorm", "StrictWNLinear", "StrictWNConv2d", "StrictWNConvTranspose2d",
    "AffineWNLinear", "AffineWNConv2d", "AffineWNConvTranspose2d",
    "TReLU", "TPReLU", "clip_slopes_", "WNAddition",
]

EPS = 1e-6


class UnitNorm(nn.Module):
    r"""Parametrization $\hat w = v / \sqrt{f \sum v^2 + \epsilon}$, one norm per output unit.

    `out_dim` is the output-unit dim of the weight (0 for Linear/Conv, 1 for ConvTranspose);
    `factor` $f$ is $1/(d_w d_h)$ for a transposed conv of stride $(d_h, d_w)$, else 1.
    """

    def __init__(self, out_dim: int, factor: float = 1.0, eps: float = EPS) -> None:
        super().__init__()
        if eps < 0:
            raise ValueError(f"UnitNorm: eps must be >= 0, got {eps}")
        self.out_dim, self.factor, self.eps = out_dim, factor, eps

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(v.dim()) if d != self.out_dim]
        # $f \sum v^2 + \epsilon$ per output unit, then divide
        sq = v.square().sum(dim=dims, keepdim=True)
        return v * torch.rsqrt(sq * self.factor + self.eps)

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}, factor={self.factor:g}, eps={self.eps:g}"


@contextmanager
def _named(layer: nn.Module):
    """Errors raised while building `layer` (by torch's `Conv2d`/`Linear`, by `UnitNorm`) name `layer` first."""
    try:
        yield
    except (ValueError, TypeError) as e:
        name = type(layer).__name__.replace("Parametrized", "")
        if str(e).startswith(f"{name}:"):
            raise
        raise type(e)(f"{name}: {e}") from None


def _check_units(layer: str, **units: int) -> None:
    for key, value in units.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{layer}: {key} must be a positive int, got {value!r}")


def _uniform_init_(weight: torch.Tensor, fan_in: int, factor: float) -> None:
    # Appendix B: $U(\pm \text{factor} / \sqrt{\text{fan-in}})$
    bound = factor / math.sqrt(fan_in)
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def _wn_setup(layer: nn.Module, in_units: int, transposed: bool, eps: float, init_factor: float) -> None:
    """Initialize the raw weight as Appendix B, then register the unit-norm parametrization."""
    kernel = math.prod(getattr(layer, "kernel_size", (1,)))
    _uniform_init_(layer.weight, in_units * kernel, init_factor)
    factor = 1.0 / math.prod(layer.stride) if transposed else 1.0
    parametrize.register_parametrization(layer, "weight", UnitNorm(1 if transposed else 0, factor, eps))


def _affine_params(layer: nn.Module, out_units: int, init_scale: float) -> None:
    """$\\gamma$ (`scale`, init `init_scale`) and $\\beta$ (`bias`, init 0), one per output unit."""
    layer.scale = nn.Parameter(torch.full((out_units,), float(init_scale)))
    layer.bias = nn.Parameter(torch.zeros(out_units))


def _check_input(layer: nn.Module, x: torch.Tensor, rank: int, channels: int) -> None:
    name = type(layer).__name__.replace("Parametrized", "")
    if x.dim() != rank or x.shape[1] != channels:
        raise ValueError(f"{name}: expected input with {rank} dims and {channels} channels in dim 1, "
                         f"got shape {tuple(x.shape)}")
    # Like nn.Conv2d and nn.Linear: one dtype for input and weight, unless autocast casts both
    dtype = layer.parametrizations.weight.original.dtype
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name}: input is {x.dtype}, weight is {dtype}; the layer does not mix dtypes (as "
                        "nn.Conv2d). Run it under torch.autocast, or convert one of them (layer.to(x.dtype))")


# ---------------------------------------------------------------- strict layers: $y = \hat w^\top x$


class StrictWNLinear(nn.Linear):
    r"""$y = W x / \lVert W_j \rVert$ per output unit $j$, no bias. `init_factor=0.01` for the generator's first layer."""

    def __init__(self, in_features: int, out_features: int, eps: float = EPS, init_factor: float = 1.0) -> None:
        with _named(self):
            _check_units(type(self).__name__, in_features=in_features, out_features=out_features)
            super().__init__(in_features, out_features, bias=False)
            _wn_setup(self, in_features, False, eps, init_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x, 2, self.in_features)
        return F.linear(x, self.weight)


class StrictWNConv2d(nn.Conv2d):
    """`nn.Conv2d` with each filter normalized to unit norm and no bias (takes Conv2d's arguments + `eps`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, eps: float = EPS, init_factor: float = 1.0) -> None:
        with _named(self):
            _check_units(type(self).__name__, in_channels=in_channels, out_channels=out_channels)
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)
            _wn_setup(self, in_channels // groups, False, eps, init_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x, 4, self.in_channels)
        return self._conv_forward(x, self.weight, None)


class StrictWNConvTranspose2d(nn.ConvTranspose2d):
    r"""`nn.ConvTranspose2d` with each output channel's kernel normalized to norm $\sqrt{d_w d_h}$, no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, dilation=1, eps: float = EPS, init_factor: float = 1.0) -> None:
        with _named(self):
            _check_units(type(self).__name__, in_channels=in_channels, out_channels=out_channels)
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
                             bias=False, dilation=dilation)
            # fan-in as the paper counts it: input channels x kernel area
            _wn_setup(self, in_channels // groups, True, eps, init_factor)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        _check_input(self, x, 4, self.in_channels)
        return self._transposed(x, self.weight, None, output_size)

    def _transposed(self, x, weight, bias, output_size):
        output_padding = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size, 2,
                                              self.dilation)
        return F.conv_transpose2d(x, weight, bias, self.stride, self.padding, output_padding, self.groups,
                                  self.dilation)


# ------------------------------------------------- affine layers: $y = \gamma\,\hat w^\top x + \beta$


class AffineWNLinear(StrictWNLinear):
    r"""$y = \gamma_j\, W_j x / \lVert W_j \rVert + \beta_j$."""

    def __init__(self, in_features: int, out_features: int, eps: float = EPS, init_factor: float = 1.0,
                 init_scale: float = 1.0) -> None:
        super().__init__(in_features, out_features, eps, init_factor)
        _affine_params(self, out_features, init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x, 2, self.in_features)
        # $\gamma$ folded into the (small) weight instead of the (large) output
        return F.linear(x, self.weight * self.scale.view(-1, 1), self.bias)


class AffineWNConv2d(StrictWNConv2d):
    r"""$y = \gamma_c\, (\hat w_c \star x) + \beta_c$ per output channel $c$."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, eps: float = EPS, init_factor: float = 1.0, init_scale: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, eps, init_factor)
        _affine_params(self, out_channels, init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x, 4, self.in_channels)
        return self._conv_forward(x, self.weight * self.scale.view(-1, 1, 1, 1), self.bias)


class AffineWNConvTranspose2d(StrictWNConvTranspose2d):
    r"""The transposed strict layer with $\gamma_c$ and $\beta_c$ per output channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, dilation=1, eps: float = EPS, init_factor: float = 1.0,
                 init_scale: float = 1.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, dilation,
                         eps, init_factor)
        _affine_params(self, out_channels, init_scale)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        _check_input(self, x, 4, self.in_channels)
        # ConvTranspose weights are [in, out/groups, kH, kW]: the output channel is dim 1
        return self._transposed(x, self.weight * self.scale.view(1, -1, 1, 1), self.bias, output_size)


# ------------------------------------------------------------------------ translated activations


def _channel_view(layer: nn.Module, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2 or x.shape[1] != p.numel():
        raise ValueError(f"{type(layer).__name__}: expected input [N, {p.numel()}, ...], got shape {tuple(x.shape)}")
    return p.view(1, -1, *([1] * (x.dim() - 2)))


class TReLU(nn.Module):
    r"""Translated ReLU (eq. 10): $y = \max(x - \alpha, 0) + \alpha$ with a learned threshold $\alpha$ per channel (`bias`)."""

    def __init__(self, num_channels: int) -> None:
        _check_units("TReLU", num_channels=num_channels)
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = _channel_view(self, x, self.bias)
        # In the parameters' precision, returned in the input's (as torch's norm layers do)
        xs = x.to(alpha.dtype)
        return (F.relu(xs - alpha) + alpha).to(x.dtype)


class TPReLU(nn.Module):
    r"""Translated parametric ReLU (eq. 11): $y = \mathrm{PReLU}_a(x - \alpha) + \alpha$ per channel.

    `weight` is the slope $a$ (init 0.25, as `nn.PReLU`), `bias` the threshold $\alpha$ (init 0).
    Keep $a \in [0, 1]$ with `clip_slopes_(model)` after every optimizer step.
    """

    def __init__(self, num_channels: int, init: float = 0.25) -> None:
        _check_units("TPReLU", num_channels=num_channels)
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_channels,), float(init)))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = _channel_view(self, x, self.bias)
        xs = x.to(alpha.dtype)
        return (F.prelu(xs - alpha, self.weight) + alpha).to(x.dtype)


@torch.no_grad()
def clip_slopes_(model: nn.Module, low: float = 0.0, high: float = 1.0) -> int:
    """Clamp the slope of every `TPReLU` in `model` to [low, high] in place; returns how many layers."""
    layers = [m for m in model.modules() if isinstance(m, TPReLU)]
    for m in layers:
        m.weight.clamp_(low, high)
    return len(layers)


# ---------------------------------------------------------------------------- residual addition


class WNAddition(nn.Module):
    r"""Weight-normalized addition (eq. 17): $y_c = (u_{r,c}\,r_c + u_{s,c}\,s_c)/\sqrt{u_{r,c}^2 + u_{s,c}^2 + \epsilon}$.

    Called as `add(residual, shortcut)`; `weight` is $[2, C]$ = ($u_r$, $u_s$), initialized to
    (0, 1), so at init the output is the shortcut (times $1/\sqrt{1 + \epsilon}$).
    """

    def __init__(self, num_channels: int, eps: float = EPS) -> None:
        _check_units("WNAddition", num_channels=num_channels)
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.stack([torch.zeros(num_channels), torch.ones(num_channels)]))

    def forward(self, residual: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if residual.shape != shortcut.shape:
            raise ValueError(f"WNAddition: residual {tuple(residual.shape)} and shortcut {tuple(shortcut.shape)} differ")
        # Per-channel unit vector $(u_r, u_s)/\lVert u \rVert$
        u = self.weight * torch.rsqrt(self.weight.square().sum(0, keepdim=True) + self.eps)
        ur, us = (_channel_view(self, residual, u[k]) for k in range(2))
        # In the parameters' precision, returned in the inputs' (as torch's norm layers do)
        out = torch.addcmul(shortcut.to(us.dtype) * us, residual.to(ur.dtype), ur)
        return out.to(residual.dtype)
