"""The claims of the five sources: verdict rules on synthetic records, the list, and the generated page."""

import sys
from pathlib import Path

import pytest

from labnorm import claims
from labnorm.claims import (CLAIMS, SOURCES, WORDS, Claim, against, assess, compare, gn_metric, metric, rank_flip,
                            spread_ratio)
from labnorm.experiments import experiments

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import claims_page  # noqa: E402


def record(values: dict[str, list], config: dict | None = None) -> dict:
    """A saved record of a fake experiment: one value per seed of each metric."""
    seeds = list(range(len(next(iter(values.values())))))
    return {
        "experiment": "fake", "scale": "cpu", "seeds": seeds,
        "config": config or {"model": "SmallCNN", "width": 32, "epochs": 3, "train_images": 1000,
                             "test_images": 10000, "batch_size": 64},
        "summary": {k: {} for k in values},
        "per_seed": {str(s): {"metrics": {k: v[s] for k, v in values.items()}, "details": {}} for s in seeds},
        "provenance": {"dataset": claims.DATASET, "seeds": seeds},
    }


CLAIM = Claim("ws-post", "§1", "A beats B", "A above B", "fake", compare(metric("a"), metric("b"), "A", "B"), batch="2")


@pytest.mark.parametrize("a, b, word", [
    ([0.60, 0.62, 0.61], [0.50, 0.51, 0.50], "supported"),
    ([0.40, 0.42, 0.41], [0.50, 0.51, 0.50], "contradicted"),
    ([0.60, 0.40, 0.52], [0.50, 0.51, 0.50], "inconclusive at this scale"),
])
def test_a_paired_comparison_gets_the_verdict_of_its_interval(a, b, word):
    out = assess(CLAIM, record({"a": a, "b": b}))
    assert out.word == word
    assert "A: " in out.figure and "difference" in out.figure and "%" in out.figure
    # Our run comes from the record's config and provenance
    assert out.run.startswith("SmallCNN (width 32); CIFAR-10 (JPEG q75 copy); 3 epochs on 1,000 training images")
    assert "batch 2" in out.run and "seeds 0, 1, 2 (n=3)" in out.run


def test_one_seed_no_record_no_experiment_and_a_missing_metric_say_so():
    one = assess(CLAIM, record({"a": [0.9], "b": [0.1]}))
    assert one.word == "inconclusive at this scale" and "1 seed" in one.reason and "(n=1)" in one.figure
    none = assess(CLAIM, None)
    assert none.word == "not run" and "no saved record of fake" in none.reason
    untested = Claim("ws-post", "§2", "WS helps at constant LR", "WS at a constant LR", not_run="no such run")
    assert (assess(untested, None).word, assess(untested, None).reason) == ("not run", "no such run")
    missing = assess(CLAIM, record({"a": [0.6, 0.6, 0.6], "c": [0.5, 0.5, 0.5]}))
    assert missing.word == "not run" and "'b'" in missing.reason
    # A partial record saved unit by unit: the metric of a unit still to come is "not run yet", not missing
    partial = record({"test_acc/a/b2": [0.6, 0.6, 0.6]})
    partial["units"] = ["a/b2", "b/b2"]
    for s in partial["per_seed"].values():
        s["details"] = {"units": {"a/b2": {}}}
    later = Claim("ws-post", "§1", "A beats B", "A above B", "fake",
                  compare(metric("test_acc/a/b2"), metric("test_acc/b/b2"), "A", "B"))
    assert assess(later, partial).reason.startswith("not run yet: the record is partial")


def test_a_run_too_small_for_the_claim_is_inconclusive_unless_the_word_may_stand():
    level = against(metric("a"), "A", 0.87, direction="higher")
    small = lambda r: "a shorter run"  # noqa: E731
    reached = Claim("keras-sn", "Example", "87%", "A above 87%", "fake", level, limit=small, limit_keeps=("supported",))
    assert assess(reached, record({"a": [0.90, 0.91, 0.905]})).word == "supported"
    short = assess(reached, record({"a": [0.60, 0.61, 0.605]}))
    assert short.word == "inconclusive at this scale" and short.reason == "a shorter run"
    assert assess(Claim("keras-sn", "Issues", "q", "t", "fake", level, limit=small),
                  record({"a": [0.90, 0.91, 0.905]})).word == "inconclusive at this scale"


