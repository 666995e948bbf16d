r"""# Layer Normalization and RMS Normalization, from scratch

[Layer Normalization](https://arxiv.org/abs/1607.06450) (Ba, Kiros & Hinton, 2016) normalizes
each sample over its *features* instead of over the batch: for the $M$ values $x_1 \ldots x_M$ of
one sample in the normalized dims,

$$\mu = \frac{1}{M}\sum_i x_i, \qquad \sigma^2 = \frac{1}{M}\sum_i (x_i - \mu)^2, \qquad
  y_i = \gamma_i \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_i$$

— biased variance, $\epsilon$ inside the square root, one $\gamma, \beta$ per *element* of the
normalized shape: the definition of `torch.nn.LayerNorm`. No batch statistics, so no running
estimates: training and eval compute the same thing, and a batch of one is fine.
[RMSNorm](https://arxiv.org/abs/1910.07467) (Zhang & Sennrich, 2019) drops the centring and the
shift, keeping only the rescaling by the root mean square:

$$\mathrm{RMS}(x) = \sqrt{\frac{1}{M}\sum_i x_i^2 + \epsilon}, \qquad y_i = \gamma_i \frac{x_i}{\mathrm{RMS}(x)}$$

as `torch.nn.RMSNorm` computes it ($\epsilon$ inside the root; `eps=None` means the machine
epsilon of the computation type: `torch.finfo(torch.float32).eps` for float32, bf16 and fp16
inputs, `torch.finfo(torch.float64).eps` for float64). `RMSNorm(C, zero_centered=True)` is the
**zero-centred** RMSNorm of Gemma ([Gemma Team, 2024](https://arxiv.org/abs/2403.08295)):
$y = x/\mathrm{RMS}(x) \odot (1 + w)$ with $w$ initialized to 0 — the same function, with the scale
stored as its offset from 1, so that weight decay pulls it toward 1.

Which dims are "the features" is the trap. Transformers normalize the last dim of
$[N, T, C]$: `LayerNorm(C)`, `RMSNorm(C)`. For a conv map $[N, C, H, W]$ there are two layer
norms in use, and they are different layers:

| layer | normalizes over | $\gamma, \beta$ | where |
|---|---|---|---|
| `LayerNorm2d(C)` | $C$, separately at every position $(h, w)$ | per channel | ConvNeXt; timm's `LayerNorm2d` |
| `GroupNorm(1, C)` | $(C, H, W)$ of each sample | per channel | the GN paper's "LN"; timm's `GroupNorm1`; `norm="ln"` |
| `LayerNorm([C, H, W])` | $(C, H, W)$ of each sample | per *element* (fixes $H, W$) | the LN paper applied literally |

`LayerNorm2d` equals `torch.nn.LayerNorm(C)` applied to the channels-last permutation
$[N, H, W, C]$ (timm's implementation does exactly that permute). `RMSNorm2d` is the same for
RMSNorm. The `norm=` factory's `"ln"` is `GroupNorm(1, C)` — a layer norm over $(C, H, W)$ that
works at any resolution; `"ln2d"` is `LayerNorm2d`, `"rms"` is `RMSNorm2d`.

**Bad input and edge cases, with their answers** (each has a test):

- Input whose trailing dims are not `normalized_shape` (or, for the 2-D layers, not $[N, C, H, W]$
  with $C$ = `num_channels`): `ValueError` naming the layer, the expected and the given shape.
- A normalized shape of **one element**: `ValueError` at construction for `LayerNorm` and
  `LayerNorm2d` (the output would be $\beta$ whatever the input; torch allows it silently).
  `RMSNorm` of one element is $\gamma\,\mathrm{sign}(x)$ up to $\epsilon$ and is allowed.
- **Batch of one**, $1\times1$ maps: fine — no statistic involves the batch.
- **All-zero input**: LayerNorm gives $\beta$, RMSNorm gives 0 ($\epsilon$ keeps the division finite).
- **float32 with mean 100 and std 0.01**: LayerNorm computes its statistics on $x - s$ with $s$ one
  value of each sample (the shifted statistics of `labnorm.BatchNorm2d`; see "How it is computed"),
  so it agrees with float64 to 1e-5. RMSNorm has no centring: such an input comes out $\approx 1$
  everywhere (its RMS is $\approx 100$), equal to float64 to float32 precision.
- **bf16 autocast**: statistics are computed in float32 and the output is returned in the
  input's dtype (bf16), as torch's `LayerNorm` and `RMSNorm` do under CPU autocast.
- **Half-precision modules** (`.half()`, `.to(torch.bfloat16)`) with input of the same dtype: run, as
  torch's layers do — statistics in float32, $\gamma, \beta$ cast to float32 for the computation,
  output in the input's dtype.
- **An empty batch** (N = 0): an empty output of the input's shape; backward works.
- `torch.compile`, `state_dict`, `deepcopy`: plain parameters, no buffers, nothing cached.
- **Double backward** (a gradient penalty through the layer, as in WGAN-GP): supported, and equal to
  torch's in float64.

**How it is computed.** Notebook 09 builds the standardization above from tensor ops, line by line,
and proves it equal to torch. This module does not run that version: the arithmetic is the same
function as torch's fused layer-norm kernel, so `LayerNorm` and `LayerNorm2d` hand it to that
kernel — with one precaution, in `layer_norm`. The kernel keeps $\mu$ in the input's dtype; for
float32 values of mean 100 that rounds $\mu$ by up to half a float32 step at 100 ($3.8 \times 10^{-6}$),
which is $4 \times 10^{-4}$ of a std of 0.01 — an error of that size in every output. So the kernel's
own $\mu$ and $1/\sigma$ are checked after it runs, and where the rounding could exceed $10^{-6}$ std the
kernel runs again on `shifted(x, dims)`: each normalized slice minus its first value $s$ (detached).
$x - s$ and $x$ have the same $\hat x$, value and gradient (a test checks both, and gradcheck), but
the mean of $x - s$ is small and rounds harmlessly. Ordinary activations pass the check and cost one
kernel call plus a reduction over the per-sample statistics; under `torch.compile` the shift is
always taken (fused, it is free). Timings against torch's layers: `benchmarks/bench_zoo.py`.
RMSNorm has no mean to shift and is written out in tensor ops below.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn
from torch.nn import functional as F

from .batch_norm import _LOW_PRECISION, _channel_view, _in_compute_dtype

__all__ = ["LayerNorm", "LayerNorm2d", "RMSNorm", "RMSNorm2d", "batch_norm_train", "layer_norm", "rms_norm", "shifted"]


def _as_shape(normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def shifted(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    r"""$x - s$, with $s$ (detached) the first value of each slice of `x` over `dims`.

    Standardizing over `dims` ignores a constant added to each slice, so the kernels give the same
    output and gradients on $x - s$ as on $x$ (the detached $s$ passes the gradient through
    unchanged). What changes is precision: the values handed to the kernel are centred near 0,
    so a float32 mean that the kernel rounds is small, and rounding it costs nothing.
    """
    index = tuple(slice(0, 1) if d in dims else slice(None) for d in range(x.dim()))
    return x - x[index].detach()


# Shift when the kernel's float32 (float64) mean may be off by more than this, in units of the std
_MEAN_ROUNDING_TOLERANCE = 1e-6


def _check_first(x: torch.Tensor) -> bool:
    """Run the kernel unshifted and check its mean (eager, CPU), or shift unconditionally (compiled, GPU)."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def _mean_is_precise(mean: torch.Tensor, rstd: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether a kernel's mean, rounded to `dtype`, is within the tolerance of its exact value, in stds."""
    if mean.numel() == 0:
        return True
    # $\max |\mu| / \sigma$, in three small ops and one read-back
    largest = torch.amax(torch.abs(mean.detach() * rstd.detach())).item()
    return largest * torch.finfo(dtype).eps <= _MEAN_ROUNDING_TOLERANCE


