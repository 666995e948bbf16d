"""When labnorm shows progress bars: the one rule every loop (training, GAN training, the seed loop
of the experiments) follows."""

from __future__ import annotations

import os
import sys

__all__ = ["progress_enabled"]


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal, never under CI or in saved notebook outputs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
