"""The claims `norm_zoo_cifar` tests: every norm of labnorm in the whitened fast net, trained to the end at
per-worker batch 2, 8, 32 and the full batch, each at BN's tuned learning rate, lowered where its range test blows up,
or reaches its lowest loss, sooner (notebook 10).

'{small}' / '{large}' are the config's smallest and largest per-worker batch (2 and the full 1,024), '{gn}'
and the like its spec of that norm (`gn:16` at cpu scale, `gn:32` at gpu scale); the norms judged against BN
at the smallest per-worker batch are the config's `challengers` (one claim each, listed here). The baseline is
BN at the full batch.
"""

from . import Arm, Claim, Trained, accuracy_arm, against, chance_accuracy, compare, derived, gn_name, gn_note, metric
from .loss_landscape_norms import FASTER
from .switch_norm_cifar import LEARNS, _layer_gap
from .weight_norm_cifar import CATCHES_UP, FASTER_START, MOBN_BETTER
from .ws_bcn_vgg import BETTER, WS_BCN

TRAINED = Trained("test_acc/bn/b{large}", "BN at the full batch")
BN_S = accuracy_arm("BN per-worker batch {small}", "test_acc/bn/b{small}")
PREFER_GN = "when we have smaller batch sizes we prefer to use GN. (By smaller I mean 1–2 images/GPU)"
BUDGET = ("the whitened fast net (FastCIFAR) at the config's width and epochs, optimizer batch 1,024; at per-worker "
          "batch 2 the norm's statistics come from 2 images, as on one of 512 workers, the gradient from all 1,024")

def _sn_full(details: dict) -> dict:
    # SN's run at the full batch: its learned importance weights
    run = _full(details, "sn")
    if "importance" not in run:
        raise KeyError("sn importance")
    return run


def _full(details: dict, norm: str, variant: str = "") -> dict:
    # The run of `norm` at the full batch (the largest per-worker batch), or of its `variant` unit there
    runs = sorted((int(u.partition("@")[0].rsplit("/b", 1)[1]), r) for u, r in details["units"].items()
                  if u.startswith(f"{norm}/b") and u.partition("@")[2] == variant)
    if not runs:
        raise KeyError(f"{norm}/b@{variant}")
    return runs[-1][1]


def _first_epoch(variant: str, label: str) -> Arm:
    # Mean training loss over the first epoch (of the run's 5); whether the arm learned: its final test accuracy
    unit = "wn/b{large}" + (f"@{variant}" if variant else "")
    return Arm(label, derived(lambda d: _full(d, "wn", variant)["epochs"][0]["train_loss"], f"epoch1_train_loss/{unit}"),
               chance_accuracy(f"test_acc/{unit}"))


WN = accuracy_arm("WN", "test_acc/wn/b{large}")
WN_INIT = accuracy_arm("WN + data-dependent init", "test_acc/wn/b{large}@data-init")
ADAM = ("the post trains WDSR (super-resolution) with Adam; here the whitened fast net with the speed-record recipe "
        "(Nesterov SGD), WN's learning rate from its range test for both inits, at the full batch")

