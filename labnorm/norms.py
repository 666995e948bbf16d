r"""The `norm=` factory: a name gives a normalization layer for $C$ channels.

Models never construct a normalization layer themselves; they ask
`make_norm(spec, num_channels)`, so one string switches a whole network between
techniques. A spec is a registered name with an optional argument after a colon:

| spec        | layer                                               |
|-------------|-----------------------------------------------------|
| `none`      | identity                                            |
| `bn`        | `labnorm.BatchNorm2d`                               |
| `gn`, `gn:G`| `labnorm.GroupNorm` with $G$ groups (default 32, reduced to a divisor of $C$) |
| `torch-bn`, `torch-gn[:G]` | torch's own layers, for reference runs |

A technique module adds itself with `@register_norm("name")`.
"""

from __future__ import annotations

import math
from typing import Callable

from torch import nn

from .batch_norm import BatchNorm2d, GroupNorm

__all__ = ["register_norm", "make_norm", "available_norms"]

# name -> builder(num_channels, argument or None)
_NORMS: dict[str, Callable[[int, str | None], nn.Module]] = {}


def register_norm(name: str):
    """Decorator: register `builder(num_channels, arg)` under `name`."""

    def wrap(builder: Callable[[int, str | None], nn.Module]):
        if name in _NORMS:
            raise ValueError(f"register_norm: {name!r} is already registered")
        _NORMS[name] = builder
        return builder

    return wrap


def available_norms() -> list[str]:
    return sorted(_NORMS)


def make_norm(spec: str, num_channels: int) -> nn.Module:
    """The layer that `spec` names, for `num_channels` channels."""
    name, _, arg = spec.partition(":")
    if name not in _NORMS:
        raise ValueError(f"make_norm: unknown norm {spec!r}; known: {', '.join(available_norms())}")
    return _NORMS[name](num_channels, arg or None)


def _groups(num_channels: int, arg: str | None) -> int:
    # The GN paper's default is 32 groups; narrow layers get the largest common divisor.
    wanted = int(arg) if arg else 32
    return math.gcd(num_channels, wanted)


@register_norm("none")
def _none(c: int, arg: str | None) -> nn.Module:
    return nn.Identity()


@register_norm("bn")
def _bn(c: int, arg: str | None) -> nn.Module:
    return BatchNorm2d(c)


@register_norm("gn")
def _gn(c: int, arg: str | None) -> nn.Module:
    return GroupNorm(_groups(c, arg), c)


@register_norm("torch-bn")
def _torch_bn(c: int, arg: str | None) -> nn.Module:
    return nn.BatchNorm2d(c)


@register_norm("torch-gn")
def _torch_gn(c: int, arg: str | None) -> nn.Module:
    return nn.GroupNorm(_groups(c, arg), c)
