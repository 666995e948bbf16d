"""The claims `gan_weight_norm_cifar` tests: Xiang & Li's DCGANs on CIFAR-10 without normalization ("vanilla"), with
BN and with their strict WN, judged by the reconstruction loss (notebook 06).

The paper trains its CIFAR-10 models 500,000 iterations (Appendix D.3, Table 7: the best running
loss at iteration 387,000 for vanilla, 50,000 for WN, 1,000 for BN) and its CelebA models to their
optima (Table 2: 30,500 for vanilla and BN, 463,000 for WN). A claim about trained models is
limited by the iteration it is about (rule 5); a claim about the beginning of training is not.
A model never learned when its running reconstruction loss at the end is within 10% of its value
at iteration 0.
"""

from . import Arm, Chance, Claim, Phase, both, compare, config_value, derived, iterations, metric, rank_flip, \
    relative, spread_ratio


def note(record: dict) -> str:
    return (f"our DCGANs train {config_value(record, 'iterations', default=0):,} iterations with "
            f"{config_value(record, 'channels')} base channels (the paper's CIFAR-10 runs: 500,000 iterations, 96 "
            f"channels); final reconstruction {config_value(record, 'final_steps')} steps on "
            f"{config_value(record, 'final_images')} images (paper: 2,000 steps on 2,000 images)")


def celeba(record: dict) -> str:
    return "the claim is made on CelebA; we test it on CIFAR-10; " + note(record)


def _run(details: dict, norm: str) -> dict:
    return next(r for r in details["runs"] if r["norm"] == norm)


def _evals(run: dict) -> list[float]:
    return [v for it, v in run["eval"] if it > 0]


def _learned(norm: str) -> Chance:
    # The running reconstruction loss at the end relative to iteration 0: within 10% of 1, the generator never learned
    return Chance(derived(lambda d: _run(d, norm)["eval"][-1][1] / _run(d, norm)["eval"][0][1], f"{norm} eval"), 1.0,
                  0.1, "last running reconstruction loss ÷ its value at iteration 0")


def _details(label: str, norm: str, fn) -> Arm:
    return Arm(label, derived(lambda d: fn(_run(d, norm)), f"{norm} eval"), _learned(norm))


def _final(label: str, norm: str) -> Arm:
    return Arm(label, metric(f"final_reconstruction_loss/{norm}"), _learned(norm))


def early(run: dict) -> float:
    # The first running reconstruction loss after iteration 0
    return _evals(run)[0]


def rises(run: dict) -> float:
    # Summed relative rises of the running reconstruction loss between evaluations (0 if it only falls)
    vals = _evals(run)
    return sum(max(0.0, b / a - 1) for a, b in zip(vals, vals[1:]))


def above_best(run: dict) -> float:
    # How far the last running reconstruction loss is above the run's best, relative to the best
    vals = _evals(run)
    return vals[-1] / min(vals) - 1


def phase(what: str, at: int) -> Phase:
    return Phase(what, at, iterations, "iteration")


FLUCTUATES = phase("BN's loss from iteration 40,000 on, where the paper sees it fluctuate", 40_000)
TABLE_7 = phase("the trained CIFAR-10 models of Table 7 (their optima: vanilla 387,000, WN 50,000, BN 1,000)", 387_000)
CELEBA_WN = phase("the CelebA models at their optima (Table 2: WN 463,000, vanilla and BN 30,500)", 463_000)

