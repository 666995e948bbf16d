r"""Training a character-level language model, and what to watch in its attention and residual stream.

`train_lm` trains a `labnorm.tiny_gpt.TinyGPT` (or any model from $[B, T]$ token ids to $[B, T, V]$
logits) by next-token cross-entropy, the recipe of GPT-2 / nanoGPT at a small scale:

- **AdamW** ($\beta = (0.9, 0.95)$); weight decay on the matrices (embeddings included) only, none on
  the norms' scales and shifts or on biases;
- **schedule** (`warmup_cosine`): a linear warm-up from $\eta/w$ to the peak $\eta$ over $w$ steps, then a
  cosine down to `min_lr_ratio` $\cdot\,\eta$ — torch's `LinearLR` and `CosineAnnealingLR` joined by
  `SequentialLR`; $w = 0$: the cosine alone;
- **no gradient clipping**: the runs it serves measure instabilities, which clipping would hide;
- **data**: `batch_size` windows of `context` characters at random offsets of the training tokens,
  drawn by a generator seeded with `seed` — the same windows, in the same order, for every model
  trained with that seed;
- a run whose loss stops being finite stops there (`diverged_at_step`).

Every `eval_every` steps and at the end it measures, on fixed validation windows (`probe`):

- the **validation loss** in nats per character;
- the **largest attention logit** $\max_{h,t,u \le t} q_t \cdot k_u / \sqrt d$ of each layer — the
  quantity whose growth Dehghani et al. (2023) and Wortsman et al. (2023) tie to instability, and which
  QK-norm bounds (`labnorm.attention`);
- the **RMS of the residual stream** after each block, $\sqrt{\operatorname{mean} x^2}$ — whose growth with
  depth Kim et al. (2025) compare across norm placements.

`lr_sensitivity` is Wortsman et al.'s summary of a learning-rate sweep: the mean over the rates of
$\min(\ell(\eta), \ell_0) - \min_\eta \ell(\eta)$, where $\ell_0$ is the loss at initialization (a diverged run
counts as $\ell_0$).
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..text import eval_windows, random_windows

__all__ = ["train_lm", "warmup_cosine", "lm_loss", "probe", "lr_sensitivity"]


def warmup_cosine(opt: torch.optim.Optimizer, steps: int, warmup_steps: int, min_lr_ratio: float = 0.1):
    """Linear warm-up over `warmup_steps` (0: none), then a cosine to `min_lr_ratio` of the peak, over `steps`."""
    lr_min = opt.param_groups[0]["lr"] * min_lr_ratio
    w = min(warmup_steps, steps - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps - max(w, 0)), eta_min=lr_min)
    if w <= 0:
        return cosine
    # From $\eta / w$ up to $\eta$ in $w$ steps
    ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / w, end_factor=1.0, total_iters=w)
    return torch.optim.lr_scheduler.SequentialLR(opt, [ramp, cosine], milestones=[w])


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Mean next-token cross-entropy (nats per token) of `model` on windows `x` -> `y`, `batch` windows at a time."""
    with torch.no_grad():
        total = sum(F.cross_entropy(model(x[i:i + batch]).flatten(0, 1), y[i:i + batch].flatten(), reduction="sum")
                    for i in range(0, len(x), batch))
    return float(total) / y.numel()


def probe(model: nn.Module, x: torch.Tensor) -> dict[str, list[float]]:
    """On windows `x`: the largest attention logit of each block (`max_logit`) and the residual stream's RMS
    after each block (`rms`). Reads `model.blocks[i].attn` (a `labnorm.CausalSelfAttention`)."""
    seen, hooks = {}, []
    for i, block in enumerate(model.blocks):
        hooks.append(block.attn.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(("in", i), a[0])))
        hooks.append(block.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(("out", i), out)))
    try:
        with torch.no_grad():
            model(x)
            logits = []
            for i, block in enumerate(model.blocks):
                attn, h = block.attn, seen[("in", i)]
                b, t, _ = h.shape
                # The attention's own queries and keys, QK-normed where it normalizes them: $[B, H, T, d]$
                q, k, _ = attn.qkv(h).reshape(b, t, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
                if attn.qk_norm is not None:
                    q, k = attn.qk_norm(q, k)
                # $\ell_{tu} = q_t \cdot k_u / \sqrt d$ over the pairs $u \le t$ the causal mask keeps
                future = torch.ones(t, t, dtype=torch.bool, device=h.device).triu(1)
                ell = (q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim)).masked_fill(future, float("-inf"))
                logits.append(float(ell.max()))
            # $\sqrt{\operatorname{mean} x^2}$ of the stream after each block
            rms = [float(seen[("out", i)].float().square().mean().sqrt()) for i in range(len(model.blocks))]
    finally:
        for hook in hooks:
            hook.remove()
    return {"max_logit": logits, "rms": rms}


def lr_sensitivity(losses: Sequence[float | None], initial_loss: float) -> float:
    r"""Wortsman et al. (2023): mean over the sweep of $\min(\ell, \ell_0) - \min \ell$ (None, diverged: $\ell_0$)."""
    capped = [initial_loss if v is None or not math.isfinite(v) else min(v, initial_loss) for v in losses]
    return sum(v - min(capped) for v in capped) / len(capped)


def train_lm(model: nn.Module, train: torch.Tensor, val: torch.Tensor, *, steps: int, batch_size: int, context: int,
             lr: float, warmup_steps: int, seed: int, device: torch.device | str = "cpu", min_lr_ratio: float = 0.1,
             weight_decay: float = 0.1, eval_every: int = 200, eval_windows_count: int = 128,
             final_windows: int | None = None, probe_windows: int = 16) -> dict:
    """Train `model` on token ids `train` and evaluate on `val` (see the module doc). Returns its history:
    `val_loss` (final, on `final_windows` windows, all by default; None if it diverged), `evals`, `step_loss`,
    `tokens_per_s` and `train_seconds` (training steps alone), `diverged_at_step`, `steps`."""
    device = torch.device(device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    sched = warmup_cosine(opt, steps, warmup_steps, min_lr_ratio)
    g = torch.Generator().manual_seed(seed)
    vx, vy = (t.to(device) for t in eval_windows(val, context))
    losses, evals, diverged, train_s = [], [], None, 0.0
    for step in range(1, steps + 1):
        x, y = (t.to(device) for t in random_windows(train, batch_size, context, g))
        t0 = time.perf_counter()
        model.train()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())  # a device sync: the step is over when it is timed
        train_s += time.perf_counter() - t0
        if not math.isfinite(value):
            diverged = step
            break
        losses.append(value)
        if step % eval_every == 0 or step == steps:
            model.eval()
            evals.append({"step": step, "val_loss": lm_loss(model, vx[:eval_windows_count], vy[:eval_windows_count],
                                                            batch_size), **probe(model, vx[:probe_windows])})
    model.eval()
    n = len(vx) if final_windows is None else min(final_windows, len(vx))
    return {"val_loss": None if diverged else lm_loss(model, vx[:n], vy[:n], batch_size), "evals": evals,
            "step_loss": losses, "diverged_at_step": diverged, "steps": len(losses), "train_seconds": train_s,
            "tokens_per_s": len(losses) * batch_size * context / train_s if losses else None,
            "val_tokens": n * context}
