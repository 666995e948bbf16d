"""The claims `fast_cifar` tests: BN and GN in the whitened fast net, trained to the end (notebook 11).

The baseline that says whether the networks are trained is BN's test accuracy with test-time
augmentation in the main configuration. The recipe's hyperparameters are the speed records',
tuned for BN; GN gets the learning rate its range test gives (`labnorm.train.fast.LR_RULE`) and the
same rules for its scale and shift, so a gap measures GN in a BN-tuned recipe, which the claims'
`partial` says.
"""

from . import Claim, Trained, accuracy_arm, compare

TRAINED = Trained("test_acc_tta/bn", "BN (TTA)")
BN, GN = accuracy_arm("BN", "test_acc_tta/bn"), accuracy_arm("GN", "test_acc_tta/{gn}")
SETTING = ("the whitened fast net of the CIFAR-10 speed records, full batch of 1,024 (no per-worker split), a recipe "
           "tuned for BN (frozen norm scales, 64x learning rate on the norm shifts); GN at the learning rate its "
           "range test gives, not tuned")
WHERE = "Wu & He 2018, section 4.1 (ResNet-50 on ImageNet, 32 images per GPU, BN's hyperparameters for both)"
QUOTE = "GN has 0.5% higher validation error than its BN counterpart"

CLAIMS = [
    # The notebook's own questions, after Wu & He's Group Normalization paper (not one of the five sources)
    Claim("", WHERE, QUOTE, "BN's test accuracy (TTA) above GN's at the full batch", compare(BN, GN),
          batch="1,024", partial=SETTING, trained=TRAINED, part="BN ahead"),
    Claim("", WHERE, QUOTE, "GN's test accuracy (TTA) within 1 point of BN's at the full batch",
          compare(GN, BN, direction="equal", margin=0.01), batch="1,024", partial=SETTING, trained=TRAINED,
          part="by a small margin"),
]
