r"""# Filter Response Normalization and the Thresholded Linear Unit

[Filter Response Normalization](https://arxiv.org/abs/1911.09737) (Singh & Krishnan, 2019) normalizes
every channel of every sample on its own — no batch, no group, no mean. For the $N = H W$ responses
$x$ of one filter on one sample,

$$\nu^2 = \frac{1}{N}\sum_i x_i^2, \qquad \hat x = \frac{x}{\sqrt{\nu^2 + |\epsilon|}}, \qquad
  y = \gamma \hat x + \beta$$

$\nu^2$ is the mean *square*, not the variance: nothing is subtracted. So the output can sit anywhere
relative to zero, and a ReLU after it could switch a whole channel off. The paper therefore pairs FRN
with its own activation, the **Thresholded Linear Unit**, a ReLU with a learned threshold $\tau$:

$$z = \max(y, \tau) = \mathrm{ReLU}(y - \tau) + \tau$$

FRN + TLU replaces a BN + ReLU pair: in labnorm's models `norm="frn"` builds
`FilterResponseNorm2d` followed by `TLU`, and the model adds no ReLU after it (see `labnorm.norms`).
Where a model has a norm with no activation after it (the second norm of a ResNet block, the
projection shortcut) it gets `FilterResponseNorm2d` alone.

**$\epsilon$.** The paper writes $|\epsilon|$ so that $\epsilon$ may be learned. With
`learnable_eps=False` (default) $\epsilon$ is the constant `eps` (1e-6, the paper's value for
feature maps larger than $1 \times 1$; a negative `eps` is refused rather than silently made positive).
With `learnable_eps=True` the layer learns a per-channel $\epsilon_l$, initialised to `eps`, and uses

$$\epsilon = \epsilon_{\text{lower}} + |\epsilon_l|, \qquad \epsilon_{\text{lower}} = 10^{-6}$$

— the paper's choice for the case where $\epsilon$ matters most: on a $1 \times 1$ map $\nu^2 = x^2$
and $\hat x = x / \sqrt{x^2 + \epsilon} \approx \operatorname{sign}(x)$, a step whose gradient vanishes
unless $\epsilon$ is large enough; the paper learns it there, initialised to $10^{-4}$
(`FilterResponseNorm2d(C, eps=1e-4, learnable_eps=True)`). We keep $\epsilon_l$ per channel like
$\gamma$ and $\beta$ (the paper does not say whether it is a scalar; per channel contains the scalar
case). timm's `FilterResponseNormTlu2d` has no learnable $\epsilon$ and defaults to `eps=1e-5`.

**Edge cases and their answers.**

- *All-zero input*: $\nu^2 = 0$, and $\epsilon$ is what keeps the division finite: $\hat x = 0$,
  $y = \beta$, the gradient w.r.t. $x$ is $\gamma / \sqrt{\epsilon}$ (finite, $10^3\gamma$ at 1e-6).
- *Batch of one*: nothing is computed across the batch, so any batch size works, in training too;
  train and eval mode compute the same thing.
- *$1\times 1$ maps*: allowed; the output is close to $\operatorname{sign}(x)$ unless $\epsilon$ is
  comparable to $x^2$ (see above).
- *Float32 with mean 100 and std 0.01*: FRN does not centre, so $\hat x \approx 1$ everywhere and the
  spread survives only as a relative ripple of $10^{-4}$; the answer equals float64 to float32
  precision (tested). That is the formula's answer, not a bug: FRN assumes the preceding conv's output
  is roughly centred.
- *bf16 autocast / bf16 input*, and a half-precision module (`.half()`, `.to(torch.bfloat16)`): $\nu^2$
  is computed in float32 and the output is cast back to the input's dtype (torch has no FRN; tested
  against float64 in `tests/test_dtypes.py`).
- *An empty batch* (N = 0): an empty output — no statistic involves the batch.
- *Wrong rank or channel count*: `ValueError` naming the layer, what it expected and what it got.
- `torch.compile`, `state_dict` round trip and `deepcopy` work as for any module (tested). Under
  compile, $\gamma$, $\beta$ and $\tau$ are repeated per sample before they broadcast, which makes
  inductor's code for their gradients faster with the same values (`labnorm._compile`; tested
  equal to eager in float64).
"""

from __future__ import annotations

import torch
from torch import nn

from labnorm._compile import channel_param

__all__ = ["FilterResponseNorm2d", "TLU", "EPS_LOWER"]

