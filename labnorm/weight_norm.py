r"""# Weight Normalization

[Weight Normalization](https://arxiv.org/abs/1602.07868) (Salimans & Kingma, 2016) writes each
weight vector as a direction times a length,

$$w = g \, \frac{v}{\lVert v \rVert},$$

and learns $g$ and $v$ instead of $w$. The length of $w$ is now a parameter of its own,
decoupled from its direction, which conditions the gradient better; unlike batch norm nothing
depends on the batch. The notebook `notebooks/02_weight_norm` builds it line by line.

Here it is a `torch.nn.utils.parametrize` parametrization (`weight_norm(module)`): `module.weight`
is recomputed from $g$ (`original0`) and $v$ (`original1`) at every use, so any layer with a weight
works, and a state dict saved by `torch.nn.utils.parametrizations.weight_norm` loads as it is.
The norm runs over every dimension except `dim`, one $g$ per slice along `dim`.

Three traps of torch's version, and labnorm's answers:

* **Transposed convs.** `ConvTranspose` weights are `[in, out/groups, *k]`, so torch's default
  `dim=0` gives one $g$ per *input* channel. `dim="output"` picks the output-channel dim of any
  layer (0 for Linear/Conv, 1 for ConvTranspose) — the per-output-unit norm of the paper.
* **`dim=-1` is not the last dim.** In torch `dim=None` and `dim=-1` both mean one norm over
  the whole tensor. labnorm takes `dim=None` for that and refuses negative dims, which would
  silently mean something else to a reader used to Python indexing.
* **Zero-norm rows.** torch divides by $\lVert v \rVert$ and a zero row gives NaN. With `eps > 0`,
  labnorm divides by $\sqrt{\lVert v \rVert^2 + \epsilon}$ and stays finite (`eps=0`, the default,
  matches torch exactly).

`data_dependent_init` is the paper's initialization; `MeanOnlyBatchNorm` its companion layer.

**Per-worker statistics** (`MeanOnlyBatchNorm(C, norm_batch=b)`, see `labnorm._norm_batch`): the mean
is taken over each group $B_j$ of $b$ consecutive samples by itself, $y = x - \mu_{j,c} + \beta_c$ with
$\mu_{j,c} = \frac{1}{b\,|*|}\sum_{n \in B_j, *} x_{n,c,*}$, as $N/b$ workers would; the running mean
takes one step towards $\overline{\mu_j}$, the mean over the groups (equal to the batch mean, since the
groups are the same size: only the output changes with $b$). Vectorized over $[N/b, b, C, *]$; a batch
$b$ does not divide: `ValueError`. A group of one value per channel is allowed, as a batch of one is:
the mean of one value is defined (the output is then $\beta$). Eval mode: unchanged.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._norm_batch import batch_groups, check_norm_batch, mean_over_groups

__all__ = ["WeightNorm", "weight_norm", "remove_weight_norm", "data_dependent_init", "MeanOnlyBatchNorm",
           "weight_norm_layers"]

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _norm_except(v: torch.Tensor, dim: int | None, eps: float) -> torch.Tensor:
    r"""$\sqrt{\sum v^2 + \epsilon}$ over every dim except `dim` (all dims when `dim` is None), keepdim."""
    dims = tuple(d for d in range(v.dim()) if d != dim) if dim is not None else tuple(range(v.dim()))
    if eps == 0:
        # One fused op (what torch's own weight norm computes)
        return torch.linalg.vector_norm(v, dim=dims, keepdim=dim is not None)
    return torch.sqrt(v.pow(2).sum(dim=dims, keepdim=dim is not None) + eps)


class WeightNorm(nn.Module):
    r"""The parametrization $w = g\,v / \lVert v \rVert$ (see the module docstring)."""

    def __init__(self, dim: int | None = 0, eps: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # $w = g \cdot v / \lVert v \rVert$, one norm per slice along `dim`
        return v * (g / _norm_except(v, self.dim, self.eps))

    def right_inverse(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Wrapping keeps the weight: $v = w$, $g = \lVert w \rVert$, so $g v / \lVert v \rVert = w$
        # (exactly when eps = 0).
        return _norm_except(w, self.dim, 0.0), w

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}"


def _resolve_dim(module: nn.Module, weight: torch.Tensor, dim: int | str | None) -> int | None:
    if dim == "output":
        return 1 if isinstance(module, _TRANSPOSED) else 0
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"weight_norm: dim must be an int, None or 'output', got {dim!r}")
    if dim < 0:
        raise ValueError(
            f"weight_norm: dim={dim} is ambiguous: torch reads dim=-1 as 'one norm over the whole "
            f"tensor', Python as 'the last dim'. Pass dim=None for the whole tensor or "
            f"dim={weight.dim() - 1} for the last dim."
        )
    if dim >= weight.dim():
        raise ValueError(f"weight_norm: dim={dim} is out of range for a {weight.dim()}-D weight {tuple(weight.shape)}")
    return dim


def weight_norm(module: nn.Module, name: str = "weight", dim: int | str | None = 0, eps: float = 0.0) -> nn.Module:
    """Reparametrize `module.<name>` as $g\\,v/\\lVert v\\rVert$; returns the module.

    Args:
        module: any module with a weight (Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, ...).
        name: the parameter to reparametrize.
        dim: the dim that keeps one $g$ per slice; `None` for a single $g$; `"output"` for the
            output-channel dim of the layer (1 for transposed convs). Negative dims are refused.
        eps: added to $\\lVert v \\rVert^2$ under the square root; > 0 keeps zero rows finite.
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor) or name not in dict(module.named_parameters(recurse=False)) \
            and not parametrize.is_parametrized(module, name):
        raise ValueError(f"weight_norm: {type(module).__name__} has no parameter {name!r}")
    if parametrize.is_parametrized(module, name):
        raise ValueError(f"weight_norm: {type(module).__name__}.{name} is already parametrized")
    if eps < 0:
        raise ValueError(f"weight_norm: eps must be >= 0, got {eps}")
    parametrize.register_parametrization(module, name, WeightNorm(_resolve_dim(module, weight, dim), eps),
                                         unsafe=True)
    return module


