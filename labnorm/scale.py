r"""Experiment scales: the one place that reads `LABNORM_SCALE`.

Every experiment and notebook runs at one of three sizes:

| scale   | where                        | budget                          |
|---------|------------------------------|---------------------------------|
| `smoke` | CI, nbval, a quick check     | seconds per notebook on 2 cores |
| `cpu`   | a laptop without a GPU       | minutes                         |
| `gpu`   | one modern GPU               | the source's full-size run      |

Code asks for the current scale with `get_scale()`. An experiment keeps its sizes
at the three scales as data, one frozen dataclass per scale side by side in its
module (`labnorm.experiments`); a notebook cell picks a size with
`pick(smoke=..., cpu=..., gpu=...)`.
"""

from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["SCALES", "ENV_VAR", "get_scale", "pick"]

# The names, smallest first.
SCALES = ("smoke", "cpu", "gpu")
# The environment variable that selects one.
ENV_VAR = "LABNORM_SCALE"
# Without the variable a reader gets the run that finishes on any machine in minutes.
DEFAULT = "cpu"

T = TypeVar("T")


def get_scale(scale: str | None = None) -> str:
    """Return `scale` if given, else `$LABNORM_SCALE`, else `"cpu"`; validated."""
    # An explicit argument wins over the environment.
    name = scale if scale is not None else os.environ.get(ENV_VAR, DEFAULT)
    name = name.strip().lower()
    if name not in SCALES:
        source = "scale argument" if scale is not None else f"${ENV_VAR}"
        raise ValueError(f"labnorm: {source} must be one of {', '.join(SCALES)}; got {name!r}")
    return name


def pick(*, smoke: T, cpu: T, gpu: T, scale: str | None = None) -> T:
    """The value for the current scale, e.g. `epochs = pick(smoke=1, cpu=5, gpu=30)`."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[get_scale(scale)]
