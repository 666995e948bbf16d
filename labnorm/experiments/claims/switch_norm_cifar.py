"""The claims `switch_norm_cifar` tests: the keras-switchnorm toy CNN with Switchable Norm at the Keras momenta
0.98, 0.99 and 0.997, with the batch average, and with plain BN (notebook 05).

The README's own run: its toy model, 25 epochs on CIFAR-10's 50,000 training images, 87% test
accuracy. The baseline that says whether our networks are trained is the BN arm.
"""

from . import Arm, Claim, Floor, Phase, Trained, accuracy_arm, against, chance_accuracy, compare, config_value, \
    derived, epochs

TRAINED = Trained("test_acc/bn", "BN")
PLUMMET = Phase("the 22nd to 25th epochs, where the README sees accuracy plummet", 22, epochs, "epoch")


def budget(record: dict) -> str:
    return (f"{config_value(record, 'epochs')} epochs on {config_value(record, 'train_images', default=0):,} images at "
            f"width {config_value(record, 'width')} (the README: 25 epochs on 50,000 images, full width)")


def _run(details: dict, label: str) -> dict:
    return next(r for r in details["runs"] if r["label"] == label)


def _largest_drop(run: dict) -> float:
    # The largest fall of test accuracy from one epoch to the next (0 if it never falls)
    accs = [e["test_acc"] for e in run["epochs"] if e.get("test_acc") is not None]
    return max([0.0] + [a - b for a, b in zip(accs, accs[1:])])


def _drop(label: str, text: str) -> Arm:
    return Arm(text, derived(lambda d: _largest_drop(_run(d, label)), f"{label} epochs"),
               chance_accuracy(f"test_acc/{label}"))


def _layer_gap(run: dict) -> float:
    # The largest difference between two layers in the learned share of one statistic (IN, LN or BN; means or variances)
    return max(max(layer[kind][k] for layer in run["importance"]) - min(layer[kind][k] for layer in run["importance"])
               for kind in ("mean", "var") for k in range(3))


NO_FALL = Floor(0.0, "a largest fall of zero: accuracy never fell between epochs")
LEARNS = ("Switchable Normalization is a normalization technique that is able to learn different normalization "
          "operations for different normalization layers")

CLAIMS = [
    Claim("keras-sn", "Example", "An example script for CIFAR 10 is provided in cifar.py, which trains a toy model for "
          "25 epochs. It obtains an accuracy of 87%", "final test accuracy of SN (momentum 0.98, the README's default) "
          "against 87%", against(accuracy_arm("SN 0.98", "test_acc/sn 0.98"), 0.87, direction="higher",
                                 value_text="87%"),
          partial=budget, trained=TRAINED, phase=Phase("the 25th epoch", 25, epochs, "epoch"), keeps=("supported",)),
    Claim("keras-sn", "first paragraph", LEARNS,
          "the largest gap between two layers in SN's learned weight of one statistic (IN, LN or BN, of the means or "
          "the variances; momentum 0.98) above 0.1 (the weights start equal, 1/3 each)",
          against(Arm("largest gap between layers", derived(lambda d: _layer_gap(_run(d, "sn 0.98")), "sn 0.98 importance"),
                      chance_accuracy("test_acc/sn 0.98")), 0.1, direction="higher", kind="ratio", value_text="a gap above 0.1"),
          partial=budget, trained=TRAINED),
    Claim("keras-sn", "Issues", "near the 22-25th epoch, training abruptly fluctuates and accuracy plummets when using "
          "a momentum of 0.99", "largest epoch-to-epoch fall of test accuracy: momentum 0.99 above 0.98",
          compare(_drop("sn 0.99", "largest fall at 0.99"), _drop("sn 0.98", "at 0.98"), floor=NO_FALL),
          partial=budget, trained=TRAINED, phase=PLUMMET),
    Claim("keras-sn", "Issues", "[...] accuracy plummets when using a momentum of [...] 0.997",
          "largest epoch-to-epoch fall of test accuracy: momentum 0.997 above 0.98",
          compare(_drop("sn 0.997", "largest fall at 0.997"), _drop("sn 0.98", "at 0.98"), floor=NO_FALL),
          partial=budget, trained=TRAINED, phase=PLUMMET),
    Claim("keras-sn", "Issues", "This is seen in Figure 8 from the paper, that Batch Normalization moving average is "
          "highly unstable", "largest epoch-to-epoch fall of test accuracy: moving average (momentum 0.99) above the "
          "batch average", compare(_drop("sn 0.99", "largest fall at 0.99"), _drop("sn batch average", "batch average"),
                                   floor=NO_FALL),
          partial=budget, trained=TRAINED, phase=PLUMMET),
    Claim("keras-sn", "Issues", "the default momentum has been set to 0.98, which offers stability at the loss of "
          "performance", "best test accuracy over epochs: momentum 0.98 below 0.99",
          compare(accuracy_arm("best at 0.98", "best_test_acc/sn 0.98"), accuracy_arm("best at 0.99", "best_test_acc/sn 0.99"),
                  direction="lower"), partial=budget, trained=TRAINED),
    Claim("keras-sn", "Issues", "Higher momentum is recommended if using check pointing to restart training from best "
          "previous weights", "best test accuracy over epochs: momentum 0.997 above 0.98",
          compare(accuracy_arm("best at 0.997", "best_test_acc/sn 0.997"), accuracy_arm("best at 0.98", "best_test_acc/sn 0.98")),
          partial=budget, trained=TRAINED),
]

# The notebook's own question, after the SN paper (Luo et al. 2019), whose batch average the Keras port lacks
CLAIMS += [Claim("", "notebook 05's question, after Luo et al. 2019 (SN paper, batch average)",
                 f"the batch average beats the moving average ({m})", f"final test accuracy: batch average above momentum {m}",
                 compare(accuracy_arm("batch average", "test_acc/sn batch average"), accuracy_arm(m, f"test_acc/sn {m}")),
                 trained=TRAINED) for m in ("0.98", "0.99", "0.997")]
