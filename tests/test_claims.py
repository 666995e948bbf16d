"""Claims: the verdict rules on synthetic records, the claims each experiment owns, one verdict per claim, the page."""

import copy
import math
import sys
from pathlib import Path

import pytest

from labnorm import claims
from labnorm.claims import SOURCES, UNTESTED, closeness, decide
from labnorm.experiments import experiments, reference
from labnorm.experiments.claims import (TRAINED_LEVEL, WORDS, Arm, Assessment, Claim, Floor, Phase, Trained,
                                        accuracy_arm, against, assess, chance_loss, compare, metric, of, rank_flip,
                                        spread_ratio, verdicts)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import claims_page  # noqa: E402


def record(values: dict[str, list], config: dict | None = None, experiment: str = "fake") -> dict:
    """A saved record of a fake experiment: one value per seed of each metric."""
    seeds = list(range(len(next(iter(values.values())))))
    return {
        "experiment": experiment, "scale": "cpu", "seeds": seeds,
        "config": config or {"model": "SmallCNN", "width": 32, "epochs": 3, "train_images": 1000,
                             "test_images": 10000, "batch_size": 64},
        "summary": {k: {} for k in values},
        "per_seed": {str(s): {"metrics": {k: v[s] for k, v in values.items()}, "details": {}} for s in seeds},
        "provenance": {"dataset": claims.DATASET, "seeds": seeds},
    }


A, B = accuracy_arm("A", "a"), accuracy_arm("B", "b")
CLAIM = Claim("ws-post", "§1", "A beats B", "A above B", compare(A, B), batch="2", untrained="a test of the rules")
TRAINED = {"base": [0.90, 0.91, 0.92]}  # a baseline above the trained level


@pytest.mark.parametrize("a, b, word", [
    ([0.60, 0.62, 0.61], [0.50, 0.51, 0.50], "supported"),
    ([0.40, 0.42, 0.41], [0.50, 0.51, 0.50], "contradicted"),
    ([0.60, 0.40, 0.52], [0.50, 0.51, 0.50], "inconclusive at this scale"),
])
def test_a_paired_comparison_gets_the_verdict_of_its_interval(a, b, word):
    out = assess(CLAIM, record({"a": a, "b": b}))
    assert out.word == word and out.word in WORDS and out.experiment == "fake"
    assert "A: " in out.figure and "difference" in out.figure and "%" in out.figure
    # Our run comes from the record's config and provenance
    assert out.run.startswith("SmallCNN (width 32); CIFAR-10 (JPEG q75 copy); 3 epochs on 1,000 training images")
    assert "batch 2" in out.run and "seeds 0, 1, 2 (n=3)" in out.run
    assert str(out).startswith(f"{word}: A above B — A: ")  # how a report prints it


def test_one_seed_no_record_and_a_missing_metric_say_so():
    one = assess(CLAIM, record({"a": [0.9], "b": [0.5]}))
    assert one.word == "inconclusive at this scale" and "1 seed" in one.reason and "(n=1)" in one.figure
    none = assess(CLAIM, None, "fake")
    assert none.word == "not run" and "no saved record of fake" in none.reason and none.limited
    missing = assess(CLAIM, record({"a": [0.6, 0.6, 0.6], "c": [0.5, 0.5, 0.5]}))
    assert missing.word == "not run" and "'b'" in missing.reason
    # A partial record saved unit by unit: the metric of a unit still to come is "not run yet", not missing
    partial = record({"test_acc/a/b2": [0.6, 0.6, 0.6]})
    partial["units"] = ["a/b2", "b/b2"]
    for s in partial["per_seed"].values():
        s["details"] = {"units": {"a/b2": {}}}
    later = Claim("ws-post", "§1", "A beats B", "A above B", compare(accuracy_arm("A", "test_acc/a/b2"),
                                                                     accuracy_arm("B", "test_acc/b/b2")))
    assert assess(later, partial).reason.startswith("not run yet: the record is partial")


