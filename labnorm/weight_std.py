r"""# Weight Standardization

[Weight Standardization](https://arxiv.org/abs/1903.10520) (Qiao et al., 2019) standardizes each
output filter of a convolution before it is used: for filter $i$ with $I$ = fan-in entries,

$$\hat W_{i,j} = \frac{W_{i,j} - \mu_i}{\sigma_i}, \qquad
  \mu_i = \frac{1}{I}\sum_j W_{i,j}, \qquad
  \sigma_i = \sqrt{\frac{1}{I}\sum_j W_{i,j}^2 - \mu_i^2 + \epsilon}$$

— the paper's definition: biased variance, $\epsilon$ inside the square root. The conv then uses
$\hat W$. Paired with GN or BN, the paper argues, it smooths the loss landscape (smaller Lipschitz
constants of the loss and its gradients) and keeps the network away from elimination singularities.

Implementations differ in small ways, each selectable by `variant=` and tested against its own
formula (the notebook prints how far apart they are on a real weight):

| variant   | variance | $\epsilon$ | default $\epsilon$ | from |
|-----------|----------|------------|--------------------|------|
| `paper`   | biased   | inside $\sqrt{\cdot}$ | 1e-5 | the paper (eq. 5–6) |
| `ws_repo` | unbiased | added to the std | 1e-5 | the WS repository's README |
| `timm`    | biased   | inside | 1e-6 | timm's `StdConv2d` |
| `labml`   | unbiased | inside | 1e-5 | labml's annotated implementation |
| `bit`     | biased   | inside | 1e-10 | Big Transfer (BiT) |

Edge cases and their answers: a filter with **fan-in 1** has nothing to standardize (it would
become 0, or NaN with an unbiased variance), so it is refused with a `ValueError`; a **constant
filter** becomes 0 (finite); **tiny weights** whose variance is below $\epsilon$ come out with a
standard deviation below 1 ($\sigma/\sqrt{\sigma^2+\epsilon}$); under **bf16 autocast** the
statistics stay in float32 (the parameter's dtype) and only the convolution runs in bf16;
**float16/bfloat16 input** to a float32 layer outside autocast is refused with a `TypeError` naming
the layer, as `nn.Conv2d` refuses it, while a **half-precision layer** (`.half()`,
`.to(torch.bfloat16)`) runs on input of its own dtype, as `nn.Conv2d` does; an **empty batch** (N = 0)
gives an empty output (no statistic involves the batch); input of the wrong rank or channel count,
and a bad argument that `nn.Conv2d` itself refuses, get a `ValueError` naming the WS layer; a float32 filter with **mean 100 and std 0.01** is standardized to within 1e-5 of float64 (the rows
are centred on one of their entries first, as BN's shifted statistics).

**Cost.** Written with autograd's ops the standardization made a ResNet-18 training step about 2×
slower at batch 2 on CPU. With autograd on, the variants with $\epsilon$ inside the root are computed
by one `F.batch_norm` call over the filters (`_batch_norm_standardize`), the `ws_repo` variant (and
any `eps=0`) by `_Standardize`, a closed-form autograd function; without autograd (under
`torch.no_grad`, or for a weight that needs no gradient — not `model.eval()` alone, which keeps autograd
on) by `_Standardize`'s forward, which makes fewer passes on CPU. $\hat W$ is never
cached: it is recomputed from the weight at every call, so a weight changed in any way — even
through `.data` or a NumPy view, which autograd's version counter does not see — is used at once.
The benchmark `benchmarks/bench_weight_std.py` measures each step of this against a timm-style
`StdConv2d` (one unshifted `F.batch_norm`). Until the kernel's own mean was checked (see
`_batch_norm_standardize`), every call shifted the filters first, and that extra pass was the whole
gap to timm's call: 1.14× against 1.10× for a conv stack's training step at batch 2. In the last run
(one CPU thread, on a machine whose two cores were held by experiment runs, so ±0.05 noise) the
stack costs 1.18× the plain convs with `WSConv2d` and 1.20× with the timm-style conv; a ResNet-18 at
batch 2, 1.30× (BN) and 1.27× (GN) against 1.25× and 1.23× — equal within the noise. Without the
cache it once had, an eval forward of the ResNet-18 at batch 2 costs 1.57× the plain net (the
timm-style conv 1.69×) — the price of never using a stale weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layer_norm import batch_norm_train

__all__ = ["VARIANTS", "weight_standardization", "WSConv1d", "WSConv2d", "WSConvTranspose2d"]

# variant -> (unbiased variance?, eps inside the sqrt?, default eps)
VARIANTS = {
    "paper": (False, True, 1e-5),
    "ws_repo": (True, False, 1e-5),
    "timm": (False, True, 1e-6),
    "labml": (True, True, 1e-5),
    "bit": (False, True, 1e-10),
}


def weight_standardization(
    weight: torch.Tensor, eps: float | None = None, variant: str = "paper", out_dim: int = 0
) -> torch.Tensor:
    r"""$\hat W$: each slice along `out_dim` (an output filter) standardized over its other entries."""
    if variant not in VARIANTS:
        raise ValueError(f"weight_standardization: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    unbiased, eps_inside, default_eps = VARIANTS[variant]
    eps = default_eps if eps is None else eps
    out_channels = weight.shape[out_dim]
    fan_in = weight.numel() // max(out_channels, 1)
    if fan_in < 2:
        raise ValueError(
            f"weight_standardization: each filter has fan_in={fan_in}; standardizing a single value gives 0 "
            f"(NaN with an unbiased variance). Use a plain conv for weights of shape {tuple(weight.shape)}."
        )
    # $[C_{out}, \ldots] \to [C_{out}, I]$: one row per output filter (a view when out_dim is 0)
    w = weight.movedim(out_dim, 0) if out_dim else weight
    if eps_inside and eps > 0 and torch.is_grad_enabled() and weight.requires_grad:
        out = _batch_norm_standardize(w.reshape(1, out_channels, fan_in), eps, unbiased)
    else:
        out = _Standardize.apply(w.reshape(out_channels, fan_in), eps, unbiased, eps_inside)
    out = out.reshape(w.shape)
    return out.movedim(0, out_dim) if out_dim else out


def _batch_norm_standardize(rows: torch.Tensor, eps: float, unbiased: bool) -> torch.Tensor:
    r"""$\hat W$ of rows $[1, C_{out}, I]$ with $\epsilon$ inside the root, as one `F.batch_norm` (timm's trick).

    `F.batch_norm` on $[1, C_{out}, I]$ takes each row's mean and *biased* variance and computes
    $(W_{i,j} - \mu_i)/\sqrt{\sigma_i^2 + \epsilon}$ in one fused kernel, forward and backward —
    fewer passes and far fewer small ops than autograd's `var_mean`, subtract, divide. Two things
    are added to timm's call:

    * where the kernel's mean of a row could round by more than $10^{-6}$ of its std (a float32 filter
      with mean 100 and std 0.01: 100's float32 spacing, $7.6 \cdot 10^{-6}$, is 0.08% of the std), the
      rows are centred on their first entry (detached: $\hat W$ does not depend on a per-row constant,
      so its gradient through the shift is exactly 0) and the kernel runs again;
    * the unbiased variance ($c = (I-1)/I$): $\sqrt{\sigma^2_b/c + \epsilon} = \sqrt{\sigma^2_b + c\epsilon}/\sqrt{c}$,
      so batch norm with $\epsilon' = c\,\epsilon$ and scale $\sqrt{c}$ (its `weight`) is the same formula.
    """
    fan_in = rows.shape[2]
    scale = None
    if unbiased:
        c = (fan_in - 1) / fan_in
        eps = eps * c
        scale = torch.full((rows.shape[1],), c ** 0.5, dtype=rows.dtype, device=rows.device)
    # The kernel, with the shift taken only where its mean would round badly (eager on the CPU; always
    # under torch.compile and on a GPU): layer_norm.py's `batch_norm_train`
    return batch_norm_train(rows, None, None, scale, None, 0.0, eps)[0]


class _Standardize(torch.autograd.Function):
    r"""$\hat W$ of each row of a $[C_{out}, I]$ matrix, with a closed-form backward.

    Written with autograd's ops (`var_mean`, subtract, divide) the standardization costs more than
    the convolution it feeds at small batches: each op allocates a weight-sized tensor and the
    backward of `var_mean` and of the division walks the weight several times. Here the forward
    makes one weight-sized tensor, the backward one more:

    $$\frac{\partial L}{\partial W_{i,j}} = \frac{1}{s_i}\Big(g_{i,j} - \frac{1}{I}\sum_k g_{i,k}\Big)
      - \hat W_{i,j}\, k_i \sum_k g_{i,k} \hat W_{i,k}$$

    with $g = \partial L/\partial \hat W$, $s_i$ the divisor ($\sqrt{\sigma_i^2+\epsilon}$ or
    $\sigma_i + \epsilon$), $c = I$ (biased) or $I - 1$ (unbiased), and $k_i = 1/(c\,s_i)$ with
    $\epsilon$ inside the root, $1/(c\,\sigma_i)$ with $\epsilon$ added to the std (0 where
    $\sigma_i = 0$: a constant filter gets a finite gradient, where autograd of the formula gives NaN).
    Tested against autograd of the formula in float64 and with `gradcheck`.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, eps: float, unbiased: bool, eps_inside: bool) -> torch.Tensor:
        fan_in = rows.shape[1]
        c = fan_in - 1 if unbiased else fan_in
        # Statistics in the weight's dtype (float32 under bf16 autocast: no op here is autocast)
        # Centre each row on its first entry, then on the mean of what is left — the one new
        # weight-sized tensor, standardized in place. (Subtracting a nearby value is exact, so a
        # float32 filter with mean 100 and std 0.01 keeps its precision: the shifted statistics of BN.)
        out = rows - rows[:, :1]
        out.sub_(out.sum(1, keepdim=True).div_(fan_in))
        # $\sigma_i = \lVert W_i - \mu_i \rVert / \sqrt{c}$ (two-pass: no cancellation for large means)
        std = torch.linalg.vector_norm(out, dim=1, keepdim=True).div_(c ** 0.5)
        s = std.square().add_(eps).sqrt_() if eps_inside else std + eps
        out.div_(s)
        ctx.save_for_backward(out, s, std)
        ctx.c, ctx.eps_inside = c, eps_inside
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        out, s, std = ctx.saved_tensors
        # $\sum_k g_{i,k}$, and $\sum_k g_{i,k} \hat W_{i,k}$ through the buffer that becomes the gradient
        # (a row-wise `bmm` would avoid the product but is 3× slower on CPU)
        g_sum = g.sum(1, keepdim=True)
        grad = torch.mul(g, out)
        g_dot = grad.sum(1, keepdim=True)
        if ctx.eps_inside:
            k = 1 / (ctx.c * s)
        else:
            k = torch.where(std > 0, 1 / (ctx.c * std), 0)
        # $(g - \bar g) / s - \hat W \, k \sum g \hat W$, in place
        torch.sub(g, g_sum / out.shape[1], out=grad).div_(s)
        grad.addcmul_(out, -(g_dot * k))
        return grad, None, None, None


