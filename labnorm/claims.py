r"""The five sources, the claims no experiment tests, and one verdict per claim for the site's Claims page.

labnorm reproduces five sources (a blog post on weight normalization, labml.ai's Weight
Standardization page, the keras-switchnorm README, Xiang & Li's GAN paper and a blog post on
Weight Standardization with ResNet-18). The claims an experiment tests live beside it, in
`labnorm/experiments/claims/<experiment>.py`, with the rules that decide whether its run can
show them (`labnorm.experiments.claims`: a trained baseline, arms that learned, the phase of
training reached, a measure that can move). This module keeps only what belongs to no single
experiment:

- `SOURCES`: each source, what it is, the notebooks that redo it, and its **setting** (the model
  and optimizer of its own runs);
- `UNTESTED`: the claims no experiment tests, each with why;
- `assess_all()`: every claim of the five sources judged on the saved records, **one verdict per
  claim**;
- `own_claims()`: the notebooks' own questions (`source` ""), each after a paper that is not one of
  the five sources (Wu & He's Group Normalization, the Transformer papers of notebook 12, ...; `where`
  cites it), judged on the record of the experiment that asks it.

In `assess_all`, where several experiments test the same claim (the same source, quote and part), the
page shows every test and **the run closest to the source's setting that can show the claim decides**
(`decide`): a run the record's rules limit (an untrained baseline, an arm that never learned, a measure
at a bound, an early phase, one seed, no record: `Assessment.limited`) decides only where no run can
show the claim; among the rest, the one whose config matches most of the setting's items, then the one
that trains on the most images, then the first listed. So a trained run on the fast net decides a claim
that does not depend on the source's own network before an early-training run of that network.

`scripts/claims_page.py` renders the result; no number on the page is typed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .experiments.claims import DATASET, WORDS, Assessment, Claim, assess, config_value, of

__all__ = ["WORDS", "DATASET", "Source", "SOURCES", "Untested", "UNTESTED", "Judged", "closeness", "decide",
           "tested_claims", "assess_all", "own_claims"]


@dataclass(frozen=True)
class Source:
    """One of the five sources: its title, what it is, the notebooks that redo it, and the setting of its own runs
    (config key -> the text a run's config value must contain to match it)."""

    key: str
    title: str
    kind: str
    notebooks: tuple[str, ...]
    setting: dict


SOURCES = {
    "wn-keras": Source("wn-keras", "Weight normalization implementation options for Keras and Tensorflow projects",
                       "blog post, November 2018", ("02_weight_norm",), {"optimizer": "adam"}),
    "labml-ws": Source("labml-ws", "Weight Standardization", "labml.ai annotated implementation, with its VGG "
                       "CIFAR-10 experiment", ("03_weight_standardization", "08_loss_landscape"), {"model": "vgg"}),
    "keras-sn": Source("keras-sn", "Keras Switchable Normalization", "README of titu1994/keras-switchnorm",
                       ("05_switchable_norm",), {"model": "switchnorm_cnn"}),
    "gan-wn": Source("gan-wn", "On the Effects of Batch and Weight Normalization in Generative Adversarial Networks",
                     "paper by Xiang & Li (text and tables)", ("06_gan_weight_norm",), {"optimizer": "rmsprop"}),
    "ws-post": Source("ws-post", "Weight Standardization: A new normalization in town",
                      "blog post by Kushajveer Singh: fastai ResNet-18 with WS at batch 2, 64 and 256",
                      ("04_ws_small_batches", "07_lr_finder_and_one_cycle"), {"model": "resnet18", "optimizer": "adam"}),
}


@dataclass(frozen=True)
class Untested:
    """A claim of a source that no experiment tests, and why."""

    source: str
    where: str
    quote: str
    tests: str
    why: str
    part: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.quote, self.part)