# ----------------------------------------------------------------------------- the rules, one test each


def test_rule_an_arm_that_never_learned_makes_the_comparison_not_testable():
    # B sits at 10% accuracy on every seed: A "beats" it by a decided margin, which says nothing
    rec = record({"a": [0.60, 0.62, 0.61], "b": [0.10, 0.11, 0.09]})
    out = assess(CLAIM, rec)
    assert out.word == "not testable here" and out.reason.startswith("B never learned")
    # The same for a loss at ln 10 (a range test whose smoothed loss never left the uniform guess)
    flat = Arm("no norm", metric("lr_none"), chance_loss(metric("low_none")))
    bn = Arm("BN", metric("lr_bn"), chance_loss(metric("low_bn")))
    rec = record({"lr_bn": [-1.3, -1.2, -1.25], "lr_none": [-0.2, -0.4, -0.6], "low_bn": [2.19, 2.2, 2.21],
                  "low_none": [2.298, 2.301, 2.302]})
    out = assess(Claim("ws-post", "§2", "q", "BN's lr above no norm's", compare(bn, flat, kind="lr"), untrained="r"), rec)
    assert out.word == "not testable here" and "no norm never learned" in out.reason and "2.303" in out.reason
    # An arm that learned leaves the verdict alone
    learned = record({"lr_bn": [-1.3, -1.2, -1.25], "lr_none": [-0.2, -0.4, -0.6], "low_bn": [2.19, 2.2, 2.21],
                      "low_none": [2.0, 2.1, 2.05]})
    assert assess(Claim("ws-post", "§2", "q", "t", compare(bn, Arm("no norm", metric("lr_none"),
                                                                    chance_loss(metric("low_none"))), kind="lr"),
                        untrained="r"), learned).word == "contradicted"


def test_rule_a_baseline_under_the_trained_level_leaves_any_interval_inconclusive():
    claim = Claim("ws-post", "§1", "A beats B", "A above B", compare(A, B), trained=Trained("base", "BN"))
    decided = {"a": [0.60, 0.62, 0.61], "b": [0.50, 0.51, 0.50]}
    low = assess(claim, record({**decided, "base": [0.55, 0.56, 0.57]}))
    assert low.word == "inconclusive at this scale"
    assert "BN, reached 56.0%" in low.reason and f"{TRAINED_LEVEL:.0%}" in low.reason
    assert assess(claim, record({**decided, **TRAINED})).word == "supported"
    # A claim whose own setting states another level uses it
    own = Claim("ws-post", "§1", "A beats B", "A above B", compare(A, B), trained=Trained("base", "BN", level=0.5))
    assert assess(own, record({**decided, "base": [0.55, 0.56, 0.57]})).word == "supported"


def test_rule_a_phase_of_training_the_run_does_not_reach_limits_the_verdict():
    phase = Phase("iteration 500,000", 500_000, lambda r: r["config"]["iterations"], "iteration")
    claim = Claim("gan-wn", "D.3", "WN best at 500k", "A above B", compare(A, B), phase=phase)
    values = {"a": [0.60, 0.62, 0.61], "b": [0.50, 0.51, 0.50]}
    short = assess(claim, record(values, {"iterations": 2000, "batch_size": 32}))
    assert short.word == "inconclusive at this scale" and "our run stops at iteration 2,000" in short.reason
    assert assess(claim, record(values, {"iterations": 500_000, "batch_size": 32})).word == "supported"
    # A level reached by a smaller run stands (`keeps`); falling short of it does not contradict
    level = Claim("keras-sn", "Example", "87%", "A above 87%", against(A, 0.87, direction="higher"),
                  phase=Phase("epoch 25", 25, lambda r: r["config"]["epochs"], "epoch"), keeps=("supported",))
    assert assess(level, record({"a": [0.90, 0.91, 0.905]})).word == "supported"
    assert assess(level, record({"a": [0.60, 0.61, 0.605]})).word == "inconclusive at this scale"


