"""The claims `weight_norm_cifar` tests: no norm, WN, WN + data-dependent init, WN + mean-only BN and BN in one
SmallCNN, trained with Adam and with SGD (notebook 02).

The blog post speaks of WDSR, a super-resolution network, trained with Adam; our runs are CIFAR-10
classification, so its claims are read for Adam. The baseline is BN with the same optimizer.
"""

from . import Arm, Claim, Trained, accuracy_arm, chance_accuracy, compare, metric


def _arm(opt: str, variant: str, label: str) -> Arm:
    return accuracy_arm(label, f"test_acc/{opt}/{variant}")


def _epoch1(opt: str, variant: str, label: str) -> Arm:
    # Test accuracy after the first epoch; whether the arm learned at all is read from its final accuracy
    return Arm(label, metric(f"epoch1_test_acc/{opt}/{variant}"), chance_accuracy(f"test_acc/{opt}/{variant}"))


def _trained(opt: str) -> Trained:
    return Trained(f"test_acc/{opt}/bn", f"BN with {'Adam' if opt == 'adam' else 'SGD'}")


WDSR = "the post trains WDSR (super-resolution) with Adam; we train a small CIFAR-10 classifier"
# The quotes, shared with the grand comparison (`norm_zoo_cifar`), whose trained net tests them too
FASTER_START = ("[Adam-based weight normalization] shows slightly better initial convergence [...] The difference is "
                "probably due to different weight initializations")
CATCHES_UP = "training with Conv2DWeightNorm in combination with a default Adam optimizer quickly catches up"
MOBN_BETTER = ("While their [Salimans & Kingma's] experiments showed an improved performance for the CIFAR-10 "
               "classification task compared to plain WN")

CLAIMS = [
    Claim("wn-keras", "4th paragraph", FASTER_START, "test accuracy after epoch 1: WN + data-dependent init above WN "
          "with the default init (Adam); the two arms differ only in the init",
          compare(_epoch1("adam", "wn+init", "WN+init after epoch 1"), _epoch1("adam", "wn", "WN after epoch 1")),
          partial="the post compares two Keras implementations of WN on WDSR and puts the gap down to their weight "
                  "initializations; we vary only the init, default against data-dependent",
          untrained="a claim about the first epoch of training"),
    Claim("wn-keras", "4th paragraph", CATCHES_UP, "final test accuracy of WN (default init) within 2 points of WN + "
          "data-dependent init (Adam)", compare(_arm("adam", "wn", "WN"), _arm("adam", "wn+init", "WN+init"), direction="equal",
                                 margin=0.02), partial=WDSR, trained=_trained("adam")),
    Claim("gan-wn", "§3", MOBN_BETTER, "final test accuracy of WN + mean-only BN above plain "
          "WN (Adam)", compare(_arm("adam", "wn+mobn", "WN+mean-only BN"), _arm("adam", "wn", "WN")),
          partial="a small CNN, not Salimans & Kingma's model", trained=_trained("adam")),
]

# The notebook's own questions, after Salimans & Kingma (2016), for each optimizer
for _opt in ("adam", "sgd"):
    CLAIMS += [
        Claim("", "notebook 02's question, after Salimans & Kingma 2016", f"{_opt}: WN beats no normalization",
              "final test accuracy: WN above no norm", compare(_arm(_opt, "wn", "WN"), _arm(_opt, "none", "no norm")),
              trained=_trained(_opt)),
        Claim("", "notebook 02's question, after Salimans & Kingma 2016", f"{_opt}: data-dependent init improves WN",
              "final test accuracy: WN + init above WN", compare(_arm(_opt, "wn+init", "WN+init"), _arm(_opt, "wn", "WN")),
              trained=_trained(_opt)),
        Claim("", "notebook 02's question", f"{_opt}: BN beats WN with data-dependent init",
              "final test accuracy: BN above WN + init", compare(_arm(_opt, "bn", "BN"), _arm(_opt, "wn+init", "WN+init")),
              trained=_trained(_opt)),
    ]