def remove_weight_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Replace the parametrization by a plain parameter holding the current $w$."""
    if not (parametrize.is_parametrized(module, name)
            and any(isinstance(p, WeightNorm) for p in module.parametrizations[name])):
        raise ValueError(f"remove_weight_norm: {type(module).__name__}.{name} has no weight norm")
    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return module


def weight_norm_layers(model: nn.Module) -> Iterable[tuple[str, nn.Module, WeightNorm]]:
    """(name, module, parametrization) of every weight-normalized `weight` in `model`."""
    for mod_name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, WeightNorm):
                    yield mod_name, module, p


@torch.no_grad()
def data_dependent_init(model: nn.Module, batch: torch.Tensor, init_scale: float = 1.0) -> nn.Module:
    r"""Salimans & Kingma's initialization, in one forward pass over `batch`.

    Each weight-normalized layer, in the order the forward pass reaches it, sees its input
    (produced by the already-initialized layers before it), computes its pre-activation $t$,
    and sets

    $$g \leftarrow g\,\frac{s}{\sigma[t]}, \qquad b \leftarrow \frac{s\,(b - \mu[t])}{\sigma[t]}$$

    per output channel ($s$ = `init_scale`; $\mu, \sigma$ over the batch and positions). Its
    output is replaced by the initialized one, $s\,(t - \mu[t])/\sigma[t]$, so the next layer
    starts from it. Afterwards every WN layer's pre-activation on `batch` has per-channel mean 0
    and standard deviation `init_scale`, whatever $\lVert v \rVert$ was. Layers without a bias get
    the scale only. Needs `dim="output"` (one $g$ per output channel).

    Only $g$ and $b$ change: the forward runs in train mode (batch statistics in any BN layer), then
    every submodule's mode, every buffer (running statistics, `num_batches_tracked`) and the CPU
    and CUDA random generators (dropout draws) are restored.
    """
    hooks = []

    def init_layer(module, inputs, output):
        wn = next(p for p in module.parametrizations.weight if isinstance(p, WeightNorm))
        g = module.parametrizations.weight.original0
        out_dim = 1 if isinstance(module, _TRANSPOSED) else 0
        if wn.dim != out_dim:
            raise ValueError(
                f"data_dependent_init: {type(module).__name__} needs one g per output channel "
                f"(weight_norm(..., dim='output')), has dim={wn.dim}"
            )
        # Per-channel statistics of the pre-activation $t$ over every dim except the channel dim 1
        dims = [d for d in range(output.dim()) if d != 1]
        var, mean = torch.var_mean(output, dim=dims, correction=0)
        scale = init_scale / torch.sqrt(var + 1e-12)
        # $g \leftarrow g s / \sigma$ (g has size-1 dims except along the output dim)
        shape = [1] * g.dim()
        shape[out_dim] = -1
        g.mul_(scale.view(shape))
        view = [1] * output.dim()
        view[1] = -1
        if getattr(module, "bias", None) is not None:
            # $b \leftarrow s (b - \mu) / \sigma$
            module.bias.sub_(mean).mul_(scale)
            return (output - mean.view(view)) * scale.view(view)
        return output * scale.view(view)

    for _, module, _ in weight_norm_layers(model):
        hooks.append(module.register_forward_hook(init_layer))
    if not hooks:
        raise ValueError("data_dependent_init: the model has no weight-normalized layer")
    modes = {m: m.training for m in model.modules()}
    buffers = [(b, b.clone()) for b in model.buffers()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            model.train()
            model(batch)
    finally:
        for h in hooks:
            h.remove()
        for module, training in modes.items():
            module.training = training
        for b, saved in buffers:
            b.copy_(saved)
    return model


class MeanOnlyBatchNorm(nn.Module):
    r"""Mean-only batch normalization, WN's companion in the paper: $y = x - \mu_c + \beta_c$.

    Subtracts the per-channel batch mean in training (the running mean in eval mode, updated
    with torch's momentum convention), divides by nothing, and adds a learned bias. For any
    input $[N, C, *]$. An empty batch in training is refused (its mean would be NaN; torch has no
    mean-only BN), and gives an empty output in eval; half-precision input — and a half-precision
    module — gets a float32 mean and comes back in its own dtype. `norm_batch=b`: the mean of each group
    of $b$ consecutive samples (see the module docstring); `None` for the whole batch.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, norm_batch: int | None = None) -> None:
        super().__init__()
        self.norm_batch = check_norm_batch("MeanOnlyBatchNorm", norm_batch)
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"MeanOnlyBatchNorm: num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.momentum = momentum
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"MeanOnlyBatchNorm: expected an input [N, {self.num_features}, *], got shape {tuple(x.shape)}"
            )
        view = [1, -1] + [1] * (x.dim() - 2)
        out_dtype = x.dtype
        # The mean in at least float32 (half-precision input is upcast, the output cast back)
        x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if self.training and x.shape[0] == 0:
            raise ValueError("MeanOnlyBatchNorm: an empty batch (N = 0) in training has no mean "
                             "(the running mean would become NaN); skip empty batches")
        if self.training:
            # The batch, or its groups of $b$ samples $[N/b, b, C, *]$
            xg, dims = batch_groups("MeanOnlyBatchNorm", x, self.norm_batch)
            # $\mu_c$ over the batch and positions (or $\mu_{j,c}$ over each group's), kept broadcastable
            mean = xg.mean(dim=dims, keepdim=True)
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                batch_mean = mean_over_groups(mean, self.norm_batch).flatten()
                self.running_mean.mul_(1 - self.momentum).add_(batch_mean.to(self.running_mean.dtype), alpha=self.momentum)
            # $y = x - \mu + \beta$ (from the grouped view back to the input's shape)
            return (xg - mean + self.bias.view(view)).reshape(x.shape).to(out_dtype)
        # $y = x - \hat\mu + \beta$ with the running mean
        return (x - self.running_mean.view(view) + self.bias.view(view)).to(out_dtype)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, momentum={self.momentum}"
                + ("" if self.norm_batch is None else f", norm_batch={self.norm_batch}"))