def test_rule_a_measure_at_a_bound_in_both_arms_is_not_testable():
    dead = lambda label, m: Arm(label, metric(m))  # noqa: E731
    claim = Claim("labml-ws", "list", "Avoids elimination singularities", "dead channels: WS+BN below BN",
                  compare(dead("WS+BN", "d_ws"), dead("BN", "d_bn"), direction="lower", kind="frac",
                          floor=Floor(0.0, "zero dead channels")), untrained="r")
    out = assess(claim, record({"d_ws": [0.0, 0.0, 0.0], "d_bn": [0.0, 0.0, 0.0]}))
    assert out.word == "not testable here" and "zero dead channels" in out.reason
    moved = assess(claim, record({"d_ws": [0.0, 0.0, 0.0], "d_bn": [0.08, 0.1, 0.12]}))
    assert moved.word == "supported"


def test_rule_one_verdict_per_claim_the_run_closest_to_the_source_decides():
    # Two experiments test the post's claim; the post trains a ResNet-18 with Adam
    claim = Claim("ws-post", "§1", "A beats B", "A above B", compare(A, B), untrained="r")
    far = record({"a": [0.60, 0.62, 0.61], "b": [0.50, 0.51, 0.50]},
                 {"model": "SmallCNN", "optimizer": "SGD", "epochs": 10, "train_images": 50000}, "far")
    near = record({"a": [0.50, 0.52, 0.51], "b": [0.60, 0.61, 0.60]},
                  {"model": "resnet18", "optimizer": "Adam, one-cycle", "epochs": 2, "train_images": 5000}, "near")
    assert closeness(near, SOURCES["ws-post"]) == (2, 10000) and closeness(far, SOURCES["ws-post"])[0] == 0
    order = decide([(assess(claim, far), far), (assess(claim, near), near)])
    assert [a.experiment for a in order] == ["near", "far"] and order[0].word == "contradicted"
    # Among equals, the run that trains on more images decides
    bigger = {**near, "experiment": "bigger", "config": {**near["config"], "epochs": 20}}
    assert decide([(assess(claim, near), near), (assess(claim, bigger), bigger)])[0].experiment == "bigger"


def test_rule_a_run_that_can_show_the_claim_decides_before_a_closer_one_that_cannot():
    # The post's network, early in training, against a trained run of another network: the trained run decides
    claim = Claim("ws-post", "§1", "A beats B", "A above B", compare(A, B), trained=Trained("base", "BN"))
    values = {"a": [0.87, 0.88, 0.875], "b": [0.85, 0.86, 0.855]}
    near = record({**values, "base": [0.40, 0.41, 0.42]},
                  {"model": "resnet18", "optimizer": "adam", "epochs": 2, "train_images": 5000}, "near")
    trained = record({**values, "base": [0.86, 0.86, 0.86]}, {"model": "fast_cifar", "optimizer": "sgd"}, "trained")
    early, late = assess(claim, near), assess(claim, trained)
    assert early.limited and early.word == "inconclusive at this scale" and not late.limited
    assert [a.experiment for a in decide([(early, near), (late, trained)])] == ["trained", "near"]
    # An interval that spans zero on a trained run is a result, not a limit: the closer trained run still decides
    noisy = record({"a": [0.80, 0.90, 0.85], "b": [0.85, 0.84, 0.86], "base": [0.86, 0.86, 0.86]},
                   {"model": "resnet18", "optimizer": "adam"}, "noisy")
    first = decide([(late, trained), (assess(claim, noisy), noisy)])[0]
    assert first.experiment == "noisy" and first.word == "inconclusive at this scale" and not first.limited
    # Where every run is limited, the closest decides, as before
    missing = record({"a": [0.5, 0.5, 0.5]}, {"model": "fast_cifar"}, "missing")
    assert [a.experiment for a in decide([(assess(claim, missing), missing), (early, near)])] == ["near", "missing"]


