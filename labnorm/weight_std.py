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
statistics stay in float32 (the parameter's dtype) and only the convolution runs in bf16.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
    # $[C_{out}, \ldots] \to [C_{out}, I]$: one row per output filter
    w = weight.movedim(out_dim, 0)
    rows = w.reshape(w.shape[0], -1)
    fan_in = rows.shape[1]
    if fan_in < 2:
        raise ValueError(
            f"weight_standardization: each filter has fan_in={fan_in}; standardizing a single value gives 0 "
            f"(NaN with an unbiased variance). Use a plain conv for weights of shape {tuple(weight.shape)}."
        )
    # $\mu_i$ and $\sigma^2_i$ per row (biased: divide by $I$; unbiased: by $I - 1$)
    var, mean = torch.var_mean(rows, dim=1, keepdim=True, correction=1 if unbiased else 0)
    # $\sigma_i$: $\epsilon$ inside the square root, or added to the standard deviation
    std = torch.sqrt(var + eps) if eps_inside else torch.sqrt(var) + eps
    return ((rows - mean) / std).reshape(w.shape).movedim(0, out_dim)


class _WSMixin:
    """Shared by the WS convs: standardize `self.weight` in every forward.

    `_OUT_DIM` is the weight dim that indexes output channels (0 for convs, 1 for transposed convs).
    """

    _OUT_DIM = 0

    def __init__(self, *args, eps: float | None = None, variant: str = "paper", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_ws(eps, variant, out_dim=self._OUT_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)

    def _init_ws(self, eps: float | None, variant: str, out_dim: int) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"{type(self).__name__}: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.eps = VARIANTS[variant][2] if eps is None else eps
        self.variant = variant
        self._out_dim = out_dim
        fan_in = self.weight[(slice(None),) * out_dim + (0,)].numel()
        if fan_in < 2:
            raise ValueError(
                f"{type(self).__name__}: fan_in={fan_in} (in_channels/groups × kernel size); a filter of one "
                "value standardizes to 0. Weight Standardization needs fan_in > 1."
            )

    def standardized_weight(self) -> torch.Tensor:
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
        output_padding = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size,
                                              2, self.dilation)
        return F.conv_transpose2d(x, self.standardized_weight(), self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)