UNTESTED = [
    Untested("wn-keras", "3rd paragraph", "I tested the Adam-based weight normalization implementation in another "
             "project (WDSR for Keras) and get almost identical results as the PyTorch-based reference implementation",
             "labnorm's weight norm equals PyTorch's", "an implementation claim about Keras code in a super-resolution "
             "project; labnorm's weight norm is proven equal to torch.nn.utils.parametrizations.weight_norm by parity "
             "tests (tests/test_weight_norm.py), not by an experiment"),
    Untested("wn-keras", "4th paragraph", "data-based initialization has a similar effect as batch-normalization",
             "the pre-activations' statistics right after the init", "a statement about the statistics at "
             "initialization (each pre-activation zero-mean with the init scale on the init batch, as after BN), not "
             "about trained accuracy: tests/test_weight_norm.py::test_data_init_gives_zero_mean_and_init_scale_std_"
             "for_every_layer checks it and notebook 02 shows it"),
    Untested("wn-keras", "4th paragraph", "batch-normalization which is known to harm single image super-resolution "
             "training", "BN harms super-resolution", "no super-resolution experiment: every labnorm experiment is "
             "CIFAR-10 classification or a GAN"),
    Untested("labml-ws", "introduction", "[Batch normalization] avoids elimination singularities", "fewer dead ReLU channels with BN than without a norm", "dead ReLU channels are counted "
             "only in the Weight Standardization experiment, which has no un-normalized arm"),
    Untested("labml-ws", "list of WS's effects", "Weight Standardization: 1. Normalizes the gradients",
             "the gradient through WS is centred and projected", "a property of WS's backward pass, derived in notebook "
             "03 and checked against autograd in tests/test_weight_std.py, not a training outcome"),
    Untested("labml-ws", "elimination singularities", "Elimination singularities are avoided because it keeps the "
             "statistics of the outputs similar to the inputs", "a WS layer's output statistics",
             "a statement about a layer's statistics, not a training outcome; no experiment measures it"),
    Untested("gan-wn", "§5.2, Table 2", "WN achieves about 10.5% lower final reconstruction loss than the vanilla "
             "model, while for BN the loss is 3% higher", "CelebA's reconstruction losses", "CelebA: labnorm trains its "
             "GANs on CIFAR-10 only (the paper's CIFAR-10 claims, Appendix D.3, are judged above)"),
    Untested("gan-wn", "§5.3", "Our WN model however, kept improving steadily until 300,000 iterations and then "
             "remained largely stable", "WN's running loss over 300,000 iterations",
             "no run is that long: our DCGANs train 2,000 iterations (cpu) or 50,000 (gpu)"),
    Untested("gan-wn", "§5.4", "BN allows a higher learning rate. The training of the vanilla and WN models often fail "
             "with a learning rate of 0.0002, while the BN model can still be trainable with a learning rate of 0.001",
             "GAN training at learning rates 2e-4 and 1e-3", "our GANs train at the paper's 1e-4 only; no learning-rate "
             "sweep"),
    Untested("gan-wn", "§5.4", "an increased learning rate did not accelerate the training of the BN model",
             "BN GAN at a higher learning rate", "no learning-rate sweep of the GANs"),
    Untested("gan-wn", "§5.4", "our WN model can already produce a human face in only 100 iterations",
             "CelebA samples at iteration 100", "CelebA and a judgement by eye"),
    Untested("gan-wn", "Appendix D.2", "The WN with mean-only BN model achieved worse reconstruction than the vanilla "
             "model", "a WN + mean-only BN GAN", "no WN + mean-only BN GAN arm (mean-only BN is tested in "
             "classification, above)"),
    Untested("gan-wn", "Appendix D.2, Table 6", "Both of them [affine-WN and WN + mean-only BN], however, are about "
             "7.5% worse than the WN model", "an affine-WN GAN", "no affine-WN GAN arm"),
    Untested("gan-wn", "§5.7", "the vanilla model and the BN model were never able to generate more than a handful of "
             "different samples [...] The WN model was trained to iteration 300,000 without major issues",
             "the 21-layer ResNet GANs", "labnorm builds the ResNet generator and discriminator (labnorm.gan) but no "
             "experiment trains them"),
    Untested("gan-wn", "Appendix D.4", "For the vanilla model, training fails constantly [on LSUN bedroom]",
             "LSUN bedroom GANs", "LSUN bedroom is not used"),
    Untested("gan-wn", "Appendix B", "if each dimension of the input vector x is independently drawn from a "
             "distribution with expected value 0 and variance 1, then the output y will also have expected value 0 and "
             "variance 1", "a strict WN layer's output statistics", "a property of the layer, checked numerically by "
             "tests/test_gan.py (unit variance), not a training outcome"),
    Untested("gan-wn", "Appendix E, Lemma 2 and Claim 1", "The weight-normalized discriminator [...] is K-Lipschitz-"
             "continuous", "the gradient bound of Lemma 2 and the discriminator's constant", "a theorem, checked "
             "numerically by tests/test_gan.py (Lemma 2's bound and Appendix E's constant), not a training outcome"),
    Untested("ws-post", "Weight Standardization", "By using WS we are essentially normalizing the gradients during the "
             "backpropagation", "the gradient through WS", "a property of WS's backward pass, derived in notebook 03 "
             "and checked against autograd in tests/test_weight_std.py, not a training outcome"),
    Untested("ws-post", "conclusion", "For constant learning rate, I think weight standardization still makes sense",
             "WS at a constant learning rate", "every experiment uses a one-cycle schedule"),
]


