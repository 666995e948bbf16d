r"""The `norm=` factory: a name gives a normalization layer for $C$ channels.

Models never construct a normalization layer themselves; they ask
`make_norm(spec, num_channels)`, so one string switches a whole network between
techniques. A spec is a registered name with, for the names listed with one, an argument after a colon
(any other argument is an error):

| spec        | layer                                               |
|-------------|-----------------------------------------------------|
| `none`      | identity                                            |
| `bn`        | `labnorm.BatchNorm2d`                               |
| `gn`, `gn:G`| `labnorm.GroupNorm` with $G$ groups: `gn` takes 32, reduced to a divisor of $C$ with at least 2 channels per group (16 channels: 8 groups — one channel per group would be Instance Norm); `gn:G` takes $\gcd(C, G)$ |
| `torch-bn`, `torch-gn[:G]` | torch's own layers, for reference runs |
| `wn`        | weight-normalized conv (one $g$ per output channel, with bias), no norm layer |
| `wn+mobn`   | weight-normalized conv without bias, then `labnorm.MeanOnlyBatchNorm` |
| `ws+bn`, `ws+gn[:G]` | `labnorm.WSConv2d` (Weight Standardization, the paper's definition), then BN / GN |
| `bcn[:G]`, `ws+bcn[:G]` | `labnorm.BatchChannelNorm2d` (groups as for `gn`), after a plain / WS conv |
| `sn`, `sn:M` | `labnorm.SwitchNorm2d`; with `M`, the Keras-convention momentum $M$ (PyTorch momentum $1 - M$) |
| `sn-ba`     | `labnorm.SwitchNorm2d` without moving averages: its eval statistics come from `labnorm.finalize_batch_average` |
| `ln`        | layer norm over $(C, H, W)$ of each sample with per-channel $\gamma, \beta$: `labnorm.GroupNorm(1, C)` (the GN paper's LN; timm's `GroupNorm1`). `labnorm.LayerNorm([C, H, W])` would learn per-element $\gamma, \beta$ and fix $H, W$ |
| `ln2d`      | `labnorm.LayerNorm2d`: over $C$ at each position (ConvNeXt's), $\epsilon = 10^{-6}$ |
| `rms`       | `labnorm.RMSNorm2d`: RMSNorm over $C$ at each position ($\epsilon$ = the dtype's machine epsilon, as `torch.nn.RMSNorm`) |
| `in`        | `labnorm.InstanceNorm2d(C, affine=True)` (no running statistics: eval normalizes each image by itself) |
| `gbn`, `gbn:V` | `labnorm.GhostBatchNorm2d` with virtual batches of $V$ samples (default 32; a batch $V$ does not divide ends with a smaller virtual batch) |
| `dyt`       | `labnorm.DynamicTanh` ($\gamma \tanh(\alpha x) + \beta$, no statistics), channels in dim 1 |
| `frn`       | `labnorm.FilterResponseNorm2d` then `labnorm.TLU` — **fuses its activation** |
| `evob0`     | `labnorm.EvoNorm2dB0` — **fuses its activation** |
| `evos0`, `evos0:G` | `labnorm.EvoNorm2dS0`, $G$ groups (default 32, reduced to the largest divisor of $C$ not above $G$, as the authors' code does) — **fuses its activation** |
| `brn`, `brn:M` | `labnorm.BatchRenorm2d` (the paper's final $r_{\max}=3$, $d_{\max}=5$; set a warm-up with `labnorm.set_renorm_limits`, or the paper's compressed into a run with `labnorm.renorm_schedule`); moving averages at the paper's rate 0.01, or with `M` at momentum $M$ (PyTorch's convention: the weight of the new batch) — a run of a few hundred steps needs a faster rate than the paper's 0.01 |
| `grn`       | `labnorm.GlobalResponseNorm2d` (ConvNeXt V2's GRN: $\gamma (x N(x)) + \beta + x$, $\gamma = \beta = 0$ — the identity at initialization, so a net of `grn` starts as the net with `none`) |

Every name is registered in this module, with `@register_norm("name")` on its builder (the
technique modules stay leaves that know nothing of the factory). The factory also owns the
**conv/norm pairing**: a technique that lives in the convolution rather than after it
(Weight Standardization: `"ws+bn"`) registers a conv builder with `register_conv("ws+bn")`,
and `make_conv(spec, ...)` returns that conv instead of `nn.Conv2d`. Models build every
conv → norm pair through `make_conv` and `make_norm`, so a new technique needs no model change.

**Per-worker batch statistics.** The layers of `bn`, `ws+bn`, `brn`, `bcn`, `ws+bcn`, `sn`, `sn-ba`,
`evob0` and `wn+mobn` take their batch statistics from the whole batch unless told otherwise:
`labnorm.set_norm_batch(model, b)` sets `norm_batch=b` on every one of them (every layer with a
`norm_batch` attribute), so that each group of $b$ consecutive samples is normalized by itself, as
one worker of a data-parallel job normalizes its $b$ images (`labnorm._norm_batch` has the equations).
The other names build batch-independent layers, except `torch-bn` (torch's layer, always the whole
batch) and `gbn` (its own virtual batches); `tests/test_norm_batch.py` sorts every registered name
into these cases by itself.

**Norms that fuse their activation.** FRN + TLU and the EvoNorms replace a whole *norm + ReLU* pair:
the activation is part of the layer. Such a norm registers with
`register_norm("frn", fuses_activation=True)`, and `norm_fuses_activation(spec)` tells a model not to
add its own ReLU after it. Its builder takes a third argument, `activation`: where a model puts a norm
with *no* activation after it (the last norm of a ResNet block, the projection shortcut),
`make_norm(spec, C, activation=False)` asks for the layer without its activation — FRN without TLU;
EvoNorm with `apply_act=False`, which the authors define as the affine $\gamma x + \beta$ alone. For
every other norm `activation` changes nothing: the model adds or omits the ReLU itself.
"""