def _check_input(layer: nn.Module, x: torch.Tensor) -> None:
    """Input $[N, C_{in}, *]$ (or unbatched $[C_{in}, *]$) of the layer's rank, and input and weight of one
    dtype or autocast on — as `nn.Conv2d` requires, with the layer's name and the fix."""
    spatial = len(layer.kernel_size)
    if x.dim() not in (spatial + 1, spatial + 2) or x.shape[-spatial - 1] != layer.in_channels:
        dims = {1: "L", 2: "H, W"}.get(spatial, "*")
        raise ValueError(
            f"{type(layer).__name__}: expected input [N, {layer.in_channels}, {dims}] (or unbatched "
            f"[{layer.in_channels}, {dims}]), got shape {tuple(x.shape)}"
        )
    if x.dtype != layer.weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"{type(layer).__name__}: input is {x.dtype}, weight is {layer.weight.dtype}; like nn.Conv2d the layer "
            "does not mix dtypes. Run it under torch.autocast, or convert one of them (layer.to(x.dtype))"
        )


class _WSMixin:
    """Shared by the WS convs: standardize `self.weight` in every forward.

    `_OUT_DIM` is the weight dim that indexes output channels (0 for convs, 1 for transposed convs).
    """

    _OUT_DIM = 0

    def __init__(self, *args, eps: float | None = None, variant: str = "paper", **kwargs) -> None:
        try:
            super().__init__(*args, **kwargs)
        except (ValueError, TypeError) as e:
            # torch's conv refuses the argument; the user built this layer, so name it
            raise type(e)(f"{type(self).__name__}: {e}") from None
        self._init_ws(eps, variant, out_dim=self._OUT_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x)
        return self._conv_forward(x, self.standardized_weight(), self.bias)

    def _init_ws(self, eps: float | None, variant: str, out_dim: int) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"{type(self).__name__}: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if eps is not None and not eps >= 0:
            raise ValueError(f"{type(self).__name__}: eps must be >= 0 (or None: the variant's), got {eps!r}")
        self.eps = VARIANTS[variant][2] if eps is None else eps
        self.variant = variant
        self._out_dim = out_dim
        if self.weight.shape[out_dim] == 0:
            raise ValueError(f"{type(self).__name__}: out_channels must be a positive int, got 0")
        fan_in = self.weight[(slice(None),) * out_dim + (0,)].numel()
        if fan_in < 2:
            raise ValueError(
                f"{type(self).__name__}: fan_in={fan_in} (in_channels/groups × kernel size); a filter of one "
                "value standardizes to 0. Weight Standardization needs fan_in > 1."
            )

    def standardized_weight(self) -> torch.Tensor:
        r"""$\hat W$, computed from the current weight at every call (nothing is cached)."""
        return weight_standardization(self.weight, self.eps, self.variant, self._out_dim)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}, variant={self.variant!r}"


class WSConv2d(_WSMixin, nn.Conv2d):
    """`nn.Conv2d` with Weight Standardization: same arguments (plus `eps`, `variant`), same
    parameters and state-dict keys, so a plain conv's checkpoint loads as it is."""


class WSConv1d(_WSMixin, nn.Conv1d):
    """`nn.Conv1d` with Weight Standardization."""


class WSConvTranspose2d(_WSMixin, nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` with Weight Standardization per *output* channel.

    Its weight is `[in, out/groups, kh, kw]`: the filter that produces output channel $o$ is the
    slice `weight[:, o]`, so the statistics run over dims (0, 2, 3), not over dim 0's slices.
    (With `groups > 1` each output channel of a group is standardized over that group's inputs.)
    """

    _OUT_DIM = 1

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        _check_input(self, x)
        output_padding = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size,
                                              2, self.dilation)
        return F.conv_transpose2d(x, self.standardized_weight(), self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)
