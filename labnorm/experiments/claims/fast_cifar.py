"""The claims `fast_cifar` tests: BN and GN in the whitened fast net, trained to the end (notebook 11).

The baseline that says whether the networks are trained is BN's test accuracy with test-time
augmentation in the main configuration.
"""

from . import Claim, Trained, accuracy_arm, compare

TRAINED = Trained("test_acc_tta/bn", "BN (TTA)")
BN, GN = accuracy_arm("BN", "test_acc_tta/bn"), accuracy_arm("GN", "test_acc_tta/gn")
SETTING = ("the whitened fast net of the CIFAR-10 speed records, full batch (no per-worker split), each norm at the "
           "learning rate its range test gives")

CLAIMS = [
    # The notebook's own question, after Wu & He's Group Normalization paper (not one of the five sources)
    Claim("", "Wu & He 2018, section 4.1 (ResNet-50 on ImageNet, 32 images per GPU)", "GN has 0.5% higher validation "
          "error than its BN counterpart", "BN's test accuracy (TTA) above GN's at the full batch",
          compare(BN, GN), batch="the full batch", partial=SETTING, trained=TRAINED),
]