from __future__ import annotations

import math
from typing import Callable

from torch import nn

from .batch_channel_norm import BatchChannelNorm2d
from .batch_norm import BatchNorm2d, GroupNorm
from .batch_renorm import BatchRenorm2d
from .dynamic_tanh import DynamicTanh
from .evonorm import EvoNorm2dB0, EvoNorm2dS0, largest_divisor_at_most
from .filter_response_norm import TLU, FilterResponseNorm2d
from .ghost_batch_norm import GhostBatchNorm2d
from .global_response_norm import GlobalResponseNorm2d
from .instance_norm import InstanceNorm2d
from .layer_norm import LayerNorm2d, RMSNorm2d
from .switch_norm import SwitchNorm2d
from .weight_norm import MeanOnlyBatchNorm, weight_norm
from .weight_std import WSConv2d

__all__ = [
    "register_norm", "register_conv", "make_norm", "make_conv", "available_norms", "norm_fuses_activation",
]

# name -> builder(num_channels, argument or None) (plus `activation` for norms that fuse theirs)
_NORMS: dict[str, Callable[..., nn.Module]] = {}
# names of the norms whose layer includes the activation that follows it
_FUSES_ACTIVATION: set[str] = set()
_TAKES_ARG: set[str] = set()  # names whose spec may carry an argument
# name -> conv builder(c_in, c_out, kernel_size, stride, padding, bias), for norms that live in the conv
_CONVS: dict[str, Callable[..., nn.Module]] = {}


def register_norm(name: str, fuses_activation: bool = False, takes_arg: bool = False):
    """Decorator: register `builder(num_channels, arg)` under `name`.

    With `fuses_activation=True` the layer includes its activation (models add none after it) and the
    builder is `builder(num_channels, arg, activation)`: `activation=False` asks for the layer without it.
    `takes_arg=True`: the spec may carry an argument (`name:arg`); otherwise `make_norm` refuses one, so
    that `bn:0.1` is an error, not BN with the argument ignored.
    """

    def wrap(builder: Callable[..., nn.Module]):
        if name in _NORMS:
            raise ValueError(f"register_norm: {name!r} is already registered")
        _NORMS[name] = builder
        if fuses_activation:
            _FUSES_ACTIVATION.add(name)
        if takes_arg:
            _TAKES_ARG.add(name)
        return builder

    return wrap