def layer_norm(x: torch.Tensor, normalized_shape: tuple[int, ...], weight, bias, eps: float) -> torch.Tensor:
    r"""$\gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$ over the trailing `normalized_shape` dims of `x`,
    by torch's layer-norm kernel, precise for inputs whose mean is large against their spread.

    The kernel stores $\mu$ in the input's dtype: rounded to a relative $u$ (`finfo.eps`), it is off by
    up to $u|\mu|/2$, and $\hat x$ by $u|\mu|/(2\sigma)$ — 4e-4 for float32 values of mean 100 and std 0.01.
    Eager on the CPU, the kernel runs once and returns its $\mu$ and $1/\sigma$ with the output; only when
    $u \max|\mu|/\sigma$ exceeds 1e-6 does it run again, on `shifted(x)`, where the mean is small and its
    rounding harmless. Otherwise the shift is always taken: under `torch.compile` it is fused into the
    kernel, and a data-dependent branch would split the graph; on a GPU, reading the check back would
    stall the stream on every layer, where the shift costs one fast elementwise pass.
    """
    dims = tuple(range(x.dim() - len(normalized_shape), x.dim()))
    if _check_first(x):
        y, mean, rstd = torch.native_layer_norm(x, normalized_shape, weight, bias, eps)
        if _mean_is_precise(mean, rstd, x.dtype):
            return y
    return F.layer_norm(shifted(x, dims), normalized_shape, weight, bias, eps)


