r"""# QK-norm: normalizing queries and keys before their product

In scaled dot-product attention ([Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)) each head
turns its queries $q_t$ and keys $k_u \in \mathbb{R}^{d}$ ($d$ the head dim) into logits and weights

$$\ell_{tu} = \frac{q_t \cdot k_u}{\sqrt d}, \qquad a_{tu} = \operatorname{softmax}_u(\ell_{tu}), \qquad
  o_t = \sum_u a_{tu} v_u$$

Nothing bounds $\ell$: as the query and key projections grow in training, the logits grow with the
product of their norms, the softmax saturates to one-hot, and its gradient vanishes — the
*attention-logit growth* instability that [Dehghani et al., 2023](https://arxiv.org/abs/2302.05442)
(ViT-22B) and [Wortsman et al., 2023](https://arxiv.org/abs/2309.14322) observe at high learning
rates, and remove by normalizing $q$ and $k$.

**QK-norm** ([Henry, Dachapally, Pawar & Chen, 2020](https://arxiv.org/abs/2010.04245), "Query-Key
Normalization for Transformers") normalizes each query and each key over its head dim *before* the
product. Henry et al. divide by the L2 norm, which makes $q \cdot k$ a cosine in $[-1, 1]$, and
replace $1/\sqrt d$ by a learned scale $g$. The form used in large models since — ViT-22B, the
small-scale proxies of Wortsman et al., OLMo 2, Gemma 3 — keeps $1/\sqrt d$ and puts a LayerNorm or an
RMSNorm, with its learned per-dim scale, on $q$ and on $k$:

$$\hat q_t = \mathrm{Norm}_q(q_t), \quad \hat k_u = \mathrm{Norm}_k(k_u), \qquad
  \ell_{tu} = \frac{\hat q_t \cdot \hat k_u}{\sqrt d}$$

so $|\ell_{tu}| \le \lVert \gamma_q \rVert_\infty \lVert \gamma_k \rVert_\infty \sqrt d$: the logits
can grow only as fast as the norms' scales. That form is `QKNorm(head_dim, norm="rms")` (the default:
`labnorm.RMSNorm`) or `norm="ln"` (`labnorm.LayerNorm`, $\epsilon = 10^{-5}$), one norm for the
queries and one for the keys, shared by the heads, applied to $[B, H, T, d]$ — the layout of
`torch.nn.functional.scaled_dot_product_attention`. Henry et al.'s L2 form with a learned $g$ is
not implemented here.

`CausalSelfAttention` is the attention of a decoder (GPT), written out as above with the causal mask
$\ell_{tu} = -\infty$ for $u > t$, with an optional `QKNorm` between the projections and the product.

**Bad input and edge cases, with their answers** (each has a test):

- `QKNorm`: queries or keys whose last dim is not `head_dim`, or of different shapes: `ValueError`
  naming the layer; an unknown `norm`: `ValueError` naming the choices.
- `CausalSelfAttention`: input not $[B, T, C]$ with $C$ = `dim`; `dim` not divisible by `num_heads`.
- An empty batch (B = 0): an empty output. bf16 autocast and half-precision modules: the norms
  compute in float32 and return the input's dtype (`labnorm.RMSNorm`, `labnorm.LayerNorm`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layer_norm import LayerNorm, RMSNorm

__all__ = ["QKNorm", "CausalSelfAttention", "causal_attention"]

_QK_NORMS = ("rms", "ln")


class QKNorm(nn.Module):
    r"""$\hat q = \mathrm{Norm}_q(q)$, $\hat k = \mathrm{Norm}_k(k)$ over the head dim, before $q \cdot k$.

    Args:
        head_dim: $d$, the last dim of the queries and keys.
        norm: `"rms"` (`labnorm.RMSNorm`, torch's default $\epsilon$) or `"ln"` (`labnorm.LayerNorm`).
        eps: the norms' $\epsilon$ (`None`: the layer's default).

    `forward(q, k)` takes queries and keys of the same shape $[\ldots, d]$ (e.g. $[B, H, T, d]$) and
    returns the normalized pair. Submodules `q_norm`, `k_norm`.

    Raises:
        ValueError: an unknown `norm`; queries or keys whose last dim is not `head_dim`.
    """

    def __init__(self, head_dim: int, norm: str = "rms", eps: float | None = None) -> None:
        super().__init__()
        if norm not in _QK_NORMS:
            raise ValueError(f"QKNorm: unknown norm {norm!r}; known: {', '.join(_QK_NORMS)}")
        if not isinstance(head_dim, int) or head_dim < 2:
            raise ValueError(f"QKNorm: head_dim must be an int >= 2, got {head_dim!r}")
        self.head_dim = head_dim
        self.norm = norm
        if norm == "rms":
            self.q_norm, self.k_norm = RMSNorm(head_dim, eps=eps), RMSNorm(head_dim, eps=eps)
        else:
            eps = 1e-5 if eps is None else eps
            self.q_norm, self.k_norm = LayerNorm(head_dim, eps=eps), LayerNorm(head_dim, eps=eps)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for name, t in (("queries", q), ("keys", k)):
            if t.dim() < 1 or t.shape[-1] != self.head_dim:
                raise ValueError(
                    f"QKNorm: expected {name} whose last dim is head_dim = {self.head_dim}, got shape {tuple(t.shape)}"
                )
        # Each query and each key normalized over its $d$ values
        return self.q_norm(q), self.k_norm(k)

    def extra_repr(self) -> str:
        return f"{self.head_dim}, norm={self.norm!r}"


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""$o_t = \sum_{u \le t} \operatorname{softmax}_u(q_t \cdot k_u / \sqrt d)\, v_u$ on $[B, H, T, d]$, written out."""
    t, d = q.shape[-2], q.shape[-1]
    # $\ell_{tu} = q_t \cdot k_u / \sqrt d$: $[B, H, T, T]$
    logits = q @ k.transpose(-2, -1) / math.sqrt(d)
    # The causal mask: position $t$ sees $u \le t$ only
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    logits = logits.masked_fill(future, float("-inf"))
    # $a = \operatorname{softmax}_u(\ell)$, then $o = a v$
    return torch.softmax(logits, dim=-1) @ v


class CausalSelfAttention(nn.Module):
    r"""Multi-head causal self-attention on $[B, T, C]$, with optional QK-norm.

    $q, k, v = x W_{qkv}$ split into `num_heads` heads of $d = C / H$; optionally
    $\hat q, \hat k$ = `QKNorm(d, qk_norm)`; `causal_attention`; heads merged; output projection.
    Submodules `qkv` (`nn.Linear(C, 3C)`), `qk_norm` (or `None`), `proj` (`nn.Linear(C, C)`).

    Raises:
        ValueError: `dim` not divisible by `num_heads`; input not $[B, T, C]$.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: str | None = None, bias: bool = True) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"CausalSelfAttention: dim {dim} must be divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.qk_norm = None if qk_norm is None else QKNorm(self.head_dim, qk_norm)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"CausalSelfAttention: expected [B, T, {self.dim}], got shape {tuple(x.shape)}")
        b, t, c = x.shape
        # $[B, T, 3C] \to$ three $[B, H, T, d]$
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)
        # $[B, H, T, d] \to [B, T, C]$, then the output projection
        return self.proj(causal_attention(q, k, v).transpose(1, 2).reshape(b, t, c))