def register_conv(name: str):
    """Decorator: the conv that norm `name` pairs with (default `nn.Conv2d`)."""

    def wrap(builder: Callable[..., nn.Module]):
        if name in _CONVS:
            raise ValueError(f"register_conv: {name!r} is already registered")
        _CONVS[name] = builder
        return builder

    return wrap


def make_conv(
    spec: str, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int | None = None,
    bias: bool | None = None,
) -> nn.Module:
    r"""The convolution that goes before norm `spec`: `nn.Conv2d` unless the norm registered its own.

    `padding` defaults to "same" for odd kernels; `bias` defaults to True only for `"none"`
    (a following norm's $\beta$ makes a conv bias redundant).
    """
    name = spec.partition(":")[0]
    if name not in _NORMS:
        raise ValueError(f"make_conv: unknown norm {spec!r}; known: {', '.join(available_norms())}")
    padding = kernel_size // 2 if padding is None else padding
    bias = (name == "none") if bias is None else bias
    build = _CONVS.get(name, nn.Conv2d)
    return build(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=bias)


def available_norms() -> list[str]:
    return sorted(_NORMS)


def norm_fuses_activation(spec: str) -> bool:
    """Whether norm `spec` includes its activation, so that a model must not add a ReLU after it."""
    name = spec.partition(":")[0]
    if name not in _NORMS:
        raise ValueError(f"norm_fuses_activation: unknown norm {spec!r}; known: {', '.join(available_norms())}")
    return name in _FUSES_ACTIVATION


def make_norm(spec: str, num_channels: int, activation: bool = True) -> nn.Module:
    """The layer that `spec` names, for `num_channels` channels.

    `activation=False` matters only for a norm that fuses its activation: it then returns the layer
    without it, for a place where the model has no activation after the norm.
    """
    name, _, arg = spec.partition(":")
    if name not in _NORMS:
        raise ValueError(f"make_norm: unknown norm {spec!r}; known: {', '.join(available_norms())}")
    if arg and name not in _TAKES_ARG:
        raise ValueError(f"make_norm({spec!r}, {num_channels}): {name!r} takes no argument")
    try:
        if name in _FUSES_ACTIVATION:
            return _NORMS[name](num_channels, arg or None, activation)
        return _NORMS[name](num_channels, arg or None)
    except ValueError as e:  # with an argument ('gn:x', 'brn:2'), say which spec; else the layer's own error
        if not arg:
            raise
        raise ValueError(f"make_norm({spec!r}, {num_channels}): {e}") from e


def _groups(num_channels: int, arg: str | None) -> int:
    # `gn:G`: G groups, reduced to the largest common divisor with C.
    if arg:
        return math.gcd(num_channels, int(arg))
    # `gn`: the GN paper's default of 32 groups, reduced to a divisor of C that keeps at least 2 channels
    # per group — a group of one channel is Instance Norm (narrow layers of reduced-width models).
    groups = math.gcd(num_channels, 32)
    while groups > 1 and num_channels // groups < 2:
        groups = math.gcd(num_channels, groups // 2)
    return groups


@register_norm("none")
def _none(c: int, arg: str | None) -> nn.Module:
    return nn.Identity()


@register_norm("bn")
@register_norm("ws+bn")
def _bn(c: int, arg: str | None) -> nn.Module:
    return BatchNorm2d(c)


@register_norm("gn", takes_arg=True)
@register_norm("ws+gn", takes_arg=True)
def _gn(c: int, arg: str | None) -> nn.Module:
    return GroupNorm(_groups(c, arg), c)


@register_norm("torch-bn")
def _torch_bn(c: int, arg: str | None) -> nn.Module:
    return nn.BatchNorm2d(c)


@register_norm("torch-gn", takes_arg=True)
def _torch_gn(c: int, arg: str | None) -> nn.Module:
    return nn.GroupNorm(_groups(c, arg), c)


@register_norm("wn")
def _wn(c: int, arg: str | None) -> nn.Module:
    # Weight norm lives in the conv (register_conv below): nothing after it.
    return nn.Identity()


@register_conv("wn")
def _wn_conv(c_in, c_out, kernel_size, stride=1, padding=0, bias=True) -> nn.Module:
    # No norm layer follows, so the conv keeps its bias whatever the caller asked.
    return weight_norm(nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=True), dim="output")


