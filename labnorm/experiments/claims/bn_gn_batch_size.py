"""The claims `bn_gn_batch_size` tests: BN and GN in a SmallCNN at batch 2, 8 and 64 (notebook 01).

Every comparison is of final test accuracy over paired seeds; the baseline that says whether the
networks are trained is BN at the largest batch ('{small}' / '{large}': the config's smallest and
largest batch, 2 and 64 at cpu and gpu scale).
"""

from . import Claim, Trained, accuracy_arm, compare, gn_note

TRAINED = Trained("test_acc/bn/b{large}", "BN at batch {large}")
BN_S, BN_L = accuracy_arm("BN batch {small}", "test_acc/bn/b{small}"), accuracy_arm("BN batch {large}", "test_acc/bn/b{large}")
GN_S, GN_L = accuracy_arm("GN batch {small}", "test_acc/{gn}/b{small}"), accuracy_arm("GN batch {large}", "test_acc/{gn}/b{large}")
SETTING = "SmallCNN, one-cycle SGD with the learning rate scaled linearly with the batch"

CLAIMS = [
    Claim("labml-ws", "introduction", "batch normalization doesn't work well when the batch size is too small",
          "BN's final test accuracy at the smallest batch (2) below the largest (64)",
          compare(BN_S, BN_L, direction="lower"), batch="{small} and {large}", partial=SETTING, trained=TRAINED),
    Claim("ws-post", "What is wrong with BN and GN?", "to get the most benefit out of BN we have to use a large batch "
          "size", "BN's final test accuracy at the smallest batch (2) below the largest (64)",
          compare(BN_S, BN_L, direction="lower"), batch="{small} and {large}", partial=SETTING, trained=TRAINED),
    Claim("ws-post", "What is wrong with BN and GN?", "when we have smaller batch sizes we prefer to use GN. (By "
          "smaller I mean 1–2 images/GPU)", "GN's final test accuracy above BN's at the smallest batch (2)",
          compare(GN_S, BN_S), batch="{small}", partial=lambda r: "; ".join(x for x in (SETTING, gn_note(r)) if x), trained=TRAINED),
    # The notebook's own questions, after Wu & He's Group Normalization paper (not one of the five sources)
    Claim("", "Wu & He 2018, abstract (ResNet-50 on ImageNet)", "[GN's] accuracy is stable in a wide range of batch "
          "sizes", "GN's final test accuracy at the smallest batch within 2 points of the largest",
          compare(GN_S, GN_L, direction="equal", margin=0.02), batch="{small} and {large}", trained=TRAINED),
    Claim("", "notebook 01's question, after Wu & He 2018", "BN beats GN at the largest batch",
          "BN's final test accuracy above GN's at the largest batch", compare(BN_L, GN_L), batch="{large}", trained=TRAINED),
]
