r"""# Dynamic erf (Derf): Dynamic Tanh's successor, a shifted error function

[Derf](https://arxiv.org/abs/2512.10938) (Chen, Lu, Zhu, Sun & Liu, 2025, "Stronger
Normalization-Free Transformers") follows Dynamic Tanh (`labnorm.DynamicTanh`): it replaces a
normalization layer by an element-wise S-shaped function with learned parameters, and computes no
statistics. The authors search over point-wise functions (bounded, zero-centred, monotone, with a
steep centre) and keep the Gaussian error function with a learned scale *and shift* inside it:

$$y = \gamma \odot \operatorname{erf}(\alpha x + s) + \beta, \qquad
  \operatorname{erf}(z) = \frac{2}{\sqrt\pi}\int_0^z e^{-t^2}\,dt$$

with $\alpha$ and $s$ **one learned scalar each** for the whole layer, and $\gamma, \beta$ learned
**per channel**. Initialization, as the authors' code
([zlab-princeton/Derf](https://github.com/zlab-princeton/Derf), `ViT/dynamic_erf.py`): $\alpha = 0.5$
(`alpha_init`), $s = 0$ (`shift_init`), $\gamma = 1$, $\beta = 0$. For their GPT-2 runs the authors
set $\alpha$'s initial value per layer type (attention, MLP, final norm) from the command line, and
multiply the embeddings by a learned scalar initialized to $\sqrt{d}$ (`language model/model_derf.patch`
in the same repository) — a model's choice, not the layer's; `labnorm.tiny_gpt` does the same.

erf and tanh have the same shape ($\operatorname{erf}(z) \approx \tanh(1.2 z)$ near 0); erf's tails
flatten faster ($1 - \operatorname{erf} z \sim e^{-z^2}$ against tanh's $e^{-2z}$). The shift $s$ lets
the layer move the curve's centre, which a normalization layer's centring does per sample and DyT cannot.

Which dim holds the channels: as `DynamicTanh` — `channels_last=False` (default) takes them in dim 1
of $[N, C, \ldots]$ (a conv map); `channels_last=True` in the last dim (a transformer's $[N, T, C]$).

**Bad input and edge cases, with their answers** (each has a test):

- Input of rank < 2, or whose channel dim is not `num_features`: `ValueError` naming the layer.
- **Batch of one**, $1\times1$ maps, **an empty batch** (N = 0): fine — nothing is pooled.
- **All-zero input**: $\gamma \operatorname{erf}(s) + \beta$; at initialization, $\beta$.
- **float32 with mean 100 and std 0.01**: $\operatorname{erf}(50) = 1$ to float precision, so the
  output is $\gamma + \beta$ everywhere: as DyT, Derf does not normalize, and relies on the layers
  before it (and on the learned $\alpha$, $s$) to keep values in erf's range.
- **bf16 autocast**: $\alpha x + s$ promotes a bf16 input to the parameters' float32; the output is
  cast back to the input's dtype. A half-precision module runs in its own dtype.
- `torch.compile` (train and eval), `state_dict`, `deepcopy`: plain parameters, nothing cached; on
  $[N, C, \ldots]$ input the parameters broadcast through `labnorm._compile.channel_param`, as DyT's.
"""

from __future__ import annotations

import torch
from torch import nn

from labnorm._compile import channel_param

__all__ = ["DynamicErf"]


class DynamicErf(nn.Module):
    r"""$y = \gamma \odot \operatorname{erf}(\alpha x + s) + \beta$: learned scalars $\alpha, s$, per-channel $\gamma, \beta$.

    Args:
        num_features: $C$, the size of the channel dim.
        alpha_init: initial $\alpha$ (the authors' default: 0.5).
        shift_init: initial $s$ (the authors' default: 0).
        channels_last: channels in the last dim (`True`) or in dim 1 (`False`).

    Parameters `alpha`, `shift` (shape `[1]`), `weight` = $\gamma$ and `bias` = $\beta$ (shape `[C]`),
    named as in the authors' code, so their state dicts load.

    Raises:
        ValueError: a non-positive `num_features`; input of rank < 2, or another channel count.
    """

    #: Under `torch.compile`, take the path shaped for inductor (`labnorm._compile`)
    fast_compiled_path: bool = True

    def __init__(
        self,
        num_features: int,
        alpha_init: float = 0.5,
        shift_init: float = 0.0,
        channels_last: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"DynamicErf: num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.alpha_init = alpha_init
        self.shift_init = shift_init
        self.channels_last = channels_last
        factory = {"device": device, "dtype": dtype}
        # $\alpha$ and $s$: one scalar each for the whole layer
        self.alpha = nn.Parameter(torch.full((1,), float(alpha_init), **factory))
        self.shift = nn.Parameter(torch.full((1,), float(shift_init), **factory))
        # $\gamma = 1$, $\beta = 0$, per channel
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.alpha, self.alpha_init)
        nn.init.constant_(self.shift, self.shift_init)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = -1 if self.channels_last else 1
        if x.dim() < 2 or x.shape[dim] != self.num_features:
            where = "the last dim" if self.channels_last else "dim 1"
            raise ValueError(
                f"DynamicErf: expected an input of rank >= 2 with {self.num_features} channels in {where}, "
                f"got shape {tuple(x.shape)}"
            )
        params = (self.alpha, self.shift, self.weight, self.bias)
        if self.channels_last:
            # Per-channel vectors broadcast as they are, over the last dim
            alpha, shift, gamma, beta = params
        else:
            # $[1, C, 1, \ldots]$ (per sample under `torch.compile`, see `labnorm._compile`)
            alpha, shift, gamma, beta = (channel_param(p, x, self.fast_compiled_path) for p in params)
        # $\operatorname{erf}(\alpha x + s)$, then $\gamma \odot \cdot + \beta$
        return (torch.erf(alpha * x + shift) * gamma + beta).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, alpha_init={self.alpha_init}, shift_init={self.shift_init}, "
                f"channels_last={self.channels_last}")