@dataclass(frozen=True)
class Judged:
    """One claim of a source with its verdict: every test of it (the deciding one first), or why none tests it."""

    source: str
    where: str
    quote: str
    tests: tuple[Assessment, ...] = ()
    untested: Untested | None = None

    @property
    def word(self) -> str:
        return self.tests[0].word if self.tests else "not run"

    @property
    def reason(self) -> str:
        return self.tests[0].reason if self.tests else self.untested.why


def closeness(record: dict | None, source: Source) -> tuple[int, int]:
    """How close a run is to its source's setting: (how many of the setting's items its config matches, the training
    images it sees: epochs x images, or iterations x batch)."""
    if record is None:
        return (-1, 0)
    matched = sum(str(want).lower() in str(config_value(record, key, default="")).lower()
                  for key, want in source.setting.items())
    images = (config_value(record, "epochs", default=0) * config_value(record, "train_images", default=0)
              or config_value(record, "iterations", default=0) * config_value(record, "batch_size", default=0))
    return (matched, images)


def decide(tests: list[tuple[Assessment, dict | None]]) -> tuple[Assessment, ...]:
    """Several tests of one claim, the deciding one first: a run that can show the claim before one the record's rules
    limit (`Assessment.limited`), then the closest run to the source's setting (`closeness`), the first listed among
    equals."""
    order = sorted(range(len(tests)), key=lambda i: (tests[i][0].limited, tuple(
        -x for x in closeness(tests[i][1], SOURCES[tests[i][0].claim.source])), i))
    return tuple(tests[i][0] for i in order)


def tested_claims() -> list[tuple[str, Claim]]:
    """(experiment, claim) for every claim of the five sources that an experiment tests, in registry order."""
    from .experiments import experiments

    return [(name, c) for name in experiments() for c in of(name) if c.source]


def assess_all(load: Callable[[str], dict | None] | None = None) -> list[Judged]:
    """Every claim of the five sources, one verdict each, judged on the saved record of each experiment that tests
    it at the largest scale there is; in the order of `SOURCES`, tested claims first."""
    if load is None:
        from .experiments import reference as load
    records: dict[str, dict | None] = {}
    groups: dict[tuple, list[tuple[Assessment, dict | None]]] = {}
    for name, claim in tested_claims():
        if name not in records:
            records[name] = load(name)
        groups.setdefault(claim.key, []).append((assess(claim, records[name], name), records[name]))
    judged = [Judged(k[0], tests[0][0].claim.where, k[1], decide(tests)) for k, tests in groups.items()]
    judged += [Judged(u.source, u.where, u.quote, untested=u) for u in UNTESTED]
    return sorted(judged, key=lambda j: list(SOURCES).index(j.source))


def own_claims(load: Callable[[str], dict | None] | None = None) -> list[tuple[str, list[Assessment]]]:
    """(experiment, its claims judged on its saved record) for every experiment that tests claims of papers that
    are not one of the five sources (`Claim.source` ""), in registry order; `where` names each claim's paper."""
    from .experiments import experiments

    if load is None:
        from .experiments import reference as load
    out = []
    for name in experiments():
        own = [c for c in of(name) if not c.source]
        if own:
            record = load(name)
            out.append((name, [assess(c, record, name) for c in own]))
    return out