def batch_norm_train(x, running_mean, running_var, weight, bias, momentum: float, eps: float):
    r"""Batch norm in training mode — statistics over every dim of `x` but dim 1 — by torch's kernel,
    precise for inputs whose mean is large against their spread (the rule of `layer_norm`).

    Returns $(y, \hat\mu', \hat\sigma^{2\prime})$: the output and new copies of the running statistics
    after one step of `momentum` (`None` when `running_mean` is `None`); the tensors passed in are not
    changed — the caller stores the copies. Shared by `InstanceNorm2d` and `GhostBatchNorm2d`.
    """
    if _check_first(x):
        rm = None if running_mean is None else running_mean.clone()
        rv = None if running_var is None else running_var.clone()
        y, mean, rstd = torch.native_batch_norm(x, weight, bias, rm, rv, True, momentum, eps)
        if _mean_is_precise(mean, rstd, x.dtype):
            return y, rm, rv
    # $s$: one value of each channel; the kernel's running mean is then that of $x - s$, $s$ is added back
    index = tuple(slice(None) if d == 1 else slice(0, 1) for d in range(x.dim()))
    shift = x[index].detach()
    rm = None if running_mean is None else running_mean.clone()
    rv = None if running_var is None else running_var.clone()
    y = F.batch_norm(x - shift, rm, rv, weight, bias, True, momentum, eps)
    if rm is not None:
        rm = rm + momentum * shift.reshape(-1).to(rm.dtype)
    return y, rm, rv


