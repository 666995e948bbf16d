r"""Broadcast shapes that let `torch.compile` make fast CPU code for per-channel parameters.

A per-channel parameter $p \in \mathbb{R}^C$ acts on an $[N, C, H, W]$ map through the view
$[1, C, 1, 1]$. Its gradient is then a sum over $(N, H, W)$, and inductor (torch 2.13, CPU) writes
that as one reduction that strides across the samples of an NCHW tensor, separate from the pass
that computes the input's gradient. Repeated per sample, as $[N, C, 1, 1]$, the same gradient is a
sum over $(H, W)$ — contiguous, vectorized, fused with that pass — followed by a sum of $N \times C$
numbers. The values are the same either way; only the order of the additions changes.

Measured side by side by `benchmarks/bench_compile_paths.py` (CPU, 1 thread, train forward +
backward on $[128, 64, 32, 32]$, `benchmarks/results/compile_paths__cpu.json`): FRN + TLU compiled
1.41× torch's eager `BatchNorm2d` as written, 0.80× with the repeat; Dynamic Tanh 1.72× and 1.32×.
Eager, the plain view is used: torch's own kernels reduce well either way, and the repeat would
only cost a copy.
"""

from __future__ import annotations

import torch

__all__ = ["channel_param"]


def channel_param(p: torch.Tensor, x: torch.Tensor, fast_compiled_path: bool = True) -> torch.Tensor:
    r"""$p \in \mathbb{R}^C$ shaped to broadcast over $x = [N, C, \ldots]$: $[1, C, 1, \ldots]$ eager,
    $[N, C, 1, \ldots]$ (repeated per sample) under `torch.compile`. A one-element $p$ (a scalar
    parameter such as Dynamic Tanh's $\alpha$) is repeated to $[N, C, 1, \ldots]$ under compile too.
    With `fast_compiled_path=False` (a layer's attribute of that name) the plain view is used under
    compile as well: `benchmarks/bench_compile_paths.py` times the two side by side."""
    ones = (1,) * (x.dim() - 2)
    if not (fast_compiled_path and torch.compiler.is_compiling()):
        return p.reshape(1, -1, *ones) if p.numel() > 1 else p.reshape(1, 1, *ones)
    c = x.shape[1] // p.numel()
    return p.reshape(1, -1, *ones).repeat(x.shape[0], c, *ones)
