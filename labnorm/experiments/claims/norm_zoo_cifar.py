"""The claims `norm_zoo_cifar` tests: every norm of labnorm in one fast ResNet at batch 2, 8, 32 and 128, one
learning-rate rule and one budget for all (notebook 10).

'{small}' / '{large}' are the config's smallest and largest batch (2 and 128), '{gn}' and the like
its spec of that norm (`gn:4` at cpu scale, `gn:32` at gpu scale); the norms judged against BN at
the smallest batch are the config's `challengers` (one claim each, listed here). The baseline is BN at the largest batch.
"""

from . import Claim, Trained, accuracy_arm, compare, gn_note

TRAINED = Trained("test_acc/bn/b{large}", "BN at batch {large}")
BN_S = accuracy_arm("BN batch {small}", "test_acc/bn/b{small}")
PREFER_GN = "when we have smaller batch sizes we prefer to use GN. (By smaller I mean 1–2 images/GPU)"
BUDGET = "the fast ResNet at width 0.125 (cpu scale); at batch 2 the step cap leaves 6,000 images (3,000 steps)"

CLAIMS = [
    Claim("ws-post", "What is wrong with BN and GN?", PREFER_GN, "GN's final test accuracy above BN's at the smallest "
          "batch (2)", compare(accuracy_arm("GN batch {small}", "test_acc/{gn}/b{small}"), BN_S), batch="{small}",
          partial=lambda r: "; ".join(x for x in (BUDGET, gn_note(r)) if x), trained=TRAINED),
    Claim("", "notebook 10's question, after Wu & He 2018", "BN beats GN at the largest batch",
          "final test accuracy: BN above GN at the largest batch",
          compare(accuracy_arm("BN batch {large}", "test_acc/bn/b{large}"),
                  accuracy_arm("GN batch {large}", "test_acc/{gn}/b{large}")), batch="{large}", trained=TRAINED),
]
# The notebook's own questions: does a norm whose statistics do not depend on the batch, or Batch Renorm, beat BN
# at the smallest batch? (after Qiao et al. 2019, Singh & Krishnan 2020, Liu et al. 2020, Ioffe 2017)
CLAIMS += [Claim("", "notebook 10's question", f"{norm} beats BN at the smallest batch",
                 f"final test accuracy: {norm} above BN at the smallest batch",
                 compare(accuracy_arm(f"{norm} batch {{small}}", f"test_acc/{{{norm}}}/b{{small}}"), BN_S),
                 batch="{small}", trained=TRAINED) for norm in ("ws+gn", "frn", "evos0", "brn")]
