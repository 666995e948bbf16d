r"""# A tiny GPT with every normalization placement: Pre-LN, Post-LN, Peri-LN

A decoder-only Transformer ([Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf),
GPT-2; the layout of [nanoGPT](https://github.com/karpathy/nanoGPT)) small enough to train on a CPU:
token and position embeddings, $L$ blocks of causal self-attention and an MLP, each a residual
sublayer $F$, a final norm, and a linear head tied to the token embedding. What changes between
the models here is only **where** the norm sits around each sublayer and **which** norm it is.

| `placement` | block, for each sublayer $F$ (attention, then MLP) | final norm | source |
|---|---|---|---|
| `post` | $x \leftarrow \mathrm{Norm}(x + F(x))$ | none (every block ends with a norm) | [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762) |
| `pre`  | $x \leftarrow x + F(\mathrm{Norm}(x))$ | yes | GPT-2; [Xiong et al., 2020](https://arxiv.org/abs/2002.04745) |
| `peri` | $x \leftarrow x + \mathrm{Norm}_{out}(F(\mathrm{Norm}_{in}(x)))$ | yes | [Kim et al., 2025](https://arxiv.org/abs/2502.02732) (Peri-LN; Gemma 2/3, OLMo 2 normalize sublayer outputs) |

Post-LN normalizes the residual stream itself, so its gradient near the output is large at
initialization and it needs learning-rate warm-up (Xiong et al.); Pre-LN leaves the stream
unnormalized — its scale grows with depth, so it needs the final norm; Peri-LN also normalizes what
each sublayer adds, which bounds the stream's growth.

| `norm` | layer on $[B, T, C]$ (over $C$) |
|---|---|
| `ln` | `labnorm.LayerNorm(C)` |
| `rms` | `labnorm.RMSNorm(C)` |
| `rms-zero-centred` | `labnorm.RMSNorm(C, zero_centered=True)` (Gemma) |
| `dyt` | `labnorm.DynamicTanh(C, channels_last=True)` |
| `derf` | `labnorm.DynamicErf(C, channels_last=True)` |
| `none` | identity |

With `dyt` and `derf` the embeddings are multiplied by a learned scalar initialized to $\sqrt C$, as
the Derf authors' GPT-2 code does for both (`language model/model_derf.patch` in
[zlab-princeton/Derf](https://github.com/zlab-princeton/Derf)): nanoGPT's embeddings have std 0.02,
and without a norm to rescale them the S-curves would see values near 0 only. `qk_norm="rms"` or
`"ln"` puts `labnorm.QKNorm` on every attention's queries and keys.

Initialization as GPT-2 / nanoGPT: linear and embedding weights $\mathcal N(0, 0.02^2)$, biases 0,
the output projections of the residual sublayers $\mathcal N(0, (0.02/\sqrt{2L})^2)$.
Defaults are sized for character-level tiny Shakespeare: 65 characters, a context of 64.

`forward(idx)` takes $[B, T]$ token ids ($T \le$ `context`) and returns $[B, T, V]$ logits; the
output at position $t$ depends on the tokens at $\le t$ only (a test checks it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import CausalSelfAttention
from .dynamic_erf import DynamicErf
from .dynamic_tanh import DynamicTanh
from .layer_norm import LayerNorm, RMSNorm

__all__ = ["TinyGPT", "Block", "make_sequence_norm", "SEQUENCE_NORMS", "PLACEMENTS"]

# name -> the layer over the last dim of [B, T, C]
SEQUENCE_NORMS = {
    "ln": lambda c: LayerNorm(c),
    "rms": lambda c: RMSNorm(c),
    "rms-zero-centred": lambda c: RMSNorm(c, zero_centered=True),
    "dyt": lambda c: DynamicTanh(c, channels_last=True),
    "derf": lambda c: DynamicErf(c, channels_last=True),
    "none": lambda c: nn.Identity(),
}
PLACEMENTS = ("pre", "post", "peri")
# The norms that compute no statistics, and take the authors' learned embedding scale
_POINTWISE = ("dyt", "derf")


def make_sequence_norm(norm: str, dim: int) -> nn.Module:
    """The norm `norm` (a key of `SEQUENCE_NORMS`) over the last dim, of size `dim`."""
    if norm not in SEQUENCE_NORMS:
        raise ValueError(f"tiny_gpt: unknown norm {norm!r}; known: {', '.join(SEQUENCE_NORMS)}")
    return SEQUENCE_NORMS[norm](dim)


class MLP(nn.Module):
    """$\\mathrm{GELU}(x W_1 + b_1) W_2 + b_2$, hidden size $4C$."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    r"""One Transformer block: attention, then MLP, each a residual sublayer with the norms of `placement`.

    Submodules `attn`, `mlp`, and the norms `norm1`, `norm2` (before the sublayer for `pre` and
    `peri`, after the addition for `post`) and, for `peri`, `norm1_out`, `norm2_out` on the sublayers' outputs.
    """

    def __init__(self, dim: int, num_heads: int, norm: str = "ln", placement: str = "pre",
                 qk_norm: str | None = None) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"tiny_gpt: unknown placement {placement!r}; known: {', '.join(PLACEMENTS)}")
        self.placement = placement
        self.norm1, self.norm2 = make_sequence_norm(norm, dim), make_sequence_norm(norm, dim)
        self.attn = CausalSelfAttention(dim, num_heads, qk_norm=qk_norm)
        self.mlp = MLP(dim)
        if placement == "peri":
            self.norm1_out, self.norm2_out = make_sequence_norm(norm, dim), make_sequence_norm(norm, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            # $x + F(\mathrm{Norm}(x))$
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        if self.placement == "post":
            # $\mathrm{Norm}(x + F(x))$
            x = self.norm1(x + self.attn(x))
            return self.norm2(x + self.mlp(x))
        # peri: $x + \mathrm{Norm}_{out}(F(\mathrm{Norm}_{in}(x)))$
        x = x + self.norm1_out(self.attn(self.norm1(x)))
        return x + self.norm2_out(self.mlp(self.norm2(x)))


class TinyGPT(nn.Module):
    r"""A character-level GPT: embeddings, `num_layers` blocks, final norm (not for `post`), tied head.

    Args:
        norm: a key of `SEQUENCE_NORMS` (`ln`, `rms`, `rms-zero-centred`, `dyt`, `derf`, `none`).
        placement: `pre`, `post` or `peri`.
        qk_norm: `None`, `"rms"` or `"ln"` (`labnorm.QKNorm` in every attention).
        vocab_size: $V$ (65: tiny Shakespeare's characters).
        context: the longest sequence $T$ (64).
        dim: $C$, the width of the residual stream (128).
        num_layers: $L$ (4).
        num_heads: heads per attention (4; $C$ must divide by it).

    Raises:
        ValueError: an unknown `norm` or `placement`; token ids not $[B, T]$ integers, or $T >$ `context`.
    """

    def __init__(self, norm: str = "ln", placement: str = "pre", qk_norm: str | None = None,
                 vocab_size: int = 65, context: int = 64, dim: int = 128, num_layers: int = 4,
                 num_heads: int = 4) -> None:
        super().__init__()
        make_sequence_norm(norm, dim)  # an unknown norm fails here, named
        if placement not in PLACEMENTS:
            raise ValueError(f"tiny_gpt: unknown placement {placement!r}; known: {', '.join(PLACEMENTS)}")
        self.norm, self.placement, self.qk_norm = norm, placement, qk_norm
        self.vocab_size, self.context, self.dim = vocab_size, context, dim
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.pos_emb = nn.Embedding(context, dim)
        # dyt / derf: a learned scale of the embeddings, $\sqrt C$ at initialization (the Derf authors' GPT-2)
        self.embed_scale = nn.Parameter(torch.full((1,), math.sqrt(dim))) if norm in _POINTWISE else None
        self.blocks = nn.ModuleList(Block(dim, num_heads, norm, placement, qk_norm) for _ in range(num_layers))
        # Post-LN's last block already ends with a norm; Pre-LN and Peri-LN need a final one
        self.final_norm = nn.Identity() if placement == "post" else make_sequence_norm(norm, dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        # Weight tying: the head's matrix is the token embedding (GPT-2)
        self.head.weight = self.tok_emb.weight
        self._init_weights(num_layers)

    def _init_weights(self, num_layers: int) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        # The residual sublayers' output projections: std $0.02/\sqrt{2L}$ (GPT-2)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, 0.0, 0.02 / math.sqrt(2 * num_layers))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2 or idx.is_floating_point() or idx.is_complex():
            raise ValueError(f"TinyGPT: expected [B, T] integer token ids, got {idx.dtype} of shape {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.context:
            raise ValueError(f"TinyGPT: sequence of {t} tokens is longer than the context of {self.context}")
        # Token + position embeddings: $[B, T, C]$
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(t, device=idx.device))
        if self.embed_scale is not None:
            x = x * self.embed_scale
        for block in self.blocks:
            x = block(x)
        # $[B, T, C] \to [B, T, V]$ logits
        return self.head(self.final_norm(x))
