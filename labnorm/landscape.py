r"""Loss landscapes and smoothness: what a normalization does to the surface the optimizer walks on.

Two families of measurements, both evaluated in-process on a fixed list of batches, seeded, and
without touching the model (every point is a `torch.func.functional_call` with substituted
parameters; the module's own parameters, buffers, `.grad` fields, every submodule's train/eval flag
and the random generators are left as they were).

**Slices and surfaces** (Li et al., 2018, [Visualizing the Loss Landscape of Neural
Nets](https://arxiv.org/abs/1712.09913)). Around trained parameters $\theta$ the loss is plotted on
a line or a plane of parameter space,
$$f(\alpha) = L(\theta + \alpha\,d), \qquad f(\alpha, \beta) = L(\theta + \alpha\,d + \beta\,e),$$
along random directions $d, e$ that are **filter-normalized**: every filter $j$ of layer $i$ of the
Gaussian direction is rescaled to the norm of the matching filter of the weights,
$$d_{i,j} \leftarrow \frac{d_{i,j}}{\lVert d_{i,j}\rVert}\,\lVert\theta_{i,j}\rVert .$$
Without it a scale-invariant layer (a conv followed by BN, a WS conv) with large weights looks flat
and one with small weights looks sharp, whatever the function. A *filter* is one output unit's
weights: a slice along dim 0 of the weight of a convolution or linear layer (for a parametrized
weight, the `original` tensor of the weight's shape: WS's raw weight, weight norm's $v$). Every other
parameter — biases, the scale and shift of a norm layer, weight norm's $g$, Switchable Norm's
importance logits — has no filter to normalize; `vectors="zero"` (the default, Li et al.'s
`biasbn` option) leaves it out of the direction, `vectors="include"` moves each element by
$\pm|\theta_k|$ (the per-element version of the same rule; Li et al.'s code uses $+\theta_k$).
A zero filter of the weights gives a zero filter of the direction.

Also here: the loss along **one parameter** (one weight set to each of a list of values, the seed
post's picture) and along the **interpolation** $\theta(\alpha) = (1-\alpha)\,\theta_A + \alpha\,\theta_B$
between two models of the same architecture (Goodfellow et al., 2015).

**Running statistics** are buffers, not parameters: directions never move them. What a point's
loss means for a layer with running statistics (BN, SN) is the `bn=` mode, chosen explicitly:

| `bn=`      | the loss at a point                                                         |
|------------|-----------------------------------------------------------------------------|
| `"batch"`  | train-mode forward: each batch is normalized by its own statistics — the loss the optimizer sees. The running buffers are updated on throw-away copies only. Default. |
| `"running"`| eval-mode forward with the model's running statistics, frozen at $\theta$ (what Li et al.'s code evaluates). Away from $\theta$ they no longer match the weights, so this surface rises faster than the function does. |

Layers without running statistics (GN, WS+GN, WN) give the same loss in both modes. Interpolating
two models in `"running"` mode also interpolates their floating-point buffers.

**Smoothness along training** (Santurkar et al., 2018, [How Does Batch Normalization Help
Optimization?](https://arxiv.org/abs/1805.11604), §3.1). At a training step with loss $L$,
gradient $g = \nabla L(\theta)$ on the current batch and step sizes $\eta_1 < \dots < \eta_k$:

- loss variation: $L(\theta - \eta\,g)$ for each $\eta$ (its spread over $\eta$ is the band of their Fig. 4a);
- gradient predictiveness: $\lVert \nabla L(\theta) - \nabla L(\theta - \eta\,g)\rVert_2$ (Fig. 4b);
- effective $\beta$-smoothness: $\max_\eta \lVert \nabla L(\theta) - \nabla L(\theta - \eta\,g)\rVert_2 \,/\, \lVert \eta\,g\rVert_2$ (Fig. 4c).

All three use the same batch at every shifted point (in `"batch"` mode, normalized by its own statistics)
and all trainable parameters; `gradient_smoothness` computes them for one step, e.g. from the
`on_step` hook of `labnorm.train.fit.fit`.

Results are plain dicts of NumPy arrays; `save_npz` / `load_npz` store one with its metadata in a
single `.npz` (no MPI, no HDF5). Pass the plain module, not a `torch.compile` wrapper.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize

__all__ = [
    "BN_MODES",
    "filter_weights",
    "filter_normalize",
    "filter_normalized_direction",
    "model_difference",
    "LossEvaluator",
    "loss_along_direction",
    "loss_along_parameter",
    "loss_interpolation",
    "loss_surface",
    "gradient_smoothness",
    "save_npz",
    "load_npz",
]

BN_MODES = ("batch", "running")
VECTOR_MODES = ("zero", "include")

Direction = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def filter_weights(model: nn.Module) -> set[str]:
    """Names of the parameters made of filters: the weights of convolutions and linear layers.

    A parametrized weight (`torch.nn.utils.parametrize`) contributes its originals that have the
    weight's shape (WS's raw weight, weight norm's $v$), not the others (weight norm's $g$).
    """
    names = set()
    for prefix, module in model.named_modules():
        if not isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            continue
        at = f"{prefix}." if prefix else ""
        if parametrize.is_parametrized(module, "weight"):
            for name, p in module.parametrizations.weight.named_parameters(recurse=False):
                if p.shape == module.weight.shape:
                    names.add(f"{at}parametrizations.weight.{name}")
        elif isinstance(module.weight, nn.Parameter):
            names.add(f"{at}weight")
    return names


def _check_vectors(vectors: str) -> None:
    if vectors not in VECTOR_MODES:
        raise ValueError(f"landscape: vectors must be one of {VECTOR_MODES}, got {vectors!r}")


@torch.no_grad()
def filter_normalize(direction: Direction, model: nn.Module, vectors: str = "zero") -> Direction:
    r"""Rescale every filter of `direction` to the norm of the model's matching filter.

    $d_{i,j} \leftarrow d_{i,j}\,\lVert\theta_{i,j}\rVert / \lVert d_{i,j}\rVert$ for filter weights;
    for the other parameters `vectors="zero"` gives 0 and `"include"` gives $\mathrm{sign}(d_k)\,|\theta_k|$.
    A zero filter of the direction stays zero (nothing to rescale). Returns a new dict.
    """
    _check_vectors(vectors)
    params = dict(model.named_parameters())
    _check_direction(direction, params, "filter_normalize")
    filters = filter_weights(model)
    out = {}
    for name, d in direction.items():
        theta = params[name].detach()
        if name in filters:
            # One row per filter: $[C_{out}, \ldots] \to [C_{out}, \text{fan-in}]$
            d_rows, t_rows = d.reshape(len(d), -1), theta.reshape(len(theta), -1)
            d_norm = torch.linalg.vector_norm(d_rows, dim=1, keepdim=True)
            scale = torch.linalg.vector_norm(t_rows, dim=1, keepdim=True) / d_norm.clamp_min(torch.finfo(d.dtype).tiny)
            out[name] = (d_rows * scale).reshape(d.shape)
        elif vectors == "include":
            # Each element is its own filter: $\pm|\theta_k|$
            out[name] = torch.where(d < 0, -theta.abs(), theta.abs())
        else:
            out[name] = torch.zeros_like(d)
    return out


@torch.no_grad()
def filter_normalized_direction(model: nn.Module, seed: int, *, vectors: str = "zero") -> Direction:
    """A Gaussian direction in the model's parameter space, filter-normalized (Li et al., 2018).

    The Gaussian draws come from a CPU generator seeded with `seed`, in float64 and in the order of
    `named_parameters()`, then move to each parameter's device and dtype: the same seed gives the
    same direction on any device. Keys are the parameter names (weight norm's are
    `...parametrizations.weight.original0/1`); only trainable parameters are included.
    """
    _check_vectors(vectors)
    gen = torch.Generator().manual_seed(seed)
    raw = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            raw[name] = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
    return filter_normalize(raw, model, vectors)


@torch.no_grad()
def model_difference(model_a: nn.Module, model_b: nn.Module) -> Direction:
    r"""The direction $\theta_B - \theta_A$ between two models of the same architecture."""
    pa, pb = _trainable(model_a), _trainable(model_b)
    _check_same_architecture(pa, pb, "model_difference")
    return {n: pb[n].detach() - pa[n].detach() for n in pa}


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _check_same_architecture(pa: dict, pb: dict, where: str) -> None:
    if pa.keys() != pb.keys():
        diff = sorted(set(pa) ^ set(pb))
        raise ValueError(f"{where}: the two models have different parameters: {', '.join(diff[:5])}")
    for n in pa:
        if pa[n].shape != pb[n].shape:
            raise ValueError(f"{where}: parameter {n!r} has shape {tuple(pa[n].shape)} in one model "
                             f"and {tuple(pb[n].shape)} in the other")


def _check_direction(direction: Direction, params: dict[str, torch.Tensor], where: str) -> None:
    unknown = sorted(set(direction) - set(params))
    if unknown:
        raise ValueError(f"{where}: direction has entries that are not parameters of the model: {', '.join(unknown[:5])}")
    for n, d in direction.items():
        if d.shape != params[n].shape:
            raise ValueError(f"{where}: direction {n!r} has shape {tuple(d.shape)}, parameter has {tuple(params[n].shape)}")


class LossEvaluator:
    r"""Mean loss and accuracy of `model` at substituted parameters, over fixed batches.

    Args:
        model: the network; never modified.
        batches: `(inputs, targets)` pairs, kept as given (make them once, un-augmented).
        loss_fn: `loss_fn(outputs, targets)` → mean loss of a batch; cross-entropy by default.
        bn: `"batch"` or `"running"` (see the module docstring).

    `evaluator(params)` returns `(loss, accuracy)`, each the mean over all examples; `params` maps
    parameter names to tensors and may hold only some of them (the rest keep their values).
    Accuracy is `nan` when the outputs are not class scores (targets not integer class labels).
    """

    def __init__(self, model: nn.Module, batches: Iterable, *, loss_fn: LossFn | None = None, bn: str = "batch") -> None:
        if bn not in BN_MODES:
            raise ValueError(f"LossEvaluator: bn must be one of {BN_MODES}, got {bn!r}")
        self.model = model
        self.batches = list(batches)
        if not self.batches:
            raise ValueError("LossEvaluator: batches is empty; pass at least one (inputs, targets) pair")
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.bn = bn
        self.params = {n: p.detach() for n, p in model.named_parameters()}
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.count = sum(len(y) for _, y in self.batches)

    def _state(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor] | None = None) -> dict:
        buffers = self.buffers if buffers is None else buffers
        if self.bn == "batch":
            # Train-mode forwards update running statistics in place: give them copies.
            buffers = {n: b.clone() for n, b in buffers.items()}
        return {**self.params, **params, **buffers}

    @torch.no_grad()
    def __call__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor] | None = None) -> tuple[float, float]:
        with _restored(self.model):
            self.model.train(self.bn == "batch")
            loss_sum, correct = 0.0, 0
            for x, y in self.batches:
                out = functional_call(self.model, self._state(params, buffers), (x,))
                loss_sum += self.loss_fn(out, y).item() * len(y)
                if out.dim() == 2 and not y.is_floating_point():
                    correct += (out.argmax(1) == y).sum().item()
                else:
                    correct = math.nan
            return loss_sum / self.count, correct / self.count

    def shifted(self, *directions_and_steps: tuple[Direction, float]) -> dict[str, torch.Tensor]:
        r"""$\theta + \sum_k a_k d_k$ for the given `(direction, a)` pairs."""
        out = {}
        for d, a in directions_and_steps:
            _check_direction(d, self.params, "LossEvaluator")
            for n, v in d.items():
                out[n] = out.get(n, self.params[n]) + a * v
        return out


@contextlib.contextmanager
def _restored(model: nn.Module):
    """Every submodule's train/eval mode and the CPU and CUDA random generators (a train-mode
    forward draws dropout masks) are put back as they were on leaving."""
    modes = {m: m.training for m in model.modules()}
    devices = sorted({t.device.index or 0 for t in model.parameters() if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for module, training in modes.items():
            module.training = training


def _as_array(values: Sequence[float] | np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    arr = np.asarray(values.tolist() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"landscape: {what} must be a non-empty 1-D sequence, got shape {arr.shape}")
    return arr


def loss_along_direction(
    model: nn.Module, batches: Iterable, direction: Direction, alphas: Sequence[float], *,
    bn: str = "batch", loss_fn: LossFn | None = None,
) -> dict[str, np.ndarray]:
    r"""$L(\theta + \alpha d)$ for each $\alpha$: `{"alpha", "loss", "acc"}`."""
    ev = LossEvaluator(model, batches, loss_fn=loss_fn, bn=bn)
    alphas = _as_array(alphas, "alphas")
    rows = [ev(ev.shifted((direction, a))) for a in alphas]
    return {"alpha": alphas, "loss": np.array([r[0] for r in rows]), "acc": np.array([r[1] for r in rows])}


def loss_along_parameter(
    model: nn.Module, batches: Iterable, name: str, index: tuple[int, ...], values: Sequence[float], *,
    bn: str = "batch", loss_fn: LossFn | None = None,
) -> dict[str, np.ndarray]:
    """The loss with one scalar parameter entry, `parameter name[index]`, set to each of `values`
    (every other parameter at its trained value): `{"value", "loss", "acc", "original"}`."""
    ev = LossEvaluator(model, batches, loss_fn=loss_fn, bn=bn)
    if name not in ev.params:
        raise ValueError(f"loss_along_parameter: the model has no parameter {name!r}")
    base = ev.params[name]
    index = tuple(index)
    if len(index) != base.dim() or any(not 0 <= i < s for i, s in zip(index, base.shape)):
        raise ValueError(f"loss_along_parameter: index {index} is not inside {name!r} of shape {tuple(base.shape)}")
    values = _as_array(values, "values")
    rows = []
    for v in values:
        p = base.clone()
        p[index] = float(v)
        rows.append(ev({name: p}))
    return {"value": values, "loss": np.array([r[0] for r in rows]), "acc": np.array([r[1] for r in rows]),
            "original": np.float64(base[index].item())}


def loss_interpolation(
    model_a: nn.Module, model_b: nn.Module, batches: Iterable, alphas: Sequence[float], *,
    bn: str = "batch", loss_fn: LossFn | None = None,
) -> dict[str, np.ndarray]:
    r"""$L((1-\alpha)\,\theta_A + \alpha\,\theta_B)$ for each $\alpha$ ($0$ is model A, $1$ model B):
    `{"alpha", "loss", "acc"}`. In `"running"` mode floating-point buffers are interpolated too."""
    d = model_difference(model_a, model_b)
    ev = LossEvaluator(model_a, batches, loss_fn=loss_fn, bn=bn)
    ba, bb = dict(model_a.named_buffers()), dict(model_b.named_buffers())
    if ba.keys() != bb.keys():
        raise ValueError("loss_interpolation: the two models have different buffers")
    alphas = _as_array(alphas, "alphas")
    rows = []
    for a in alphas:
        buffers = {n: torch.lerp(ba[n], bb[n], float(a)) if ba[n].is_floating_point() else ba[n] for n in ba}
        rows.append(ev(ev.shifted((d, float(a))), buffers))
    return {"alpha": alphas, "loss": np.array([r[0] for r in rows]), "acc": np.array([r[1] for r in rows])}


def loss_surface(
    model: nn.Module, batches: Iterable, dir_x: Direction, dir_y: Direction,
    xs: Sequence[float], ys: Sequence[float], *, bn: str = "batch", loss_fn: LossFn | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, np.ndarray]:
    r"""$L(\theta + x\,d_x + y\,d_y)$ on the grid `xs` × `ys`: `{"x", "y", "loss", "acc"}`, with
    `loss[i, j]` at `(xs[j], ys[i])` (rows are $y$, as `matplotlib.contour` expects).
    `progress`, e.g. `tqdm.tqdm`, wraps the loop over rows."""
    ev = LossEvaluator(model, batches, loss_fn=loss_fn, bn=bn)
    xs, ys = _as_array(xs, "xs"), _as_array(ys, "ys")
    loss = np.empty((len(ys), len(xs)))
    acc = np.empty_like(loss)
    rows = range(len(ys)) if progress is None else progress(range(len(ys)))
    for i in rows:
        for j, x in enumerate(xs):
            loss[i, j], acc[i, j] = ev(ev.shifted((dir_x, float(x)), (dir_y, float(ys[i]))))
    return {"x": xs, "y": ys, "loss": loss, "acc": acc}


def gradient_smoothness(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], step_sizes: Sequence[float], *,
    bn: str = "batch", loss_fn: LossFn | None = None,
) -> dict:
    r"""Santurkar et al.'s three measures at the model's current parameters, on one batch.

    Returns `{"loss": L(θ), "grad_norm": ‖g‖, "step_sizes": [η], "losses": [L(θ − ηg)],
    "grad_change": [‖∇L(θ) − ∇L(θ − ηg)‖], "beta": max_η grad_change / ‖ηg‖}` (floats and lists).
    Gradients are taken with `torch.autograd.grad` on a `functional_call`: the model's `.grad`
    fields, parameters and buffers are not touched. A zero gradient gives `beta = nan`.
    """
    steps = _as_array(step_sizes, "step_sizes")
    if (steps <= 0).any():
        raise ValueError(f"gradient_smoothness: step sizes must be positive, got {steps.tolist()}")
    if bn not in BN_MODES:
        raise ValueError(f"gradient_smoothness: bn must be one of {BN_MODES}, got {bn!r}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    x, y = batch
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    theta = [p.detach() for n, p in model.named_parameters() if p.requires_grad]
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_and_grad(params: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        leaves = [p.detach().requires_grad_(True) for p in params]
        # Buffers are copied: a train-mode forward would update them in place.
        state = {**frozen, **dict(zip(names, leaves)), **{n: b.clone() for n, b in buffers.items()}}
        with torch.enable_grad():
            loss = loss_fn(functional_call(model, state, (x,)), y)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        return loss.item(), [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]

    with _restored(model):
        model.train(bn == "batch")
        loss0, g0 = loss_and_grad(theta)
        gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in g0])).item()
        losses, changes = [], []
        for eta in steps:
            loss_eta, g_eta = loss_and_grad([t - float(eta) * g for t, g in zip(theta, g0)])
            change = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a - b) for a, b in zip(g_eta, g0)]))
            losses.append(loss_eta)
            changes.append(change.item())
    beta = max(c / (float(eta) * gnorm) for c, eta in zip(changes, steps)) if gnorm > 0 else math.nan
    return {"loss": loss0, "grad_norm": gnorm, "step_sizes": steps.tolist(), "losses": losses,
            "grad_change": changes, "beta": beta}


def save_npz(path: str | Path, result: dict, **meta) -> Path:
    """Save a result dict of arrays (and scalars) with JSON-able metadata `meta` in one `.npz`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in result.items()}
    if "meta" in arrays:
        raise ValueError("save_npz: 'meta' is reserved for the metadata")
    np.savez_compressed(path, **arrays, meta=np.array(json.dumps(meta)))
    return path


def load_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """`(arrays, meta)` from a file written by `save_npz`."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "meta"}
        meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    return arrays, meta