CLAIMS = [
    Claim("ws-post", "What is wrong with BN and GN?", PREFER_GN, "GN's final test accuracy above BN's at the smallest "
          "batch (2)", compare(accuracy_arm("GN per-worker batch {small}", "test_acc/{gn}/b{small}"), BN_S), batch="{small}",
          partial=lambda r: "; ".join(x for x in (BUDGET, gn_note(r)) if x), trained=TRAINED),
    Claim("labml-ws", "introduction", WS_BCN, "final test accuracy of WS+BCN above BN at the smallest per-worker batch",
          compare(accuracy_arm("WS+BCN per-worker batch {small}", "test_acc/{ws+bcn}/b{small}"), BN_S), batch="{small}",
          partial=BUDGET, trained=TRAINED),
    *[Claim("ws-post", "Weight Standardization", BETTER, f"final test accuracy: {ws.upper()} above {plain.upper()} at "
            "the full batch", compare(accuracy_arm(ws.upper(), f"test_acc/{{{ws}}}/b{{large}}"),
                                      accuracy_arm(plain.upper(), f"test_acc/{{{plain}}}/b{{large}}")),
            batch="{large}", partial="the post reports the WS paper's results (ImageNet and more); this is CIFAR-10 on "
            "the whitened fast net", trained=TRAINED, part=ws.upper()) for ws, plain in (("ws+gn", "gn"), ("ws+bn", "bn"))],
    Claim("keras-sn", "first paragraph", LEARNS, "the largest gap between two layers in SN's learned weight of one "
          "statistic (IN, LN or BN, of the means or the variances) above 0.1 (the weights start equal, 1/3 each)",
          against(Arm("largest gap between layers", derived(lambda d: _layer_gap(_sn_full(d)), "importance/sn/b{large}"),
                      chance_accuracy("test_acc/sn/b{large}")), 0.1, direction="higher", kind="ratio",
                  value_text="a gap above 0.1"), batch="{large}", trained=TRAINED,
          partial="SN in the whitened fast net (the README: its toy CNN), at the full batch"),
    # Weight normalization (notebook 02's claims, decided here on a trained net): WN with Salimans & Kingma's
    # data-dependent init is the extra unit wn/b{large}@data-init, at WN's learning rate
    Claim("wn-keras", "4th paragraph", FASTER_START, "mean training loss over the first epoch: WN + data-dependent init "
          "below WN with the default init; the two runs differ only in the init",
          compare(_first_epoch("data-init", "WN+init, epoch 1"), _first_epoch("", "WN, epoch 1"), direction="lower",
                  kind="loss"), batch="{large}", trained=TRAINED, partial=ADAM),
    Claim("wn-keras", "4th paragraph", CATCHES_UP, "final test accuracy of WN (default init) within 2 points of WN + "
          "data-dependent init", compare(WN, WN_INIT, direction="equal", margin=0.02), batch="{large}", trained=TRAINED,
          partial=ADAM),
    Claim("gan-wn", "§3", MOBN_BETTER, "final test accuracy of WN + mean-only BN above plain WN at the full batch",
          compare(accuracy_arm("WN + mean-only BN", "test_acc/wn+mobn/b{large}"), WN), batch="{large}", trained=TRAINED,
          partial="the whitened fast net, not Salimans & Kingma's model; each at its own learning rate"),
    Claim("ws-post", "How these normalizations actually help?", FASTER, "final test accuracy after the same number of "
          "epochs: BN above no norm at the full batch", compare(accuracy_arm("BN", "test_acc/bn/b{large}"),
                                                               accuracy_arm("no norm", "test_acc/none/b{large}")),
          batch="{large}", trained=TRAINED, partial="the whitened fast net, each at its own learning rate by the "
          "range-test rule; 'faster' read as more accuracy for the same budget"),
    Claim("", "notebook 10's question, after Wu & He 2018", "BN beats GN at the full batch",
          "final test accuracy: BN above GN at the full batch",
          compare(accuracy_arm("BN full batch", "test_acc/bn/b{large}"),
                  accuracy_arm("GN full batch", "test_acc/{gn}/b{large}")), batch="{large}", trained=TRAINED),
]
# The notebook's own questions: does a norm whose statistics do not depend on the batch, or Batch Renorm, beat BN
# at the smallest batch? (after Qiao et al. 2019, Singh & Krishnan 2020, Liu et al. 2020, Ioffe 2017)
def BRN(record: dict) -> str:
    momentum = gn_name("{brn}", record).partition(":")[2] or "0.01"
    return ("Batch Renorm with its paper's warm-up (plain BN for 5,000 steps, the corrections fully relaxed at 40,000) "
            "compressed into this run of a few hundred steps; its moving averages at momentum "
            f"{momentum}" + (", not the paper's 0.01" if momentum != "0.01" else ""))
CLAIMS += [Claim("", "notebook 10's question", f"{norm} beats BN at the smallest per-worker batch",
                 f"final test accuracy: {norm} above BN at the smallest per-worker batch",
                 compare(accuracy_arm(f"{norm} per-worker batch {{small}}", f"test_acc/{{{norm}}}/b{{small}}"), BN_S),
                 batch="{small}", trained=TRAINED, partial=BRN if norm == "brn" else "")
           for norm in ("ws+gn", "frn", "evos0", "brn")]
# Notebook 02's questions, after Salimans & Kingma 2016, on the trained net (at the full batch)
CLAIMS += [Claim("", "notebook 02's question, after Salimans & Kingma 2016", q, t, compare(a, b), batch="{large}",
                 trained=TRAINED) for q, t, a, b in (
    ("WN beats no normalization", "final test accuracy: WN above no norm", WN,
     accuracy_arm("no norm", "test_acc/none/b{large}")),
    ("data-dependent init improves WN", "final test accuracy: WN + init above WN", WN_INIT, WN),
    ("BN beats WN with data-dependent init", "final test accuracy: BN above WN + init",
     accuracy_arm("BN", "test_acc/bn/b{large}"), WN_INIT))]
CONTROL_QUOTE = ("Zhu, Chen, He, LeCun & Liu 2025, Transformers without Normalization, §9: \"Preliminary experiments "
                 "(see Appendix D) indicate that DyT struggles to replace BN directly in classic networks like "
                 "ResNets.\" DyT replaces LayerNorm in Transformers (notebook 12); here it stands in BN's place.")
# The negative control: its authors' own statement. An arm that never learned is the claim's evidence here, not a
# reason to withhold the verdict, so DyT's arm has no chance rule (BN's keeps its own, and the trained-baseline rule).
CLAIMS += [Claim("", "Zhu, Chen, He, LeCun & Liu 2025, Transformers without Normalization, §9 Limitations",
                 "Preliminary experiments (see Appendix D) indicate that DyT struggles to replace BN directly in classic "
                 "networks like ResNets", "final test accuracy: BN above DyT (in BN's place) at the full batch",
                 compare(accuracy_arm("BN full batch", "test_acc/bn/b{large}"),
                         Arm("DyT full batch", metric("test_acc/dyt/b{large}"))), batch="{large}", trained=TRAINED,
                 partial="DyT in BN's place in the whitened fast net (a conv net, not a ResNet), at BN's learning "
                         "rate, lowered if its range test blows up, or reaches its lowest loss, sooner")]
