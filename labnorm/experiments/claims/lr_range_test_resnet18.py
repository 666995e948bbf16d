"""The claims `lr_range_test_resnet18` tests: LR range tests of a CIFAR ResNet-18 with BN, GN and no norm at batch
64, SGD with Nesterov momentum (notebook 07).

A range test measures the first steps of training, so no trained baseline is asked for; but an arm
whose smoothed loss never leaves ln 10 (the loss of a uniform guess) has no learning rate at which
it learns, and a comparison with it says nothing.
"""

from . import Arm, Claim, chance_loss, compare, metric

RANGE = "an LR range test, which measures the first steps of training"


def _arm(label: str, norm: str) -> Arm:
    return Arm(label, metric(f"log10_lr_at_lowest/{norm}"), chance_loss(metric(f"lowest_loss/{norm}")))


CLAIMS = [
    Claim("ws-post", "How these normalizations actually help?", "When we make the loss surface smooth we can take "
          "longer steps, which means we can increase our learning rate",
          "LR range test: BN's lowest loss at a larger learning rate than no norm's (log10 lr)",
          compare(_arm("BN", "bn"), _arm("no norm", "none"), kind="lr"), batch="64 (range test)",
          partial="SGD with Nesterov momentum; ResNet-18 at reduced width", untrained=RANGE),
    Claim("", "notebook 07's question", "GN reaches its lowest loss at a larger learning rate than no norm",
          "LR range test: GN's lowest loss at a larger learning rate than no norm's (log10 lr)",
          compare(_arm("GN", "gn"), _arm("no norm", "none"), kind="lr"), untrained=RANGE),
]
