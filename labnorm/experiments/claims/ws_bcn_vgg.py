"""The claims `ws_bcn_vgg` tests: labml's VGG on CIFAR-10 with BN, WS+BN, GN, WS+GN and WS+BCN at batch 64, with the
fraction of dead ReLU channels after training (notebook 03). The baseline is the BN arm.
"""

from . import Arm, Claim, Floor, Trained, accuracy_arm, chance_accuracy, compare, gn_note, metric

TRAINED = Trained("test_acc/bn", "BN")
POST = "the post reports the WS paper's results; we test labml's VGG on CIFAR-10"
DEAD = "a dead ReLU channel is the first kind of elimination singularity only"


def _dead(label: str, norm: str) -> Arm:
    return Arm(label, metric(f"dead_channels/{norm}"), chance_accuracy(f"test_acc/{norm}"))


def _joined(*parts):
    return lambda r: "; ".join(x for x in [p(r) if callable(p) else p for p in parts] if x)


NONE_DEAD = Floor(0.0, "zero dead channels")
BETTER = "The authors of the paper tested WS on various computer vision tasks and they were able to achieve better " \
         "results with the combination of WS+GN and WS+BN"

WS_BCN = ("The paper introduces Weight Standardization with Batch-Channel Normalization as a better alternative [to "
          "batch normalization when the batch size is too small]")

CLAIMS = [
    Claim("labml-ws", "introduction", WS_BCN,
          "final test accuracy of WS+BCN above BN (VGG)", compare(accuracy_arm("WS+BCN", "test_acc/ws+bcn"),
                                                                  accuracy_arm("BN", "test_acc/bn")),
          batch="64", partial="the alternative is meant for micro-batches; this experiment runs at batch 64 only",
          trained=TRAINED),
    Claim("labml-ws", "list of WS's effects", "Avoids elimination singularities",
          "fraction of dead ReLU channels after training: WS+BN below BN",
          compare(_dead("WS+BN", "ws+bn"), _dead("BN", "bn"), direction="lower", kind="frac", floor=NONE_DEAD),
          batch="64", partial=DEAD, trained=TRAINED, part="WS+BN"),
    Claim("labml-ws", "list of WS's effects", "Avoids elimination singularities",
          "fraction of dead ReLU channels after training: WS+GN below GN",
          compare(_dead("WS+GN", "{ws+gn}"), _dead("GN", "{gn}"), direction="lower", kind="frac", floor=NONE_DEAD),
          batch="64", partial=_joined(DEAD, gn_note), trained=TRAINED, part="WS+GN"),
    Claim("ws-post", "Weight Standardization", BETTER, "final test accuracy: WS+GN above GN (VGG)",
          compare(accuracy_arm("WS+GN", "test_acc/{ws+gn}"), accuracy_arm("GN", "test_acc/{gn}")),
          batch="64", partial=_joined(POST, gn_note), trained=TRAINED, part="WS+GN"),
    Claim("ws-post", "Weight Standardization", BETTER, "final test accuracy: WS+BN above BN (VGG)",
          compare(accuracy_arm("WS+BN", "test_acc/ws+bn"), accuracy_arm("BN", "test_acc/bn")),
          batch="64", partial=POST, trained=TRAINED, part="WS+BN"),
    Claim("", "notebook 03's question, after Qiao et al. 2019 (the WS paper)", "WS+BCN beats WS+BN",
          "final test accuracy: WS+BCN above WS+BN", compare(accuracy_arm("WS+BCN", "test_acc/ws+bcn"),
                                                             accuracy_arm("WS+BN", "test_acc/ws+bn")),
          trained=TRAINED),
]
