r"""# Dynamic Tanh: a normalization layer that computes no statistics

[Dynamic Tanh](https://arxiv.org/abs/2503.10622) (Zhu, Chen, He, LeCun & Liu, 2025, "Transformers
without Normalization") replaces a normalization layer by an element-wise squashing function.
The authors observe that trained layer norms map their inputs through an S-shaped curve — nearly
linear around 0, flattening for the few extreme values — and write that curve down directly:

$$y = \gamma \odot \tanh(\alpha x) + \beta$$

with $\alpha$ **one learned scalar** for the whole layer (initialized to `alpha_init`, 0.5 by
default, the paper's choice for most models) and $\gamma, \beta$ learned **per channel**
(initialized to 1 and 0, as a norm layer's affine). There are no mean, no variance, no batch
and no running statistics: every value is transformed on its own, so training and eval compute
the same thing and the batch size does not matter.

Which dim holds the channels: `channels_last=False` (default) takes them in dim 1 of
$[N, C, \ldots]$ — a conv map $[N, C, H, W]$; `channels_last=True` takes them in the last dim —
a transformer's $[N, T, C]$ or a channels-last map $[N, H, W, C]$. (The authors' code has the
same flag.) `norm="dyt"` is `DynamicTanh(C)` on conv maps.

**Bad input and edge cases, with their answers** (each has a test):

- Input of rank < 2, or whose channel dim is not `num_features`: `ValueError` naming the layer.
- **Batch of one**, $1\times1$ maps: fine — nothing is pooled.
- **All-zero input**: $\tanh 0 = 0$, so $\beta$.
- **float32 with mean 100 and std 0.01**: $\tanh(50) = 1$ to float precision, so the output is
  $\gamma + \beta$ everywhere — the information is gone. DyT does not normalize: it relies on the
  layer before it (and on $\alpha$, which learns the input's scale) to keep values in tanh's
  range. This is the layer's documented answer, not a bug; put a normalization or a scaled
  init before it for such inputs.
- **bf16 autocast**: $\alpha x$ promotes a bf16 input to the parameters' float32, so tanh and the
  affine run in float32; the output is cast back to the input's dtype (bf16 in, bf16 out). A
  half-precision module (`.half()`, `.to(torch.bfloat16)`) runs in its own dtype.
- **An empty batch** (N = 0): an empty output — DyT has no statistics.
- `torch.compile` (train and eval), `state_dict`, `deepcopy`: plain parameters, nothing cached.
  Under compile, on `[N, C, ...]` input, $\alpha$, $\gamma$ and $\beta$ are repeated per sample before
  they broadcast, so inductor sums their gradients over contiguous memory (`labnorm._compile`; the
  values are the same, tested in float64).
"""

from __future__ import annotations

import torch
from torch import nn

from labnorm._compile import channel_param

__all__ = ["DynamicTanh"]


class DynamicTanh(nn.Module):
    r"""$y = \gamma \odot \tanh(\alpha x) + \beta$ with a learned scalar $\alpha$ and per-channel $\gamma, \beta$.

    Args:
        num_features: $C$, the size of the channel dim.
        alpha_init: initial $\alpha$ (the paper: 0.5; smaller for very deep or wide models).
        channels_last: channels in the last dim (`True`) or in dim 1 (`False`).

    Parameters `alpha` (shape `[1]`), `weight` = $\gamma$ and `bias` = $\beta$ (shape `[C]`),
    named as in the authors' code.

    Raises:
        ValueError: input of rank < 2, or another channel count.
    """

    #: Under `torch.compile`, take the path shaped for inductor (`labnorm._compile`); False compiles
    #: the formula as written (`benchmarks/bench_compile_paths.py` times both)
    fast_compiled_path: bool = True

    def __init__(
        self,
        num_features: int,
        alpha_init: float = 0.5,
        channels_last: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"DynamicTanh: num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.alpha_init = alpha_init
        self.channels_last = channels_last
        factory = {"device": device, "dtype": dtype}
        # $\alpha$: one scalar for the whole layer
        self.alpha = nn.Parameter(torch.full((1,), float(alpha_init), **factory))
        # $\gamma = 1$, $\beta = 0$, per channel
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.alpha, self.alpha_init)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = -1 if self.channels_last else 1
        if x.dim() < 2 or x.shape[dim] != self.num_features:
            where = "the last dim" if self.channels_last else "dim 1"
            raise ValueError(
                f"DynamicTanh: expected an input of rank >= 2 with {self.num_features} channels in {where}, "
                f"got shape {tuple(x.shape)}"
            )
        if self.channels_last:
            # Per-channel vectors broadcast as they are, over the last dim
            alpha, gamma, beta = self.alpha, self.weight, self.bias
        else:
            # $[1, C, 1, \ldots]$ (per sample under `torch.compile`, see `labnorm._compile`)
            params = (self.alpha, self.weight, self.bias)
            alpha, gamma, beta = (channel_param(p, x, self.fast_compiled_path) for p in params)
        # $\tanh(\alpha x)$, then $\gamma \odot \cdot + \beta$ (a multiply and an add: measured faster eager
        # at batch 2 than one `addcmul`, whose backward costs more; the same under compile)
        return (torch.tanh(alpha * x) * gamma + beta).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, alpha_init={self.alpha_init}, channels_last={self.channels_last}"