@register_norm("wn+mobn")
def _wn_mobn(c: int, arg: str | None) -> nn.Module:
    return MeanOnlyBatchNorm(c)


@register_conv("wn+mobn")
def _wn_mobn_conv(c_in, c_out, kernel_size, stride=1, padding=0, bias=False) -> nn.Module:
    # The mean-only BN's bias replaces the conv's.
    return weight_norm(nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False), dim="output")


@register_norm("bcn", takes_arg=True)
@register_norm("ws+bcn", takes_arg=True)
def _bcn(c: int, arg: str | None) -> nn.Module:
    return BatchChannelNorm2d(c, num_groups=_groups(c, arg))


@register_norm("sn", takes_arg=True)
def _sn(c: int, arg: str | None) -> nn.Module:
    # "sn" or "sn:M": Switchable Norm with Keras-convention momentum M (0.98 -> momentum 0.02)
    return SwitchNorm2d(c) if arg is None else SwitchNorm2d(c, momentum=round(1 - float(arg), 10))


@register_norm("sn-ba")
def _sn_batch_average(c: int, arg: str | None) -> nn.Module:
    # Switchable Norm whose BN eval statistics come from labnorm.finalize_batch_average
    return SwitchNorm2d(c, using_moving_average=False)


@register_conv("ws+bn")
@register_conv("ws+gn")
@register_conv("ws+bcn")
def _ws_conv(c_in, c_out, kernel_size, stride=1, padding=0, bias=False) -> nn.Module:
    # Weight Standardization lives in the conv; a 1×1 conv from 1 channel (fan-in 1) stays plain.
    if c_in * kernel_size * kernel_size < 2:
        return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=bias)
    return WSConv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=bias)


@register_norm("ln")
def _ln(c: int, arg: str | None) -> nn.Module:
    # Layer norm over (C, H, W) of each sample, per-channel affine: GroupNorm with one group.
    # (A LayerNorm([C, H, W]) would need H, W here and learn one gamma per element.)
    return GroupNorm(1, c)


@register_norm("ln2d")
def _ln2d(c: int, arg: str | None) -> nn.Module:
    return LayerNorm2d(c)


@register_norm("rms")
def _rms(c: int, arg: str | None) -> nn.Module:
    return RMSNorm2d(c)


@register_norm("in")
def _in(c: int, arg: str | None) -> nn.Module:
    return InstanceNorm2d(c, affine=True)


@register_norm("gbn", takes_arg=True)
def _gbn(c: int, arg: str | None) -> nn.Module:
    # "gbn" or "gbn:V": Ghost BN with virtual batches of V samples (default 32)
    return GhostBatchNorm2d(c, virtual_batch_size=int(arg) if arg else 32)


@register_norm("dyt")
def _dyt(c: int, arg: str | None) -> nn.Module:
    return DynamicTanh(c)


@register_norm("frn", fuses_activation=True)
def _frn(c: int, arg: str | None, activation: bool) -> nn.Module:
    # FRN + TLU replaces BN + ReLU (the paper); without the activation, FRN alone
    return nn.Sequential(FilterResponseNorm2d(c), TLU(c)) if activation else FilterResponseNorm2d(c)


@register_norm("evob0", fuses_activation=True)
def _evob0(c: int, arg: str | None, activation: bool) -> nn.Module:
    return EvoNorm2dB0(c, apply_act=activation)


@register_norm("evos0", fuses_activation=True, takes_arg=True)
def _evos0(c: int, arg: str | None, activation: bool) -> nn.Module:
    # The authors' code reduces the groups to the largest divisor of C not above G (32 by default)
    return EvoNorm2dS0(c, groups=largest_divisor_at_most(c, int(arg) if arg else 32), apply_act=activation)


@register_norm("brn", takes_arg=True)
def _brn(c: int, arg: str | None) -> nn.Module:
    return BatchRenorm2d(c) if arg is None else BatchRenorm2d(c, momentum=float(arg))


@register_norm("grn")
def _grn(c: int, arg: str | None) -> nn.Module:
    # ConvNeXt V2's GRN alone (in ConvNeXt V2 it follows the MLP's GELU, beside a LayerNorm)
    return GlobalResponseNorm2d(c)