CLAIMS = [
    Claim("gan-wn", "abstract", "training using WN is generally superior to BN for GANs, achiving 10% lower mean "
          "squared loss for reconstruction", "final reconstruction loss of WN at least 10% below BN's",
          relative(_final("WN", "wn"), _final("BN", "bn"), direction="lower", margin=0.10), batch="32", partial=note,
          phase=CELEBA_WN),
    Claim("gan-wn", "abstract; §1", "Though BN accelerates the training in the beginning",
          "first running reconstruction loss after iteration 0: BN below vanilla",
          compare(_details("BN", "bn", early), _details("vanilla", "vanilla", early), direction="lower", kind="recon"),
          batch="32", partial=note),
    Claim("gan-wn", "abstract; §5.3", "the use of BN can be unstable [...] For the BN model, at around 40,000 "
          "iterations, the loss started to show excessive fluctuation", "summed relative rises of the running "
          "reconstruction loss: BN above vanilla",
          compare(_details("BN", "bn", rises), _details("vanilla", "vanilla", rises), kind="ratio"),
          batch="32", partial=celeba, phase=FLUCTUATES),
    Claim("gan-wn", "§1", "our WN approach can achieve faster [...] training than BN",
          "first running reconstruction loss after iteration 0: WN below BN",
          compare(_details("WN", "wn", early), _details("BN", "bn", early), direction="lower", kind="recon"),
          batch="32", partial=note),
    Claim("gan-wn", "§1", "our WN approach can achieve [...] more stable training than BN",
          "summed relative rises of the running reconstruction loss: WN below BN",
          compare(_details("WN", "wn", rises), _details("BN", "bn", rises), direction="lower", kind="ratio"),
          batch="32", partial=lambda r: "the instability the paper sees in BN starts at iteration 40,000 (§5.3); "
                                        + note(r), phase=FLUCTUATES),
    Claim("gan-wn", "§5.4", "It is evident that Batch Normalization does accelerate training and the effect of Weight "
          "Normalization is comparable", "first running reconstruction loss after iteration 0: WN within ±10% of BN",
          relative(_details("WN", "wn", early), _details("BN", "bn", early), direction="equal", margin=0.10),
          batch="32", partial=lambda r: "the paper judges sample grids of the early stages by eye (CelebA); we compare "
                                        "the running reconstruction loss. " + note(r)),
    Claim("gan-wn", "Appendix D.3", "BN is still the worst model compared to the vanilla and WN models",
          "final reconstruction loss: BN above vanilla and above WN",
          both(compare(_final("BN", "bn"), _final("vanilla", "vanilla"), kind="recon"),
               compare(_final("BN", "bn"), _final("WN", "wn"), kind="recon"), "against WN"),
          batch="32", partial=note, phase=TABLE_7),
    Claim("gan-wn", "Appendix D.3, Table 7", "The seemingly worse 500,000-iteration WN model turned out to give the "
          "best final reconstruction result", "final reconstruction loss: WN below vanilla",
          compare(_final("WN", "wn"), _final("vanilla", "vanilla"), direction="lower", kind="recon"),
          batch="32", partial=note, phase=phase("the WN model at iteration 500,000", 500_000)),
    Claim("gan-wn", "Appendix D.3", "Now the WN model achieves optimal loss early on, but then becomes worse. On the "
          "other hand, the vanilla model keeps improving", "last running reconstruction loss above the run's best, "
          "relative to the best: WN above vanilla",
          compare(_details("WN", "wn", above_best), _details("vanilla", "vanilla", above_best), kind="ratio"),
          batch="32", partial=note, phase=phase("the curves of Figure 24, to iteration 500,000", 500_000)),
    Claim("gan-wn", "§1", "as well as generate equal or higher quality samples than GAN models without normalization",
          "final reconstruction loss of WN not above vanilla's (supported only when it is significantly below)",
          compare(_final("WN", "wn"), _final("vanilla", "vanilla"), direction="lower", kind="recon"),
          batch="32", partial=note, phase=CELEBA_WN),
    Claim("gan-wn", "Appendix C.3", "[the samples of the optimal WN model, at iteration 463,000,] show more variations "
          "than the vanilla model", "per-pixel spread of 16 fixed-code samples relative to real images: WN above "
          "vanilla", compare(Arm("WN", metric("sample_spread_vs_real/wn"), _learned("wn")),
                             Arm("vanilla", metric("sample_spread_vs_real/vanilla"), _learned("vanilla")), kind="ratio"),
          batch="32", partial=celeba, phase=CELEBA_WN),
    Claim("gan-wn", "Appendix C.2", "This indicates that the BN model had limited diversity even at its optimal "
          "iteration", "per-pixel spread of 16 fixed-code samples relative to real images: BN below WN",
          compare(Arm("BN", metric("sample_spread_vs_real/bn"), _learned("bn")),
                  Arm("WN", metric("sample_spread_vs_real/wn"), _learned("wn")), direction="lower", kind="ratio"),
          batch="32", partial=lambda r: "the paper sees recurring features by eye; we measure the spread of samples "
                                        "at the end; " + celeba(r),
          phase=phase("the BN model at its optimal iteration on CelebA, 30,500", 30_500)),
    Claim("gan-wn", "Appendix D.1", "the three instances of vanilla model gave almost identical loss curves [...] the "
          "batch-normalized models also showed “meta-instability”", "spread over seeds of the best running "
          "reconstruction loss: BN above vanilla (F-test)",
          spread_ratio(Arm("BN", metric("best_running_loss/bn"), _learned("bn")),
                       Arm("vanilla", metric("best_running_loss/vanilla"), _learned("vanilla"))),
          batch="32", partial=celeba,
          phase=phase("the best running losses of three CelebA runs per model, at iterations 16,000 to 37,000", 37_000)),
    Claim("gan-wn", "Appendix D.3", "performing the reconstruction for too few steps may give inaccurate results",
          "the trained WN and vanilla generators ranked by the short running reconstruction (last evaluation) and by "
          "the longer final one: supported when the two rankings are opposite and both decided",
          rank_flip((_details("WN", "wn", lambda run: run["eval"][-1][1]),
                     _details("vanilla", "vanilla", lambda run: run["eval"][-1][1])),
                    (_final("WN", "wn"), _final("vanilla", "vanilla")), "short", "long"),
          batch="32", partial=lambda r: f"short: {config_value(r, 'eval_steps')} steps on {config_value(r, 'eval_images')} "
                                        f"images; long: {config_value(r, 'final_steps')} steps on "
                                        f"{config_value(r, 'final_images')} other images (the paper: 50 and 2,000 steps)"),
]