# The fixed lower bound on a learned epsilon (the paper's $10^{-6}$)
EPS_LOWER = 1e-6

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_input(layer: str, x: torch.Tensor, channels: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"{layer}: expected a 4-D input [N, C, H, W], got {x.dim()}-D input of shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer}: expected {channels} channels in dim 1 of an [N, C, H, W] input, "
            f"got {x.shape[1]} (input shape {tuple(x.shape)})"
        )


def _view(t: torch.Tensor) -> torch.Tensor:
    """A per-channel vector $[C]$ as $[1, C, 1, 1]$."""
    return t.reshape(1, -1, 1, 1)


class FilterResponseNorm2d(nn.Module):
    r"""Filter Response Normalization over each (sample, channel) of $[N, C, H, W]$, with affine $\gamma, \beta$.

    Args:
        num_features: $C$.
        eps: $\epsilon$ (constant), or the initial $\epsilon_l$ when `learnable_eps=True`.
        learnable_eps: learn a per-channel $\epsilon_l$; the layer uses $10^{-6} + |\epsilon_l|$.

    Raises:
        ValueError: negative `eps`; input that is not 4-D or has the wrong channel count.
    """

    #: Under `torch.compile`, take the path shaped for inductor (`labnorm._compile`); False compiles
    #: the formula as written (`benchmarks/bench_compile_paths.py` times both)
    fast_compiled_path: bool = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-6,
        learnable_eps: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"FilterResponseNorm2d: num_features must be a positive int, got {num_features!r}")
        if eps < 0:
            raise ValueError(f"FilterResponseNorm2d: eps must be >= 0, got {eps!r}")
        self.num_features = num_features
        self.learnable_eps = learnable_eps
        factory = {"device": device, "dtype": dtype}
        # $\gamma = 1$, $\beta = 0$: at initialization the layer only normalizes
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        if learnable_eps:
            # $\epsilon_l$, one per channel, starting at `eps`
            self.eps = nn.Parameter(torch.full((num_features,), float(eps), **factory))
        else:
            self.eps = float(eps)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def effective_eps(self) -> torch.Tensor | float:
        r"""The $\epsilon$ added to $\nu^2$: `eps`, or $10^{-6} + |\epsilon_l|$ when learned."""
        if self.learnable_eps:
            return EPS_LOWER + self.eps.abs()
        return self.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("FilterResponseNorm2d", x, self.num_features)
        # Statistics in at least float32 (bf16/fp16 inputs are upcast, the output cast back)
        xs = x.float() if x.dtype in _LOW_PRECISION else x
        # $\nu^2 = \frac{1}{HW}\sum_{h,w} x^2$, per sample and channel
        nu2 = xs.square().mean(dim=(2, 3), keepdim=True)
        eps = self.effective_eps()
        if isinstance(eps, torch.Tensor):
            eps = _view(eps).to(xs.dtype)
        # $\hat x = x / \sqrt{\nu^2 + \epsilon}$
        x_hat = xs * torch.rsqrt(nu2 + eps)
        # $y = \gamma \hat x + \beta$
        # ($\gamma, \beta$ as $[1, C, 1, 1]$, or per sample under `torch.compile`: see `labnorm._compile`)
        gamma, beta = (channel_param(p, xs, self.fast_compiled_path).to(xs.dtype) for p in (self.weight, self.bias))
        y = torch.addcmul(beta, x_hat, gamma)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        eps = f"{self.eps.detach().abs().max().item():g} (learnable, max)" if self.learnable_eps else f"{self.eps}"
        return f"{self.num_features}, eps={eps}, learnable_eps={self.learnable_eps}"


class TLU(nn.Module):
    r"""Thresholded Linear Unit: $z = \max(y, \tau)$ with a learned per-channel $\tau$ (initially 0, a ReLU).

    Args:
        num_features: $C$.

    Raises:
        ValueError: input of rank < 2 or with the wrong channel count.
    """

    #: Under `torch.compile`, take the path shaped for inductor (`labnorm._compile`); False compiles
    #: the formula as written (`benchmarks/bench_compile_paths.py` times both)
    fast_compiled_path: bool = True

    def __init__(
        self, num_features: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"TLU: num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        # $\tau = 0$: at initialization TLU is a ReLU
        self.tau = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"TLU: expected an input [N, C, *] with C={self.num_features}, got shape {tuple(x.shape)}"
            )
        # $z = \max(y, \tau)$, $\tau$ broadcast over every dim but the channels
        tau = channel_param(self.tau, x, self.fast_compiled_path).to(x.dtype)
        return torch.maximum(x, tau)

    def extra_repr(self) -> str:
        return f"{self.num_features}"