def test_the_page_shows_every_test_of_a_claim_and_marks_the_one_that_decides():
    md = claims_page.build(ROOT)
    row = next(line for line in md.splitlines() if "we prefer to use GN" in line)
    assert row.count("*decides*") == 4 and row.count("*also*") == 12  # four columns, one deciding test of four
    assert row.split("|")[3].strip().startswith("*decides* — GN's final test accuracy above BN's at ")


# ----------------------------------------------------------------------------- other comparisons


def test_seed_spread_is_judged_by_an_f_test():
    judge = spread_ratio(Arm("BN", metric("a")), Arm("vanilla", metric("b")))
    wide = {"a": [0.010, 0.030, 0.050, 0.020, 0.045, 0.005], "b": [0.0200, 0.0201, 0.0199, 0.0200, 0.0202, 0.0198]}
    assert judge(record(wide)).word == "supported"
    assert judge(record({"a": wide["b"], "b": wide["a"]})).word == "contradicted"
    assert judge(record({"a": [0.02], "b": [0.03]})).word == "inconclusive"


def test_arms_are_named_by_the_record_s_own_specs_and_batch_sizes():
    rec = record({"test_acc/gn:4/b2": [0.5, 0.6, 0.7], "test_acc/ws+gn/b2": [0.1, 0.2, 0.3]},
                 {"norms": ["bn", "gn:4", "ws+gn"], "width": 32, "batch_sizes": [2, 64]})
    assert metric("test_acc/{gn}/b{small}")(rec) == [0.5, 0.6, 0.7]
    assert metric("test_acc/{ws+gn}/b2")(rec) == [0.1, 0.2, 0.3]


def test_a_rank_flip_is_supported_only_when_both_lengths_decide_opposite_ways():
    arm = lambda m: Arm(m, metric(m))  # noqa: E731
    judge = rank_flip((arm("a50"), arm("b50")), (arm("a2k"), arm("b2k")), "short", "long")
    base = {"b50": [1.0, 1.1, 1.05], "b2k": [1.0, 1.1, 1.05]}
    flip = record({**base, "a50": [1.5, 1.62, 1.55], "a2k": [0.5, 0.61, 0.56]})
    same = record({**base, "a50": [1.5, 1.62, 1.55], "a2k": [1.5, 1.61, 1.56]})
    assert judge(flip).word == "supported" and "flips" in judge(flip).figure
    assert judge(same).word == "inconclusive" and "same way" in judge(same).reason


# ----------------------------------------------------------------------------- the claims each experiment owns


def _owned():
    return [(name, c) for name in experiments() for c in of(name)]


def test_every_experiment_claim_is_quoted_with_its_source_and_states_its_rules():
    owned = _owned()
    assert len([c for _, c in owned if c.source]) >= 45
    for name, c in owned:
        assert c.source in SOURCES or (c.source == "" and c.where.strip()), (name, c.quote)
        assert c.quote.strip() and c.where.strip() and c.tests.strip() and c.judge.arms, (name, c.quote)
        # Rule 4 is stated for every claim on a classification run: a baseline, or why none is needed
        rec = reference(name)
        if rec is not None and any(k.startswith("test_acc/") for k in rec["summary"]):
            assert (c.trained is None) != (not c.untrained), (name, c.quote)
    for u in UNTESTED:
        assert u.source in SOURCES and u.quote.strip() and u.why.strip(), u.quote
    # A claim lives with one experiment's run: the machinery module holds none, and labnorm.claims only untested ones
    assert {c.source for _, c in owned} | {u.source for u in UNTESTED} >= set(SOURCES)
    assert "Claim(" not in (ROOT / "labnorm" / "claims.py").read_text()


def test_every_claim_s_metric_names_exist_in_its_experiment_s_record():
    # A renamed metric fails here: every claim of every experiment with a committed record reads what it needs
    for name, c in _owned():
        rec = reference(name)
        if rec is None:
            continue
        out = assess(c, rec)
        assert not out.reason.startswith("the record has no"), (name, c.quote, out.reason)
        if c.trained is not None:
            assert c.trained.reason(rec) is None or "has no" not in c.trained.reason(rec), (name, c.quote)