def test_seed_spread_is_judged_by_an_f_test():
    judge = spread_ratio(metric("a"), metric("b"), "BN", "vanilla")
    wide = {"a": [0.010, 0.030, 0.050, 0.020, 0.045, 0.005], "b": [0.0200, 0.0201, 0.0199, 0.0200, 0.0202, 0.0198]}
    assert judge(record(wide)).word == "supported"
    assert judge(record({"a": wide["b"], "b": wide["a"]})).word == "contradicted"
    assert judge(record({"a": [0.02], "b": [0.03]})).word == "inconclusive"


def test_gn_arms_are_named_by_the_record_s_own_group_spec():
    rec = record({"test_acc/gn:4/b2": [0.5, 0.6, 0.7], "test_acc/ws+gn/b2": [0.1, 0.2, 0.3]},
                 {"norms": ["bn", "gn:4", "ws+gn"], "width": 32})
    assert gn_metric("test_acc/{gn}/b2")(rec) == [0.5, 0.6, 0.7]
    assert gn_metric("test_acc/{ws+gn}/b2")(rec) == [0.1, 0.2, 0.3]


def test_a_rank_flip_is_supported_only_when_both_lengths_decide_opposite_ways():
    judge = rank_flip((metric("a50"), metric("b50")), (metric("a2k"), metric("b2k")), "WN", "vanilla", "short", "long")
    base = {"b50": [1.0, 1.1, 1.05], "b2k": [1.0, 1.1, 1.05]}
    flip = record({**base, "a50": [1.5, 1.62, 1.55], "a2k": [0.5, 0.61, 0.56]})
    same = record({**base, "a50": [1.5, 1.62, 1.55], "a2k": [1.5, 1.61, 1.56]})
    assert judge(flip).word == "supported" and "flips" in judge(flip).figure
    assert judge(same).word == "inconclusive" and "same way" in judge(same).reason


def test_every_claim_is_quoted_with_its_source_and_names_a_real_experiment_or_why_not():
    registered = experiments()
    assert len(CLAIMS) >= 25
    for c in CLAIMS:
        assert c.source in SOURCES and c.quote.strip() and c.where.strip() and c.tests.strip(), c
        if c.experiment is None:
            assert c.judge is None and c.not_run.strip(), c.quote
        else:
            assert c.experiment in registered and c.judge is not None and not c.not_run, c.quote
    assert {c.source for c in CLAIMS} == set(SOURCES)


def test_the_page_for_the_committed_records_names_every_source_and_judges_every_claim():
    assessed = claims.assess_all()
    assert {a.word for a in assessed} <= set(WORDS)
    # Every metric a claim reads is in the committed record of its experiment (a renamed metric fails here)
    # (a partial record, saved unit by unit, says which of its runs are still to come instead)
    assert not [a.claim.quote for a in assessed if a.reason.startswith("the saved record has no")]
    md = claims_page.build(ROOT)
    for source in SOURCES.values():
        assert f"## {source.title}" in md
    for c in CLAIMS:
        assert c.quote.split("[")[0][:30] in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == len(CLAIMS)
    assert "CIFAR-10 (JPEG q75 copy)" in md and "95% Student-t interval" in md and "/work/" not in md


def test_every_judge_runs_on_three_seeds_of_each_committed_record():
    # The committed records may hold one seed; three perturbed copies of it exercise every judge's interval path
    import copy

    from labnorm.experiments import reference

    for name in {c.experiment for c in CLAIMS if c.experiment}:
        rec = reference(name)
        if rec is None:
            continue
        seed = rec["per_seed"][str(rec["seeds"][0])]
        rec = {**rec, "seeds": [0, 1, 2], "per_seed": {}}
        for s in range(3):
            entry = copy.deepcopy(seed)
            entry["metrics"] = {k: v if v is None else v * (1 + 0.01 * s) for k, v in entry["metrics"].items()}
            rec["per_seed"][str(s)] = entry
        for c in (c for c in CLAIMS if c.experiment == name):
            out = assess(c, rec)
            assert out.word in WORDS and "1 seed" not in out.reason, (c.quote, out)
            assert out.word == "not run" or "(n=3" in out.figure, (c.quote, out.figure)


def test_the_page_reads_records_from_labnorm_results(tmp_path, monkeypatch):
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    assessed = claims.assess_all()
    assert all(a.word == "not run" for a in assessed)
    assert all("no saved record" in a.reason for a in assessed if a.claim.experiment)
    assert "## " + SOURCES["gan-wn"].title in claims_page.build(ROOT)
