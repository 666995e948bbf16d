r"""Models built with the `norm=` factory.

`SmallCNN` is the quick CIFAR-10 network of the batch-size experiment: three
stages of conv 3×3 → norm → ReLU → max-pool 2, widths $w, 2w, 4w$, then global
average pooling and a linear classifier. Convolutions followed by a
normalization have no bias (the norm's $\beta$ replaces it).
"""

from __future__ import annotations

import torch
from torch import nn

from .norms import make_norm

__all__ = ["SmallCNN"]


def conv_norm_act(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """conv 3×3 → norm → ReLU; the conv has a bias only when there is no norm."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=(norm == "none")),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three conv stages and a linear head; `norm` is any `make_norm` spec."""

    def __init__(self, norm: str = "bn", width: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_norm_act(3, w, norm), nn.MaxPool2d(2),
            conv_norm_act(w, 2 * w, norm), nn.MaxPool2d(2),
            conv_norm_act(2 * w, 4 * w, norm), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # $[N, 4w, 4, 4] \to [N, 4w]$ by global average pooling
        return self.head(self.features(x).mean((2, 3)))