def test_reports_print_their_claims_in_the_page_s_vocabulary():
    for name, exp in experiments().items():
        rec = reference(name)
        if rec is None:
            continue
        rep = exp.report(rec)
        assert all(isinstance(v, Assessment) and v.word in WORDS for v in rep.verdicts), name
        assert [v.claim for v in rep.verdicts] == of(name), name
        assert all(f"- **{v.word}** — " in rep.markdown() for v in rep.verdicts), name


def test_no_decided_verdict_on_the_page_rests_on_a_rule():
    for j in claims.assess_all():
        for a in j.tests:
            if a.word not in ("supported", "contradicted"):
                continue
            rec = reference(a.experiment)
            assert not any(arm.chance and arm.chance.reason(rec, arm.label) for arm in a.claim.arms), a.claim.quote
            assert a.claim.trained is None or a.claim.trained.reason(rec) is None or a.word in a.claim.keeps
            assert a.claim.phase is None or a.claim.phase.reason(rec) is None or a.word in a.claim.keeps


def test_every_judge_runs_on_three_seeds_of_each_committed_record():
    # Three perturbed copies of a committed seed exercise every judge's interval path
    for name in {n for n, _ in _owned()}:
        rec = reference(name)
        if rec is None:
            continue
        seed = rec["per_seed"][str(rec["seeds"][0])]
        rec = {**rec, "seeds": [0, 1, 2], "per_seed": {}}
        for s in range(3):
            entry = copy.deepcopy(seed)
            entry["metrics"] = {k: v if v is None else v * (1 + 0.01 * s) for k, v in entry["metrics"].items()}
            rec["per_seed"][str(s)] = entry
        for out in verdicts(rec):
            assert out.word in WORDS and "1 seed" not in out.reason, (out.claim.quote, out)


# ----------------------------------------------------------------------------- the page


def test_the_page_for_the_committed_records_has_one_row_per_claim_and_counts_each_word():
    judged = claims.assess_all()
    assert {j.word for j in judged} <= set(WORDS)
    keys = [(j.source, j.quote, j.tests[0].claim.part if j.tests else j.untested.part) for j in judged]
    assert len(keys) == len(set(keys))
    md = claims_page.build(ROOT)
    for source in SOURCES.values():
        assert f"## {source.title}" in md
    for j in judged:
        assert j.quote.split("[")[0][:30] in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == len(judged)
    total = next(line for line in md.splitlines() if line.startswith("| **all** |")).split("|")[2:-1]
    assert [int(x) for x in total] == [sum(j.word == w for j in judged) for w in WORDS] + [len(judged)]
    assert "CIFAR-10 (JPEG q75 copy)" in md and "95% Student-t interval" in md and "/work/" not in md
    assert math.isclose(TRAINED_LEVEL, 0.85) and "85%" in md


def test_the_page_reads_records_from_labnorm_results(tmp_path, monkeypatch):
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    judged = claims.assess_all()
    assert all(j.word == "not run" for j in judged)
    assert all("no saved record" in a.reason for j in judged for a in j.tests)
    assert "## " + SOURCES["gan-wn"].title in claims_page.build(ROOT)


def test_the_notebooks_own_questions_are_judged_once_each_with_their_paper():
    own = claims.own_claims()
    listed = [(name, a.claim) for name, tests in own for a in tests]
    expected = [(name, c) for name in experiments() for c in of(name) if not c.source]
    assert listed == expected and {"fast_cifar", "transformer_norms"} <= {name for name, _ in own}
    assert all(a.word in WORDS and a.claim.where for _, tests in own for a in tests)
    md = claims_page.build(ROOT)
    for name, tests in own:
        assert f"`{name}`" in md
        for a in tests:
            assert a.claim.quote.split("[")[0][:30] in md
