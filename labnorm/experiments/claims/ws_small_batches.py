"""The claims `ws_small_batches` tests: the Weight Standardization blog post redone — ResNet-18 with BN and
WS+BN, LR range tests (Adam) at batch 2, 64 and 256, one-cycle Adam training at batch 64, 2 and 256, GN and WS+GN
at batch 2 (notebook 04).

The post's setting: fastai's ResNet-18 at full width on the whole CIFAR-10 training set, `lr_find`
and `fit_one_cycle` with Adam. Its batch-2 remark that "the loss diverged quickly when I used only
BN, after around 40 iterations" sits between its `lr_find` and its training, and is judged on the
batch-2 range test: a training run that diverged would not end, as the post says the two did, with
"not much difference in the loss values". The baseline is BN at batch 64, the post's own baseline.
"""

import math

from . import Arm, Claim, Floor, Trained, accuracy_arm, against, chance_accuracy, chance_loss, compare, config_value, \
    derived, gn_note, metric

TRAINED = Trained("test_acc/bn/b64", "BN at batch 64")
RANGE = "an LR range test, which measures the first steps of training"
WALL = "wall time per epoch, which does not depend on how far training has got"


def post_note(record: dict) -> str:
    return (f"ResNet-18 at width {config_value(record, 'width')}, {config_value(record, 'epochs')} epochs on "
            f"{config_value(record, 'train_images', default=0):,} images (the post: full width, the full training set)")


def range_note(record: dict) -> str:
    return (f"ResNet-18 at width {config_value(record, 'width')}, Adam, {config_value(record, 'range_num_iter')}-step "
            "range test from 1e-7 to 10 (fastai's lr_find defaults); the post's model is at full width")


def _range(details: dict, norm: str, batch: int) -> dict:
    return next(c for c in details["range_tests"] if c["norm"] == norm and c["batch_size"] == batch)


def _lowest_lr(c: dict) -> float:
    # log10 of the learning rate where the smoothed range-test loss is lowest (where it "starts increasing")
    return math.log10(c["lr"][min(range(len(c["loss"])), key=lambda k: c["loss"][k])])


def range_arm(label: str, norm: str, batch: int, what: str = "lr") -> Arm:
    """A range test's log10 learning rate at its lowest loss (`what="lr"`) or the steps it ran (`"steps"`); it
    never learned when its lowest smoothed loss stays within 0.05 of ln 10."""
    key = f"range test {norm} b{batch}"
    value = (derived(lambda d: _lowest_lr(_range(d, norm, batch)), key) if what == "lr"
             else derived(lambda d: _range(d, norm, batch)["stopped_at"], key))
    return Arm(label, value, chance_loss(derived(lambda d: min(_range(d, norm, batch)["loss"]), key)))


def _acc(label: str, norm: str, batch: int) -> Arm:
    return accuracy_arm(label, f"test_acc/{norm}/b{batch}")


def _other(label: str, name: str, norm: str, batch: int) -> Arm:
    # Another measure of a training run; whether the run learned is read from its test accuracy
    return Arm(label, metric(f"{name}/{norm}/b{batch}"), chance_accuracy(f"test_acc/{norm}/b{batch}"))


def _seconds(batch: int) -> compare:
    return compare(Arm("WS+BN", metric(f"seconds_per_epoch/ws+bn/b{batch}")),
                   Arm("BN", metric(f"seconds_per_epoch/bn/b{batch}")), kind="s")


def _loss_equal(batch: int) -> compare:
    return compare(_other("WS+BN", "test_loss", "ws+bn", batch), _other("BN", "test_loss", "bn", batch),
                   direction="equal", margin=0.05, kind="loss")


RANGE_END = Floor(lambda r: config_value(r, "range_num_iter", default=0), "the range test's last steps, where the "
                  "learning rate nears 10 and every network diverges", tol=5)
WHY = "What is wrong with BN and GN?"
SMALL = "batch size = 2"

