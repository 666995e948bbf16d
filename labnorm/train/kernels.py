r"""Torch's own kernels for the labnorm layers proven equal to them — the fast path of the experiments.

labnorm's layers are written to be read: `labnorm.BatchNorm2d` spells out the mean, the variance and
the affine step in a few tensor operations. torch's `nn.BatchNorm2d` does the same arithmetic in one
fused kernel per direction, and on a 2-core CPU that is what a training step spends its time on
(`benchmarks/bench_training.py`). Where a labnorm layer has a torch twin that computes **the same
function** — proven by the float64 parity tests of forward, gradients, running statistics and eval
mode (`tests/test_batch_norm.py`, `tests/test_zoo.py`) — an experiment may run the twin instead:

| labnorm layer | torch twin | parity test |
|---|---|---|
| `labnorm.BatchNorm2d` | `torch.nn.BatchNorm2d` | `tests/test_batch_norm.py` |
| `labnorm.GroupNorm` | `torch.nn.GroupNorm` | `tests/test_batch_norm.py` |
| `labnorm.InstanceNorm2d` | `torch.nn.InstanceNorm2d` | `tests/test_zoo.py` |
| `labnorm.LayerNorm` | `torch.nn.LayerNorm` | `tests/test_zoo.py` |
| `labnorm.RMSNorm` | `torch.nn.RMSNorm` | `tests/test_zoo.py` |

`use_torch_kernels(model)` swaps, in place, every submodule whose class is *exactly* one of these
(a subclass may change the formula, so it stays) for its twin with the same arguments, parameters,
buffers, device, dtype and train/eval mode, and returns what it swapped. Everything else — Weight
Standardization, Switchable Norm, FRN, EvoNorm, … — runs labnorm's own code. Swap before the optimizer
is built: it holds the parameters, and the twins' parameters are new tensors (with the same values).

**Per-worker statistics are kept.** A `labnorm.BatchNorm2d` whose `norm_batch` is set (statistics over
groups of $b$ samples, `labnorm.set_norm_batch`) has no torch twin — `torch.nn.BatchNorm2d` always
takes the whole batch — so it is **not swapped** and keeps running labnorm's code; it does not appear in
the returned counts. So call `set_norm_batch` *before* `use_torch_kernels`: after the swap, torch's
layers have no `norm_batch` for it to set (on a model whose batch-dependent layers were all swapped,
it then raises its "no batch-dependent layer" error).

**Memory format.** On the CPU, channels_last speeds up a convolution stack whose only normalization
is torch's `BatchNorm2d` (its kernel has a channels_last path), and slows down several others (torch's
`GroupNorm` and `InstanceNorm2d`, labnorm's BCN and Ghost BN); `prefer_channels_last(model, device)`
says where the experiments use it: always on CUDA, on the CPU only for a model whose normalization
layers are all `torch.nn.BatchNorm2d` (or that has none). `benchmarks/bench_training.py` measures it.

The two implementations agree to float32 rounding, not bit for bit (the kernels sum in another
order), so a record says which one ran: `describe_norms(model)` counts each normalization class in a
model and the channels per group of every group norm (the GN paper's "group size": a group of one
channel is Instance Norm, not Group Norm).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from torch import nn

from ..batch_norm import BatchNorm2d, GroupNorm
from ..instance_norm import InstanceNorm2d
from ..layer_norm import LayerNorm, RMSNorm

__all__ = ["use_torch_kernels", "describe_norms", "prefer_channels_last", "TWINS"]


def _bn(m: BatchNorm2d) -> nn.Module:
    return nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                          track_running_stats=m.track_running_stats)


def _gn(m: GroupNorm) -> nn.Module:
    return nn.GroupNorm(m.num_groups, m.num_channels, eps=m.eps, affine=m.affine)


def _in(m: InstanceNorm2d) -> nn.Module:
    return nn.InstanceNorm2d(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                             track_running_stats=m.track_running_stats)


def _ln(m: LayerNorm) -> nn.Module:
    return nn.LayerNorm(m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine,
                        bias=m.bias is not None)


def _rms(m: RMSNorm) -> nn.Module:
    return nn.RMSNorm(m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine)


# labnorm class -> builder of its torch twin from an instance's arguments
TWINS: dict[type, Callable[[Any], nn.Module]] = {
    BatchNorm2d: _bn, GroupNorm: _gn, InstanceNorm2d: _in, LayerNorm: _ln, RMSNorm: _rms,
}


def _name(cls: type) -> str:
    module = "torch.nn" if cls.__module__.startswith("torch.nn") else "labnorm"
    return f"{module}.{cls.__name__}"


def use_torch_kernels(model: nn.Module) -> dict[str, int]:
    """Swap every labnorm layer of `model` that has a proven-equal torch twin for that twin, in place.

    Returns `{"labnorm.BatchNorm2d -> torch.nn.BatchNorm2d": count, ...}` (empty: nothing swapped).
    A layer with per-worker statistics (`norm_batch` not `None`) is left as it is: its twin would
    normalize over the whole batch."""
    swapped: Counter[str] = Counter()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            build = TWINS.get(type(child))
            # (no twin, or per-worker statistics that torch's layer cannot compute)
            if build is None or getattr(child, "norm_batch", None) is not None:
                continue
            twin = build(child)
            # Same values, device and dtype: load the state, then move to where the original lives
            state = child.state_dict()
            tensors = list(child.parameters()) + [b for b in child.buffers() if b.is_floating_point()]
            if tensors:
                twin.to(device=tensors[0].device, dtype=tensors[0].dtype)
            twin.load_state_dict(state)
            twin.train(child.training)
            setattr(parent, name, twin)
            swapped[f"{_name(type(child))} -> {_name(type(twin))}"] += 1
    return dict(swapped)


# torch's normalization layers live in these modules
_TORCH_NORM_MODULES = ("torch.nn.modules.batchnorm", "torch.nn.modules.normalization", "torch.nn.modules.instancenorm")


def describe_norms(model: nn.Module) -> dict[str, Any]:
    """Which normalization layers a model runs — every torch normalization module and every labnorm
    technique module (not the model classes of `labnorm.models`), counted by class, e.g.
    `{"torch.nn.BatchNorm2d": 20, "labnorm.WSConv2d": 20}` — and the channels per group of its group
    norms (sorted, distinct; empty without one)."""
    classes: Counter[str] = Counter()
    group_channels: set[int] = set()
    for m in model.modules():
        where = type(m).__module__
        if where in _TORCH_NORM_MODULES or (where.startswith("labnorm.") and where != "labnorm.models"):
            classes[_name(type(m))] += 1
        if isinstance(m, (nn.GroupNorm, GroupNorm)):
            group_channels.add(m.num_channels // m.num_groups)
    return {"classes": dict(sorted(classes.items())), "group_channels": sorted(group_channels)}


def prefer_channels_last(model: nn.Module, device) -> bool:
    """Whether the experiments train `model` in channels_last on `device` (see the module doc)."""
    if getattr(device, "type", str(device)) == "cuda":
        return True
    return set(describe_norms(model)["classes"]) <= {"torch.nn.BatchNorm2d"}