def rms_norm(x: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    r"""$x / \sqrt{\frac{1}{M}\sum x^2 + \epsilon}$ with the mean square over `dims`."""
    # $\frac{1}{M}\sum_i x_i^2$: one reduction, no squared copy of $x$
    m = 1
    for d in dims:
        m *= x.shape[d]
    ms = torch.linalg.vector_norm(x, 2, dim=dims, keepdim=True).square() / m
    return x * torch.rsqrt(ms + eps)


def _check_trailing(layer: str, x: torch.Tensor, shape: tuple[int, ...]) -> int:
    """The number of normalized dims, after checking that `x` ends in `shape` (a `ValueError` naming `layer`)."""
    d = len(shape)
    if x.dim() < d or tuple(x.shape[x.dim() - d:]) != shape:
        raise ValueError(f"{layer}: expected an input whose last {d} dim(s) are {shape}, got shape {tuple(x.shape)}")
    return d


def _default_eps(eps: float | None, dtype: torch.dtype) -> float:
    # torch.nn.RMSNorm's default: the machine epsilon of the computation type
    return torch.finfo(dtype).eps if eps is None else eps


class LayerNorm(nn.Module):
    r"""Layer normalization over the trailing `normalized_shape` dims, a drop-in for `torch.nn.LayerNorm`.

    Same arguments, parameters and state-dict keys as torch (`weight` = $\gamma$, `bias` = $\beta$,
    both of shape `normalized_shape`).

    Raises:
        ValueError: a normalized shape of one element (construction); input whose trailing
            dims are not `normalized_shape`.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int] | torch.Size,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        shape = _as_shape(normalized_shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be non-empty positive sizes, got {normalized_shape!r}")
        if torch.Size(shape).numel() < 2:
            raise ValueError(
                f"LayerNorm: normalized_shape {shape} holds one value; normalizing it gives 0 (the output "
                "would be the bias whatever the input). Normalize over more than one value."
            )
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        # $\gamma = 1$, $\beta = 0$: at initialization the layer only normalizes
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(shape, **factory))
            self.bias = nn.Parameter(torch.zeros(shape, **factory)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_trailing("LayerNorm", x, self.normalized_shape)
        # Statistics in at least float32 (bf16/fp16 inputs are upcast, the output cast back)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        # $\gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$ over the last $d$ dims, by torch's
        # kernel (on $x$ shifted by one value of each sample when its mean is large: `layer_norm`)
        # (a half-precision module's $\gamma, \beta$ in float32 for the kernel, as its statistics)
        weight, bias = _in_compute_dtype(self.weight, xs.dtype), _in_compute_dtype(self.bias, xs.dtype)
        y = layer_norm(xs, self.normalized_shape, weight, bias, self.eps)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LayerNorm2d(nn.Module):
    r"""Layer normalization over the channels of an $[N, C, H, W]$ map, at every position.

    $$\mu_{n,h,w} = \frac{1}{C}\sum_c x_{n,c,h,w}, \qquad
      y_{n,c,h,w} = \gamma_c \frac{x_{n,c,h,w} - \mu_{n,h,w}}{\sqrt{\sigma^2_{n,h,w} + \epsilon}} + \beta_c$$

    equal to `torch.nn.LayerNorm(C, eps)` on `x.permute(0, 2, 3, 1)`, permuted back — which is how
    it is computed eagerly (`layer_norm`). The output then has the shape of $x$ and channels-last
    strides, as timm's `LayerNorm2d`; call `.contiguous()` if a later op needs NCHW memory. Under
    `torch.compile` it is the formula above over dim 1 on shifted input, which inductor fuses without
    the permute's copy (1.0× torch's BN at batch 128, against 2.2–2.5× through the permute; see
    `benchmarks/README.md`). `eps=1e-6` as ConvNeXt and timm.

    Raises:
        ValueError: `num_channels < 2` (construction); input not 4-D or with another channel count.
    """

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-6,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_channels, int) or num_channels < 2:
            raise ValueError(
                f"LayerNorm2d: num_channels must be an int >= 2 (one channel normalizes to 0), got {num_channels!r}"
            )
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
        _check_nchw("LayerNorm2d", x, self.num_channels)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        if torch.compiler.is_compiling():
            # Compiled: the formula over dim 1, on shifted input — inductor fuses it into reductions over
            # the channels in place, cheaper than the copy a channels-last permute needs
            xc = shifted(xs, (1,))
            var, mean = torch.var_mean(xc, dim=1, correction=0, keepdim=True)
            y = (xc - mean) * torch.rsqrt(var + self.eps)
            if self.affine:
                y = torch.addcmul(_channel_view(self.bias, 4), y, _channel_view(self.weight, 4))
            return y.to(x.dtype)
        # Eager: over dim 1 (the channels) at every $(n, h, w)$, torch's layer-norm kernel (`layer_norm`)
        # on the channels-last view $[N, H, W, C]$, permuted back
        weight, bias = _in_compute_dtype(self.weight, xs.dtype), _in_compute_dtype(self.bias, xs.dtype)
        y = layer_norm(xs.permute(0, 2, 3, 1), (self.num_channels,), weight, bias, self.eps)
        return y.permute(0, 3, 1, 2).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(nn.Module):
    r"""RMS normalization over the trailing `normalized_shape` dims, a drop-in for `torch.nn.RMSNorm`.

    $y = \gamma \odot x / \sqrt{\mathrm{mean}(x^2) + \epsilon}$; `weight` = $\gamma$ of shape
    `normalized_shape`, no bias (as torch). `eps=None` is the computation type's machine epsilon.

    **Zero-centred** (`zero_centered=True`, as Gemma's RMSNorm): the learned scale is stored as its
    offset from 1, $\gamma = 1 + w$, with $w$ (`weight`) initialized to 0:

    $$y = \frac{x}{\mathrm{RMS}(x)} \odot (1 + w)$$

    The same function as the default at initialization and for any $\gamma = 1 + w$; what changes is
    the parameter the optimizer sees: weight decay pulls $w$ to 0, so $\gamma$ to 1 (not to 0), and
    the values stored are small. $1 + w$ is computed in the computation type (float32 for half inputs,
    as Gemma does); a checkpoint of one convention loads into the other after adding or subtracting 1.

    Raises:
        ValueError: input whose trailing dims are not `normalized_shape`; `zero_centered` without
            `elementwise_affine`.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int] | torch.Size,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        zero_centered: bool = False,
    ) -> None:
        super().__init__()
        shape = _as_shape(normalized_shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"RMSNorm: normalized_shape must be non-empty positive sizes, got {normalized_shape!r}")
        if zero_centered and not elementwise_affine:
            raise ValueError("RMSNorm: zero_centered=True stores the scale as 1 + weight; it needs elementwise_affine=True")
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.zero_centered = zero_centered
        if elementwise_affine:
            # $\gamma = 1$ at initialization: `weight` = 1, or $w = 0$ when zero-centred
            init = torch.zeros if zero_centered else torch.ones
            self.weight = nn.Parameter(init(shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            (nn.init.zeros_ if self.zero_centered else nn.init.ones_)(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = _check_trailing("RMSNorm", x, self.normalized_shape)
        # Computation type: float32 for half inputs (torch's "opmath" type)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        y = rms_norm(xs, tuple(range(x.dim() - d, x.dim())), _default_eps(self.eps, xs.dtype))
        if self.zero_centered:
            # $\hat x \odot (1 + w)$, the offset added in the computation type
            y = y * (1 + self.weight.to(xs.dtype))
        elif self.weight is not None:
            # $\gamma \odot \hat x$
            y = y * self.weight
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        extra = ", zero_centered=True" if self.zero_centered else ""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}{extra}"


class RMSNorm2d(nn.Module):
    r"""RMS normalization over the channels of an $[N, C, H, W]$ map, at every position.

    $y_{n,c,h,w} = \gamma_c\, x_{n,c,h,w} / \sqrt{\frac{1}{C}\sum_{c'} x_{n,c',h,w}^2 + \epsilon}$ —
    `torch.nn.RMSNorm(C)` on the channels-last permutation, permuted back. `norm="rms"`.

    Raises:
        ValueError: input not 4-D or with another channel count.
    """

    def __init__(
        self,
        num_channels: int,
        eps: float | None = None,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"RMSNorm2d: num_channels must be a positive int, got {num_channels!r}")
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self) -> None:
        if self.affine:
            nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_nchw("RMSNorm2d", x, self.num_channels)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        y = rms_norm(xs, (1,), _default_eps(self.eps, xs.dtype))
        if self.affine:
            y = y * _channel_view(self.weight, 4)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.affine}"


def _check_nchw(layer: str, x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"{layer}: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer}: expected {channels} channels in dim 1 of [N, C, H, W], got {x.shape[1]} "
            f"(input shape {tuple(x.shape)})"
        )