CLAIMS = [
    Claim("ws-post", WHY, "to get the most benefit out of BN we have to use a large batch size",
          "BN's final test accuracy at batch 2 below batch 64 (ResNet-18, one-cycle Adam)",
          compare(_acc("BN batch 2", "bn", 2), _acc("BN batch 64", "bn", 64), direction="lower"),
          batch="2 and 64 (the same learning rate)", partial=post_note, trained=TRAINED),
    Claim("ws-post", WHY, "when we have smaller batch sizes we prefer to use GN. (By smaller I mean 1–2 images/GPU)",
          "GN's final test accuracy above BN's at batch 2", compare(_acc("GN batch 2", "gn", 2), _acc("BN batch 2", "bn", 2)),
          batch="2", partial=lambda r: "; ".join(x for x in (post_note(r), gn_note(r)) if x), trained=TRAINED),
    Claim("ws-post", WHY, "GN was introduced for cases of small batch sizes but it was not able to meet the results "
          "that BN was able to achieve using larger batch sizes", "GN's final test accuracy at batch 2 below BN's at "
          "batch 64", compare(_acc("GN batch 2", "gn", 2), _acc("BN batch 64", "bn", 64), direction="lower"),
          batch="2 and 64", partial=lambda r: "; ".join(x for x in (post_note(r), gn_note(r)) if x), trained=TRAINED),
    Claim("ws-post", "First, let's try out at batch size = 64", "In this case the max_lr is around 0.0005",
          "LR range test of BN at batch 64: the learning rate of the lowest smoothed loss within half a decade of 5e-4",
          against(range_arm("log10 lr at the lowest loss", "bn", 64), math.log10(5e-4), direction="equal", margin=0.5,
                  kind="lr", value_text="log10 5e-4 = −3.30"), batch="64 (range test)", partial=range_note,
          untrained=RANGE),
    Claim("ws-post", "First, let's try out at batch size = 64", "There is not much difference between the two as valid "
          "loss almost remains the same", "final test loss of WS+BN within ±0.05 of BN's at batch 64", _loss_equal(64),
          batch="64", partial=post_note, trained=TRAINED),
    Claim("ws-post", SMALL, "the loss diverged quickly when I used only BN, after around 40 iterations, while in the "
          "case of WS+BN the loss did not diverge", "batch-2 LR range test: WS+BN runs more steps than BN before the "
          "divergence rule stops it", compare(range_arm("WS+BN steps before stopping", "ws+bn", 2, "steps"),
                                               range_arm("BN steps before stopping", "bn", 2, "steps"), kind="steps",
                                               floor=RANGE_END),
          batch="2 (range test)", partial=range_note, untrained=RANGE),
    Claim("ws-post", SMALL, "the loss diverged quickly when I used only BN, after around 40 iterations",
          "batch-2 LR range test: BN stops within 40 ± 20 steps",
          against(range_arm("BN steps before stopping", "bn", 2, "steps"), 40.0, direction="equal", margin=20.0,
                  kind="steps", value_text="about 40"), batch="2 (range test)", partial=range_note, untrained=RANGE),
    Claim("ws-post", SMALL, "There is not much difference in the loss values", "final test loss of WS+BN within ±0.05 "
          "of BN's at batch 2", _loss_equal(2), batch="2", partial=post_note, trained=TRAINED),
    Claim("ws-post", SMALL, "but the time to run each cycle increased very much", "seconds per epoch: WS+BN above BN at "
          "batch 2", _seconds(2), batch="2", partial="wall time on a shared machine, not a benchmark; read as WS+BN "
          "against BN", untrained=WALL),
    Claim("ws-post", "batch size = 256", "Although, I could use a larger learning rate", "LR range test of BN: the "
          "lowest loss at a larger learning rate at batch 256 than at 64 (log10 lr)",
          compare(range_arm("batch 256", "bn", 256), range_arm("batch 64", "bn", 64), kind="lr"),
          batch="64 and 256 (range tests)", partial=range_note, untrained=RANGE),
    Claim("ws-post", "batch size = 256", "but the time taken to complete the cycle increased", "seconds per epoch: "
          "WS+BN above BN at batch 256", _seconds(256), batch="256", partial="wall time on a shared machine, not a "
          "benchmark; read as WS+BN against BN", untrained=WALL),
    Claim("ws-post", "conclusion", "For large batch sizes, it even gave worse performance", "final test accuracy: WS+BN "
          "below BN at batch 256", compare(_acc("WS+BN", "ws+bn", 256), _acc("BN", "bn", 256), direction="lower"),
          batch="256", partial=post_note, trained=TRAINED),
    Claim("ws-post", "conclusion", "for smaller batch sizes, it gave almost similar results", "final test accuracy of "
          "WS+BN within 2 points of BN at batch 2", compare(_acc("WS+BN", "ws+bn", 2), _acc("BN", "bn", 2),
                                                            direction="equal", margin=0.02),
          batch="2", partial=post_note, trained=TRAINED),
    Claim("ws-post", "conclusion", "using weight standardization we added a lot of time to our computation",
          "seconds per epoch: WS+BN above BN at batch 64", _seconds(64), batch="64",
          partial="wall time on a shared machine, not a benchmark (benchmarks/ measures speed)", untrained=WALL),
    Claim("ws-post", "conclusion", "But in the case of cyclic learning, it does not offer us a benefit",
          "final test accuracy of WS+BN within 2 points of BN at batch 64 (one-cycle)",
          compare(_acc("WS+BN", "ws+bn", 64), _acc("BN", "bn", 64), direction="equal", margin=0.02),
          batch="64", partial=post_note, trained=TRAINED),
    # The notebook's own reading of the batch-2 remark in training, not in the range test
    Claim("", "notebook 04's question", "at batch 2 BN blows up in training where WS+BN does not",
          "blow-up rate over seeds at batch 2: BN above WS+BN (the divergence rule applied to the training loss)",
          compare(_other("BN blow-up rate", "blew_up", "bn", 2), _other("WS+BN blow-up rate", "blew_up", "ws+bn", 2),
                  kind="rate", floor=Floor(0.0, "zero blow-ups")),
          batch="2", untrained="a blow-up shows in the first steps of training, which the run covers"),
]
