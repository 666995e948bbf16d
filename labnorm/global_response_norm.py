r"""# Global Response Normalization (ConvNeXt V2)

[Global Response Normalization](https://arxiv.org/abs/2301.00808) (Woo, Debnath, Hu, Chen, Liu,
Kweon & Xie, 2023, "ConvNeXt V2") was added to ConvNeXt's MLP, after its GELU, to stop *feature
collapse*: the authors saw many channels of a masked-autoencoder-trained ConvNeXt go dead or
saturate, and GRN makes the channels compete. For one sample $x \in \mathbb{R}^{C \times H \times W}$:

1. **Aggregate** each channel over space by its L2 norm: $G_c = \lVert x_{c,:,:} \rVert_2
   = \sqrt{\sum_{h,w} x_{c,h,w}^2}$;
2. **Normalize** across channels by their mean: $N_c = G_c \,/\, \big(\frac{1}{C}\sum_{c'} G_{c'} + \epsilon\big)$
   — a channel's response relative to the others (divisive normalization);
3. **Calibrate** the input, with a residual:

$$y_{c,h,w} = \gamma_c \,(x_{c,h,w} N_c) + \beta_c + x_{c,h,w}$$

$\gamma, \beta$ are learned per channel and **initialized to 0**, so the layer starts as the identity
(the residual carries $x$ through). This is timm's `GlobalResponseNorm`
([`timm/layers/grn.py`](https://github.com/huggingface/pytorch-image-models/blob/main/timm/layers/grn.py):
$y = \beta + x\,(\gamma N + 1)$, with $\epsilon = 10^{-6}$ added to the channel mean) and the
official ConvNeXt V2 code, on $[N, C, H, W]$ rather than channels-last $[N, H, W, C]$. Differences
from timm: $\gamma, \beta$ have shape `[C]` here (timm's `[1, C, 1, 1]`, the official `gamma`,
`beta` of shape `[1, 1, 1, C]`); reshape them to load those state dicts.

GRN is not a normalization of the activations' scale: $y = x$ at initialization, and a statistic
enters only through $\gamma$. In ConvNeXt V2 it sits beside a LayerNorm (before the MLP). As
`norm="grn"` in the CNN zoo it is the only norm layer of a net — which at initialization is then
the net without normalization; the zoo measures what it learns to do from there.

**Bad input and edge cases, with their answers** (each has a test):

- Input not 4-D, or with another channel count: `ValueError` naming the layer.
- **Batch of one**, **an empty batch** (N = 0): fine — every statistic is per sample.
- **$1\times1$ maps**: $G_c = |x_c|$; the layer still rescales channels against each other.
- **All-zero input**: $G = 0$, $N = 0$ ($\epsilon$ keeps the division finite): the output is $\beta$,
  and the gradient finite (torch's norm has gradient 0 at 0).
- **float32 with mean 100 and std 0.01**: no cancellation — $G_c$ is a sum of squares, not a
  variance; equal to float64 to float32 precision.
- **bf16 autocast / half-precision modules**: the statistics in float32, the output in the input's dtype.
- `torch.compile`, `state_dict`, `deepcopy`: plain parameters, no buffers.
"""

from __future__ import annotations

import torch
from torch import nn

from labnorm._compile import channel_param
from labnorm.batch_norm import _LOW_PRECISION

__all__ = ["GlobalResponseNorm2d"]


class GlobalResponseNorm2d(nn.Module):
    r"""$y = \gamma \odot (x \cdot N(x)) + \beta + x$ on $[N, C, H, W]$, $N(x)_c = \lVert x_c \rVert_2 / (\overline{\lVert x \rVert_2} + \epsilon)$.

    Args:
        num_features: $C$.
        eps: added to the mean over channels of the L2 norms (timm's and the official $10^{-6}$).

    Parameters `weight` = $\gamma$ and `bias` = $\beta$ (shape `[C]`, initialized to 0: the identity).

    Raises:
        ValueError: a non-positive `num_features`; input not 4-D or with another channel count.
    """

    #: Under `torch.compile`, take the path shaped for inductor (`labnorm._compile`)
    fast_compiled_path: bool = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-6,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"GlobalResponseNorm2d: num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.eps = eps
        factory = {"device": device, "dtype": dtype}
        # $\gamma = \beta = 0$: the layer starts as the identity
        self.weight = nn.Parameter(torch.zeros(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"GlobalResponseNorm2d: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"GlobalResponseNorm2d: expected {self.num_features} channels in dim 1 of [N, C, H, W], "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        # Statistics in at least float32 (bf16/fp16 inputs are upcast, the output cast back)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        # $G_c = \lVert x_{c,:,:} \rVert_2$ per sample and channel: $[N, C, 1, 1]$
        g = torch.linalg.vector_norm(xs, 2, dim=(2, 3), keepdim=True)
        # $N_c = G_c / (\frac{1}{C}\sum_{c'} G_{c'} + \epsilon)$
        n = g / (g.mean(dim=1, keepdim=True) + self.eps)
        gamma, beta = (channel_param(p, xs, self.fast_compiled_path).to(xs.dtype) for p in (self.weight, self.bias))
        # $\gamma (x N) + \beta + x = x\,(1 + \gamma N) + \beta$
        return (xs * (1 + gamma * n) + beta).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
