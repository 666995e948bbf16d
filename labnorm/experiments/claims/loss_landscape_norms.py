"""The claims `loss_landscape_norms` tests: one He-initialized VGG with no norm, BN, GN, WS+BN, WS+GN, WN and SN,
probed along one-cycle SGD training by Santurkar et al.'s measures (notebook 08).

Each measure is the median over the probed steps of one run, then paired over seeds; smaller is
smoother. The probes follow training, so a run early in training measures an early landscape: the
baseline that says whether the networks are trained is the BN arm.
"""

from . import Arm, Claim, Trained, accuracy_arm, chance_accuracy, compare, gn_note, metric

TRAINED = Trained("test_acc/bn", "BN")
FASTER = "So using Batch Norm actually stabilizes our training and also makes it faster"  # (also norm_zoo_cifar's)


def _m(label: str, name: str, norm: str) -> Arm:
    return Arm(label, metric(f"{name}/{norm}"), chance_accuracy(f"test_acc/{norm}"))


def _lower(name: str, a: tuple[str, str], b: tuple[str, str]) -> compare:
    return compare(_m(a[0], name, a[1]), _m(b[0], name, b[1]), direction="lower", kind="ratio")


CLAIMS = [
    Claim("labml-ws", "introduction", "Batch normalization gives a smooth loss landscape",
          "median effective β-smoothness along training: BN below no normalization",
          _lower("median_beta", ("BN β", "bn"), ("no-norm β", "none")), trained=TRAINED),
    Claim("labml-ws", "list of WS's effects", "Smoothes the landscape (reduced Lipschitz constant)",
          "median effective β-smoothness: WS+BN below BN", _lower("median_beta", ("WS+BN β", "ws+bn"), ("BN β", "bn")),
          trained=TRAINED, part="WS+BN"),
    Claim("labml-ws", "list of WS's effects", "Smoothes the landscape (reduced Lipschitz constant)",
          "median effective β-smoothness: WS+GN below GN",
          _lower("median_beta", ("WS+GN β", "{ws+gn}"), ("GN β", "{gn}")), partial=gn_note, trained=TRAINED,
          part="WS+GN"),
    Claim("ws-post", "How these normalizations actually help?", FASTER, "final test accuracy after the same number of epochs: BN above no norm (VGG)",
          compare(accuracy_arm("BN", "test_acc/bn"), accuracy_arm("no norm", "test_acc/none")), batch="64",
          partial="VGG with He init, one-cycle SGD; 'faster' read as more accuracy for the same budget",
          trained=TRAINED),
    Claim("ws-post", "Weight Standardization", "they prove WS reduces the Lipschitz constants of the loss [...]",
          "median loss spread over step sizes along the gradient: WS+BN below BN",
          _lower("median_loss_spread", ("WS+BN", "ws+bn"), ("BN", "bn")),
          partial="the post reports the WS paper's proof; we measure its consequence along training", trained=TRAINED),
    Claim("ws-post", "Weight Standardization", "[...] and the gradients",
          "median gradient change along the gradient (largest step): WS+BN below BN",
          _lower("median_grad_change", ("WS+BN", "ws+bn"), ("BN", "bn")),
          partial="the post reports the WS paper's proof; we measure its consequence along training", trained=TRAINED),
]
